"""Column names, dtypes and meaning of every frame revivadiag produces.

Units live in column names (``latency_ms``, ``connect_ms``). Columns that hold lists
(``aliases``, ``answers``) have dtype ``object`` and hold ``list[str]``; file writers
JSON-encode them. Timestamps are timezone-aware UTC.

Every collector builds its frame with :func:`to_frame`, which orders and casts the
columns, and tests check each frame with :func:`validate`.

>>> f = to_frame("networks", [{"network_id": "ab12", "name": "p_default", "driver": "bridge",
...                             "subnet": "172.20.0.0/16", "gateway": "172.20.0.1",
...                             "internal": False, "project": "p"}])
>>> list(f.columns)[:3]
['network_id', 'name', 'driver']
>>> validate("networks", f)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from revivadiag.errors import FrameError

#: Where each row of a probe frame came from.
METHODS = ("setns", "sidecar", "exec", "host", "api")
#: Outcomes of a TCP reachability probe.
OUTCOMES = ("open", "refused", "timeout", "unresolvable", "error")
#: Health states (the seed's three, plus unknown when no check could run).
HEALTH_STATES = ("healthy", "degraded", "unhealthy", "unknown")


@dataclass(frozen=True)
class Column:
    """One column: its name, pandas dtype and a one-line meaning."""

    name: str
    dtype: str
    doc: str


@dataclass(frozen=True)
class FrameSchema:
    """The columns of one frame, in order."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}


def _s(name: str, doc: str, *cols: tuple[str, str, str]) -> FrameSchema:
    return FrameSchema(name, doc, tuple(Column(*c) for c in cols))


STR = "string"
INT = "Int64"
FLOAT = "float64"
BOOL = "boolean"
TS = "datetime64[ns, UTC]"
LIST = "object"

#: the last column of every snapshot frame: which engine the row came from
ENGINE_COLUMN = ("engine", "string", "the engine the row comes from: its Docker context name, "
                                     "else its address with credentials removed")

SCHEMAS: dict[str, FrameSchema] = {
    s.name: s
    for s in (
        _s(
            "containers",
            "One row per container of the project (running or not).",
            ("container_id", STR, "full container id"),
            ("name", STR, "container name without the leading slash"),
            ("project", STR, "com.docker.compose.project label"),
            ("service", STR, "com.docker.compose.service label (or parsed from the name)"),
            ("number", INT, "com.docker.compose.container-number label"),
            ("image", STR, "image tag (or id when untagged)"),
            ("state", STR, "running, exited, restarting, paused, created, dead"),
            ("health", STR, "Docker healthcheck status: healthy, unhealthy, starting, none"),
            ("restart_count", INT, "times the engine restarted it"),
            ("started_at", TS, "when it last started (UTC)"),
            ("pid", INT, "host PID of its init process, 0 when not running"),
            ("exposed_ports", LIST, "ports the image/container exposes, e.g. '5432/tcp'"),
            ("labels", STR, "JSON object of its labels, secret-looking values redacted"),
            ENGINE_COLUMN,
        ),
        _s(
            "networks",
            "One row per network a project container is attached to.",
            ("network_id", STR, "full network id"),
            ("name", STR, "network name"),
            ("driver", STR, "bridge, overlay, ..."),
            ("subnet", STR, "first IPv4 subnet, CIDR"),
            ("gateway", STR, "IPv4 gateway"),
            ("internal", BOOL, "internal networks have no route out"),
            ("project", STR, "compose project label of the network, if any"),
            ENGINE_COLUMN,
        ),
        _s(
            "endpoints",
            "Container x network attachments.",
            ("container", STR, "container name"),
            ("service", STR, "compose service"),
            ("network", STR, "network name"),
            ("ipv4", STR, "address on that network"),
            ("aliases", LIST, "network aliases (list of str)"),
            ("dns_names", LIST, "every name Docker's resolver answers for it there"),
            ENGINE_COLUMN,
        ),
        _s(
            "ports",
            "Published ports.",
            ("container", STR, "container name"),
            ("service", STR, "compose service"),
            ("container_port", INT, "port inside the container"),
            ("protocol", STR, "tcp or udp"),
            ("host_ip", STR, "host address it is bound to"),
            ("host_port", INT, "host port"),
            ENGINE_COLUMN,
        ),
        _s(
            "env",
            "Container environment; sensitive values are redacted at collection.",
            ("container", STR, "container name"),
            ("service", STR, "compose service"),
            ("key", STR, "variable name"),
            ("value", STR, "value, or '***' when sensitive"),
            ("is_sensitive", BOOL, "the value was redacted"),
            ENGINE_COLUMN,
        ),
        _s(
            "dns",
            "Source container x queried name, asked of Docker's resolver 127.0.0.11.",
            ("source", STR, "container the query was made from"),
            ("source_service", STR, "its compose service"),
            ("query", STR, "name asked"),
            ("query_kind", STR, "container_name, service, alias or other"),
            ("answers", LIST, "A records returned (list of str)"),
            ("rcode", STR, "NOERROR, NXDOMAIN, SERVFAIL, TIMEOUT, ERROR, or NOT_ASKED "
                           "(a name Docker would forward upstream, over the budget)"),
            ("latency_ms", FLOAT, "query round trip"),
            ("method", STR, "setns, sidecar or exec; api for a NOT_ASKED row"),
            ("error_type", STR, "a NetworkErrorType when the name did not resolve"),
            ("error", STR, "what went wrong, short (empty when it resolved)"),
            ("from_cache", BOOL, "a name Docker forwards upstream is asked once per run; true "
                                 "on the rows that reuse that answer"),
            ("measured_on", STR, "container whose namespace asked: the source itself, another "
                                 "container on the same networks whose answer is carried over, "
                                 "or empty when nothing was asked (NOT_ASKED)"),
            ("inferred", BOOL, "true when this source did not ask itself (measured_on differs): "
                               "Docker answers every container on the same networks alike"),
            ENGINE_COLUMN,
        ),
        _s(
            "reachability",
            "Source container x target service port: one TCP connect each.",
            ("source", STR, "container the connect was made from"),
            ("source_service", STR, "its compose service"),
            ("target", STR, "target container"),
            ("target_service", STR, "target compose service"),
            ("target_host", STR, "name that was resolved (the target's service name)"),
            ("target_ip", STR, "address connected to (empty when unresolvable)"),
            ("target_port", INT, "TCP port inside the target"),
            ("outcome", STR, "open, refused, timeout, unresolvable, error"),
            ("connect_ms", FLOAT, "time to connect (open: median of a few connects made one "
                                  "at a time after the sweep) or to fail"),
            ("attempts", INT, "tries made (retries with backoff on transient errors)"),
            ("error_type", STR, "a NetworkErrorType, empty when open"),
            ("error", STR, "the underlying error, short"),
            ("method", STR, "setns, sidecar or exec"),
            ("sweep_connect_ms", FLOAT, "the connect's time during the concurrent sweep "
                                        "(inflated by the load of the sweep itself)"),
            ("measured_on", STR, "container the connect was made from: the source itself, or "
                                 "another container on the same networks whose result is "
                                 "carried over; for a name that did not resolve, the container "
                                 "that asked it (empty: not asked)"),
            ("inferred", BOOL, "true when no connect was made from this source to this target "
                               "port: carried over from measured_on (same networks, so Docker "
                               "isolates them alike) or decided by the name lookup"),
            ENGINE_COLUMN,
        ),
        _s(
            "latency",
            "HTTP probes summarised per path and phase (N samples each, after warm-up).",
            ("path", STR, "direct or proxy"),
            ("source", STR, "where the requests were made from (container or 'host')"),
            ("url", STR, "URL requested (credentials never included)"),
            ("phase", STR, "dns, connect, first_byte, total"),
            ("samples", INT, "successful samples"),
            ("errors", INT, "failed samples"),
            ("p50_ms", FLOAT, "median"),
            ("p95_ms", FLOAT, "95th percentile"),
            ("p99_ms", FLOAT, "99th percentile"),
            ("mean_ms", FLOAT, "mean"),
            ("method", STR, "setns, sidecar, exec or host"),
            ("error_type", STR, "the most frequent NetworkErrorType among failures"),
            ENGINE_COLUMN,
        ),
        _s(
            "health",
            "Per service and check path: the seed's health rules.",
            ("service", STR, "compose service"),
            ("container", STR, "container name"),
            ("check", STR, "http, postgres_internal, postgres_external, redis_internal, "
                           "redis_external, docker"),
            ("target", STR, "what was checked (URL without credentials, or host:port)"),
            ("status", STR, "healthy, degraded, unhealthy or unknown"),
            ("response_ms", FLOAT, "time the check took"),
            ("error_type", STR, "a NetworkErrorType when unhealthy"),
            ("detail", STR, "short explanation, never a secret"),
            ("method", STR, "setns, sidecar, exec or host"),
            ENGINE_COLUMN,
        ),
        _s(
            "roles",
            "One row per service: the role learned from the stack and how it was decided.",
            ("service", STR, "compose service"),
            ("role", STR, "proxy, backend, database, cache, worker or other"),
            ("port", INT, "the port it serves its role on (empty when unknown)"),
            ("ports", LIST, "TCP ports it listens on (list of int; its role's port first)"),
            ("software", STR, "software recognised in its image or processes (nginx, "
                              "postgres, redis, ...), empty when none"),
            ("decided_by", STR, "declared, policy, software, port, proxy, traffic, seed, or "
                                "none (undecided)"),
            ("evidence", STR, "how the role was decided, in words"),
            ("confidence", STR, "high (declared or the software itself), medium (ports, "
                                "routes, traffic) or low (a guess, or ambiguous)"),
            ("ambiguous", BOOL, "another service is an equally good candidate for the role"),
            ("alternatives", STR, "the other candidates when ambiguous"),
            ("route", STR, "the proxy location that forwards to it (e.g. /api/), when known"),
            ("http_path", STR, "HTTP path that answered (backend: direct; proxy: through it)"),
            ENGINE_COLUMN,
        ),
        _s(
            "connections",
            "One row per TCP connection held in a running container of the project (established, "
            "connecting or half-closed), from the kernel's socket table in its network "
            "namespace: its peer, how long it has been idle and whether TCP keepalive guards "
            "it. A container whose table could not be read is one row with ``error``.",
            ("container", STR, "container whose namespace holds the connection"),
            ("service", STR, "its service"),
            ("role", STR, "its service's role"),
            ("direction", STR, "outbound (this side connected) or inbound (to a port it "
                               "listens on)"),
            ("state", STR, "ESTABLISHED, SYN_SENT (connecting) or CLOSE_WAIT (the peer closed)"),
            ("local_ip", STR, "local address"),
            ("local_port", INT, "local port"),
            ("peer_ip", STR, "peer address"),
            ("peer_port", INT, "peer port"),
            ("peer_kind", STR, "container (a project container's address), vip (a Swarm "
                               "service's VIP), loopback, or external"),
            ("peer_container", STR, "the peer container, when known"),
            ("peer_service", STR, "the peer's service (a VIP's service), when known"),
            ("peer_role", STR, "the peer service's role"),
            ("idle_s", FLOAT, "seconds since the last data sent, data received or ACK "
                              "received, whichever is latest"),
            ("last_send_s", FLOAT, "seconds since data was last sent"),
            ("last_recv_s", FLOAT, "seconds since data was last received"),
            ("last_ack_s", FLOAT, "seconds since an ACK was last received"),
            ("timer", STR, "the socket's pending timer: off, keepalive, retransmit, persist"),
            ("timer_s", FLOAT, "seconds until that timer fires"),
            ("keepalive", BOOL, "TCP keepalive is on (empty when another timer hides it)"),
            ("keepalive_after_s", FLOAT, "the first keepalive probe goes out after at least "
                                         "this many idle seconds (last receive + timer; "
                                         "exact when silent since the timer was set); empty "
                                         "without keepalive"),
            ("keepalive_time_s", FLOAT, "the namespace's net.ipv4.tcp_keepalive_time: the "
                                      "keepalive idle time of a socket that sets none"),
            ("send_queue", INT, "bytes sent and not acknowledged"),
            ("recv_queue", INT, "bytes received and not read by the application"),
            ("method", STR, "setns, sidecar or exec"),
            ("error", STR, "why the table could not be read (then the other columns are empty)"),
            ENGINE_COLUMN,
        ),
        _s(
            "idle_pools",
            "A service's established outbound connections to one peer service, grouped "
            "(revivadiag.analyze.swarm.idle_pools): a pool's size, idleness and keepalive.",
            ("engine", STR, "the engine the connections were read on"),
            ("service", STR, "the service holding the connections"),
            ("role", STR, "its role"),
            ("peer_service", STR, "the service connected to"),
            ("peer_role", STR, "its role"),
            ("peer_kind", STR, "container (a task's or container's own address) or vip"),
            ("connections", INT, "how many"),
            ("max_idle_s", FLOAT, "the longest idle time among them"),
            ("keepalive", INT, "how many have TCP keepalive on"),
            ("max_keepalive_after_s", FLOAT, "the latest first keepalive probe, in idle "
                                             "seconds, among those with keepalive"),
            ("unguarded", INT, "how many stay silent for limit_s: no keepalive, or its first "
                               "probe provably later"),
            ("unknown", INT, "how many may or may not be: keepalive on, its first probe "
                             "due before limit_s at the earliest, but the namespace's default "
                             "keepalive time is longer (a socket's own TCP_KEEPIDLE is not "
                             "visible)"),
            ("limit_s", FLOAT, "the idle timeout compared with (IPVS: 900 s)"),
            ("peer_ips", LIST, "the peer addresses"),
        ),
        _s(
            "engines",
            "One row per engine of a snapshot: did it answer, what it is, its Swarm role.",
            ("engine", STR, "the engine's name (its context name, else its redacted address)"),
            ("address", STR, "unix://, tcp:// or ssh:// address, credentials removed"),
            ("status", STR, "ok, unreachable (nothing answered), no_project (it answered but "
                            "runs no container of the project) or error"),
            ("server_version", STR, "Docker Engine version"),
            ("api_version", STR, "API version negotiated"),
            ("local", BOOL, "the engine runs on this host (setns is possible)"),
            ("method", STR, "probe method used there: setns, sidecar or exec"),
            ("swarm_state", STR, "inactive, pending, active, error or locked"),
            ("node_id", STR, "its Swarm node id, empty outside Swarm"),
            ("manager", BOOL, "it is a Swarm manager (the manager's view of services and "
                              "tasks is read from it)"),
            ("node_addr", STR, "the address the node advertises to the swarm"),
            ("host_mtu", INT, "MTU of this host's interface holding node_addr (local engines; "
                              "empty when unknown): the path an overlay's VXLAN packets take"),
            ("ipvs", BOOL, "this host's kernel has IPVS (/proc/net/ip_vs), which Swarm's VIPs "
                           "need (local engines; empty when unknown)"),
            ("containers", INT, "containers of the project on it"),
            ("duration_s", FLOAT, "wall time spent on it"),
            ("error", STR, "why it did not answer, short, never a secret"),
        ),
        _s(
            "swarm_nodes",
            "Swarm nodes, as a manager lists them.",
            ("engine", STR, "the manager engine that listed them"),
            ("node_id", STR, "node id"),
            ("hostname", STR, "node hostname"),
            ("role", STR, "manager or worker"),
            ("availability", STR, "active, pause or drain"),
            ("state", STR, "ready, down, unknown, disconnected"),
            ("addr", STR, "address the node is reached at"),
            ("leader", BOOL, "the manager leader"),
            ("engine_version", STR, "its Docker Engine version"),
        ),
        _s(
            "swarm_services",
            "Swarm services of the stack: replicas desired and running, endpoint mode, VIPs.",
            ("engine", STR, "the manager engine that listed them"),
            ("service_id", STR, "service id"),
            ("name", STR, "full service name (<stack>_<service>)"),
            ("service", STR, "the name inside the stack (what the tasks resolve)"),
            ("stack", STR, "com.docker.stack.namespace label"),
            ("image", STR, "image, digest removed"),
            ("mode", STR, "replicated or global"),
            ("replicas_desired", INT, "replicas asked for (global: nodes that should run one)"),
            ("replicas_running", INT, "tasks in state running"),
            ("endpoint_mode", STR, "vip or dnsrr"),
            ("vips", LIST, "virtual IPs, network:address/prefix (vip mode only)"),
            ("networks", LIST, "networks it is attached to"),
            ("ports", LIST, "target ports it serves (from the image and the roles), as str"),
            ("update_order", STR, "stop-first or start-first (UpdateConfig.Order)"),
            ("rollback_order", STR, "stop-first or start-first (RollbackConfig.Order)"),
            ("healthcheck", BOOL, "the service declares a healthcheck (False: disabled; empty: "
                                  "says nothing, the image's own HEALTHCHECK applies)"),
            ("stop_grace_s", FLOAT, "stop_grace_period in seconds (empty: Docker's 10 s)"),
            ("mounts", LIST, "volumes and binds its tasks mount, type:source:target"),
        ),
        _s(
            "swarm_tasks",
            "Swarm tasks of the stack, as the manager records them.",
            ("engine", STR, "the manager engine that listed them"),
            ("task_id", STR, "task id"),
            ("service", STR, "the name inside the stack"),
            ("slot", INT, "replica slot (empty for a global service)"),
            ("node_id", STR, "node it is scheduled on"),
            ("node", STR, "that node's hostname"),
            ("desired_state", STR, "running, shutdown, ..."),
            ("state", STR, "running, starting, failed, shutdown, ..."),
            ("container_id", STR, "its container (empty before it starts)"),
            ("addresses", LIST, "network:address of each attachment"),
            ("error", STR, "the task's error message, when any"),
            ("updated_at", TS, "when its status last changed"),
        ),
        _s(
            "swarm_lb",
            "Each node's view of a network's endpoints (GET /networks/{id}?verbose=true): what "
            "its load balancer and DNS hold, to compare with the tasks the manager runs.",
            ("engine", STR, "the engine whose view this is"),
            ("node_id", STR, "its Swarm node id"),
            ("network", STR, "network name"),
            ("network_id", STR, "network id"),
            ("service", STR, "the name inside the stack"),
            ("vip", STR, "the service's VIP on that network (empty for dnsrr)"),
            ("task_name", STR, "<stack>_<service>.<slot>.<task id>"),
            ("task_id", STR, "the task id parsed from task_name"),
            ("endpoint_ip", STR, "the address the node would send the task's traffic to"),
            ("host_ip", STR, "the node that task runs on, as this node knows it"),
        ),
        _s(
            "violations",
            "Observed reachability compared with the expected access policy.",
            ("source_service", STR, "service the probe came from"),
            ("target_service", STR, "service probed"),
            ("target_port", INT, "port probed"),
            ("expected", STR, "allow or deny (from the policy)"),
            ("observed", STR, "the probe's outcome: open, refused, timeout, unresolvable, error"),
            ("verdict", STR, "ok, violation (denied but open), blocked (allowed but not open), "
                             "refused_not_dropped (denied, but refused rather than dropped), "
                             "inconclusive (the probe itself failed)"),
            ("severity", STR, "error, warning or info when the verdict is not ok (the rule's "
                              "severity; empty when ok)"),
            ("evidence", STR, "source container -> target ip:port, outcome, connect_ms, method"),
            ("basis", STR, "what the expectation rests on: policy (a rule), default (the "
                           "policy's default), declared (the compose file's networks)"),
        ),
        _s(
            "kpis",
            "The seed's key performance indicators, measured.",
            ("kpi", STR, "startup_time, inter_service_latency, proxy_overhead, dns_resolution, "
                         "connection_reuse"),
            ("title", STR, "human name"),
            ("value", FLOAT, "measured value"),
            ("unit", STR, "s, ms or %"),
            ("threshold", FLOAT, "the seed's target"),
            ("comparison", STR, "< or >"),
            ("samples", INT, "how many measurements the value summarises"),
            ("passed", BOOL, "value meets the target (NA when it could not be measured)"),
            ("detail", STR, "how it was measured"),
        ),
        _s(
            "findings",
            "What the diagnose runbook concludes; one row per problem or observation.",
            ("id", STR, "stable identifier, e.g. RD-NET-001"),
            ("severity", STR, "error, warning or info"),
            ("category", STR, "policy, kpi, config, naming, proxy, source, health, roles, "
                             "engine, swarm"),
            ("title", STR, "one line"),
            ("evidence", STR, "what was observed, with values"),
            ("remediation", STR, "what to do, naming the runbook or README section that does it"),
        ),
        _s(
            "checks",
            "Config audit: one row per check and subject, for one environment.",
            ("check_id", STR, "stable check name, e.g. client-api-url, proxy-keepalive"),
            ("title", STR, "what the check verifies"),
            ("environment", STR, "development or production"),
            ("subject", STR, "what was checked (container, variable, URL, config file)"),
            ("status", STR, "pass, fail, warn or skip"),
            ("evidence", STR, "what was observed, never a secret"),
        ),
        _s(
            "source_findings",
            "Source audit: hard-coded backend URLs, ports and container names in a source tree.",
            ("file", STR, "path relative to the audited root"),
            ("line", INT, "1-based line number"),
            ("column", INT, "1-based column of the match"),
            ("kind", STR, "backend_url, websocket_url, backend_port, database_port, redis_port, "
                          "container_name"),
            ("match", STR, "the matched text"),
            ("snippet", STR, "the line, stripped and shortened, secrets redacted"),
            ("side", STR, "client, server or config: where the code runs"),
            ("suggested_fix", STR, "the replacement: relative URL, resolver function, "
                                   "BACKEND_INTERNAL_URL or service name"),
        ),
        _s(
            "lab_status",
            "`revivadiag lab status`: one row per container of a lab instance.",
            ("container", STR, "container name"),
            ("service", STR, "compose service: frontend, backend, database, redis (seed stack) "
                             "or proxy, web, api, worker, db, cache (shop stack)"),
            ("state", STR, "running, exited, created, ..."),
            ("health", STR, "healthy, unhealthy, starting or none"),
            ("ports", STR, "published ports, e.g. 127.0.0.1:3010->3010/tcp; empty when none"),
            ("variant", STR, "io.revivadiag.variant label: current, target, shop-current or "
                             "shop-target"),
            ("profile", STR, "io.revivadiag.profile label: development or production"),
        ),
        _s(
            "probe_requests",
            "The migration prober: one row per request, WebSocket event or session check "
            "(revivadiag.migrate.prober).",
            ("seq", INT, "order in which the rows were started, from 0"),
            ("t", TS, "wall-clock time the request was sent (UTC; the prober's start plus t_s)"),
            ("t_s", FLOAT, "monotonic seconds since the prober started, when it was sent"),
            ("kind", STR, "http (the steady stream), ws (the WebSocket client) or session"),
            ("op", STR, "get; ws: connect, reconnect, echo, close; session: login, write, "
                        "check"),
            ("path", STR, "URL path on the proxy's loopback port"),
            ("step", STR, "the migration step marked as running when it was sent (empty: none)"),
            ("step_ended", STR, "the step marked as running when its answer, or its failure, "
                                "came (a failure is charged to this step)"),
            ("status", INT, "HTTP status (101 for a WebSocket handshake; the close code for a "
                            "close); missing when no answer came"),
            ("ok", BOOL, "a correct answer within the deadline (a close: a clean one)"),
            ("latency_ms", FLOAT, "from sending to the answer (to giving up when it failed)"),
            ("retries", INT, "refused connects (and connections closed before any answer) "
                             "retried within the deadline"),
            ("error_type", STR, "one of the seed's network error types when not ok, else empty"),
            ("detail", STR, "why it failed, e.g. HTTP 502, echo differs, session lost (no "
                            "secret)"),
        ),
        _s(
            "monitor_status",
            "The health monitor's view now: one row per service (revivadiag.collect.monitor).",
            ("service", STR, "compose service"),
            ("role", STR, "its role learned from the stack (proxy, backend, database, ...)"),
            ("status", STR, "healthy, degraded, unhealthy or unknown (worst of its checks)"),
            ("since", TS, "when it entered this status (UTC)"),
            ("last_check", TS, "the last cycle that looked at it (UTC)"),
            ("response_ms", FLOAT, "time of its main check in the last cycle that probed it"),
            ("error_rate_pct", FLOAT, "unhealthy share of the checked cycles in the window"),
            ("window_checks", INT, "checked cycles in the window (at most its size)"),
            ("consecutive_failures", INT, "unhealthy cycles in a row"),
            ("circuit", STR, "closed, open (its probes are skipped) or half_open (a trial)"),
            ("error_type", STR, "a NetworkErrorType of the failing check, else empty"),
            ("detail", STR, "the worst check and what it said, never a secret"),
            ENGINE_COLUMN,
        ),
        _s(
            "monitor_history",
            "The health monitor's time series: one row per service and cycle (a ring buffer).",
            ("at", TS, "when the cycle's checks were folded in (UTC)"),
            ("cycle", INT, "cycle number, from 1"),
            ("service", STR, "compose service"),
            ("role", STR, "its role"),
            ("status", STR, "healthy, degraded, unhealthy or unknown after this cycle"),
            ("response_ms", FLOAT, "time of its main check this cycle (missing when not checked)"),
            ("error_rate_pct", FLOAT, "error rate over the window after this cycle"),
            ("consecutive_failures", INT, "unhealthy cycles in a row after this cycle"),
            ("circuit", STR, "closed, open or half_open after this cycle"),
            ("checked", BOOL, "false when nothing was learned this cycle (circuit open, or "
                              "every check unknown)"),
            ENGINE_COLUMN,
        ),
        _s(
            "monitor_summary",
            "A monitoring run summed up per service (revivadiag.analyze.monitoring).",
            ("service", STR, "compose service"),
            ("role", STR, "its role"),
            ("status", STR, "status at the end"),
            ("changes", INT, "status changes after the first status seen"),
            ("cycles", INT, "cycles in the history"),
            ("healthy_s", FLOAT, "seconds spent healthy"),
            ("degraded_s", FLOAT, "seconds spent degraded"),
            ("unhealthy_s", FLOAT, "seconds spent unhealthy"),
            ("unknown_s", FLOAT, "seconds spent unknown"),
            ("error_rate_pct", FLOAT, "unhealthy share of the checked cycles"),
            ("p50_ms", FLOAT, "median response time of its main check"),
            ("p95_ms", FLOAT, "95th percentile response time"),
            ("max_consecutive_failures", INT, "longest run of unhealthy cycles"),
            ENGINE_COLUMN,
        ),
        _s(
            "container_stats",
            "One-shot resource figures per container of the project (engine stats API).",
            ("container", STR, "container name"),
            ("service", STR, "compose service"),
            ("state", STR, "running, exited, ... (a stopped one has no figures)"),
            ("restart_count", INT, "times the engine restarted it"),
            ("read_at", TS, "when the engine read the figures (UTC)"),
            ("cpu_pct", FLOAT, "CPU over the engine's ~1 s sampling interval; 100 = one core"),
            ("online_cpus", INT, "CPUs the container may use"),
            ("mem_usage_bytes", INT, "memory in use, page cache of inactive files excluded "
                                     "(as `docker stats` counts it)"),
            ("mem_limit_bytes", INT, "memory limit (the host's memory when none is set)"),
            ("mem_pct", FLOAT, "usage / limit in percent"),
            ("net_rx_bytes", INT, "received on every interface since it started"),
            ("net_tx_bytes", INT, "sent on every interface since it started"),
            ("block_read_bytes", INT, "read from block devices since it started"),
            ("block_write_bytes", INT, "written to block devices since it started"),
            ("pids", INT, "processes and threads in it"),
            ("error", STR, "why there are no figures (not running, vanished), else empty"),
        ),
        _s(
            "container_events",
            "The engine's events about the project's containers within a time window.",
            ("at", TS, "when the engine emitted it (UTC)"),
            ("type", STR, "container or network"),
            ("action", STR, "start, die, stop, kill, restart, oom, health_status, connect, "
                            "disconnect, create, destroy, pause, unpause"),
            ("container", STR, "container name (empty when it is gone and unnamed)"),
            ("container_id", STR, "full container id"),
            ("service", STR, "compose service"),
            ("health_status", STR, "healthy or unhealthy (health_status events)"),
            ("exit_code", INT, "exit code (die events)"),
            ("signal", STR, "signal sent (kill events)"),
            ("network", STR, "network name (connect and disconnect events)"),
        ),
    )
}

SEVERITIES = ("error", "warning", "info")


def schema(name: str) -> FrameSchema:
    """The schema of frame ``name`` (KeyError names the known frames)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown frame {name!r}; known: {', '.join(SCHEMAS)}") from None


def empty_frame(name: str) -> pd.DataFrame:
    """An empty frame with the right columns and dtypes."""
    return to_frame(name, [])


#: Environment variable that switches :func:`to_frame` to strict mode (the test suite sets it).
STRICT_ENV = "REVIVADIAG_STRICT_FRAMES"


def strict_frames() -> bool:
    """Whether :func:`to_frame` rejects unknown keys and uncastable values.

    On when ``REVIVADIAG_STRICT_FRAMES`` is ``1``/``true``/``yes`` (the test suite sets it):
    a misspelled key or a wrong-typed value then raises
    :class:`~revivadiag.errors.FrameError` instead of becoming a missing cell.
    """
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


def to_frame(
    name: str, rows: Iterable[Mapping[str, Any]], *, strict: bool | None = None
) -> pd.DataFrame:
    """Build frame ``name`` from row dicts: columns ordered and cast, missing ones filled.

    A key may be left out (its cell is missing). In strict mode (``strict=True``, or
    :func:`strict_frames` when ``strict`` is None) a key the schema does not have, or a value
    that does not cast to its column's dtype, raises :class:`~revivadiag.errors.FrameError`:
    string columns take ``str`` only, boolean columns ``bool`` only, list columns lists or
    tuples, numbers and timestamps anything that parses (text read back from a CSV file does);
    None/NaN is always a missing cell. Otherwise unknown keys are dropped and uncastable values
    become missing.

    >>> to_frame("networks", [{"network_id": "ab12", "nmae": "p_default"}], strict=True)
    Traceback (most recent call last):
    ...
    revivadiag.errors.FrameError: frame 'networks', column 'nmae': not in the schema ...
    >>> to_frame("networks", [{"network_id": "ab12", "internal": "no"}], strict=True)
    Traceback (most recent call last):
    ...
    revivadiag.errors.FrameError: frame 'networks', column 'internal': not a boolean ...
    >>> to_frame("networks", [{"network_id": "ab12", "nmae": "x"}], strict=False).shape
    (1, 8)
    """
    sch = schema(name)
    records = [dict(r) for r in rows]
    if strict is None:
        strict = strict_frames()
    if strict:
        known = set(sch.names)
        for rec in records:
            for key, value in rec.items():
                if key not in known:
                    raise FrameError(name, str(key), value, "not in the schema")
    df = pd.DataFrame.from_records(records, columns=sch.names)
    for col in sch.columns:
        if not strict:
            df[col.name] = _cast(df[col.name], col.dtype)
            continue
        _check_values(name, col, df[col.name])
        try:
            cast = _cast(df[col.name], col.dtype)
        except (TypeError, ValueError) as exc:
            raise FrameError(name, col.name, df[col.name].tolist(), f"cast failed: {exc}") from exc
        _check_cast(name, col, df[col.name], cast)
        df[col.name] = cast
    return df.reset_index(drop=True)


def repeat_rows(name: str, bases: Iterable[Mapping[str, Any]], take: list[int],
                per_row: Mapping[str, list[Any]]) -> pd.DataFrame:
    """Frame ``name`` whose row ``i`` is ``bases[take[i]]`` with ``per_row[col][i]`` set:
    the same as :func:`to_frame` of those rows, built column-wise (a frame where many rows
    share most of their values, e.g. sources carried over from an equivalent container).

    >>> f = repeat_rows("networks", [{"name": "n", "driver": "bridge"}], [0, 0],
    ...                 {"network_id": ["a", "b"]})
    >>> f[["network_id", "name"]].values.tolist()
    [['a', 'n'], ['b', 'n']]
    """
    sch = schema(name)
    base = to_frame(name, bases)
    df = base.take(take).reset_index(drop=True) if take else base.iloc[0:0].copy()
    for name_, values in per_row.items():
        df[name_] = _cast(pd.Series(values, dtype=object), sch.dtypes[name_])
    for column in sch.columns:
        if column.dtype == LIST:  # no list object shared between rows
            df[column.name] = pd.Series(list(map(list, df[column.name].tolist())),
                                        dtype=object)
    return df


def _missing(v: Any) -> bool:
    """None, NaN, NaT or pd.NA (a list is never missing)."""
    if isinstance(v, (list, tuple, dict, set)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _check_values(frame: str, col: Column, raw: pd.Series) -> None:
    """Raise FrameError for the first given value of the wrong kind for the column's dtype."""
    for value in raw.tolist():
        if _missing(value):
            continue
        if col.dtype == LIST and not isinstance(value, (list, tuple)):
            raise FrameError(frame, col.name, value, "not a list")
        if col.dtype == STR and not isinstance(value, str):
            raise FrameError(frame, col.name, value, "not a string")
        if col.dtype == BOOL and not isinstance(value, (bool, np.bool_)):
            raise FrameError(frame, col.name, value, "not a boolean")
        if col.dtype in (INT, FLOAT) and isinstance(value, (bool, np.bool_, bytes)):
            raise FrameError(frame, col.name, value, f"not a number ({col.dtype})")


def _check_cast(frame: str, col: Column, raw: pd.Series, cast: pd.Series) -> None:
    """Raise FrameError for the first value that was given but did not survive the cast."""
    for before, after in zip(raw.tolist(), cast.tolist(), strict=True):
        if not _missing(before) and _missing(after):
            raise FrameError(frame, col.name, before, f"does not cast to {col.dtype}")


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == TS:
        return pd.to_datetime(series, utc=True, errors="coerce").astype(TS)
    if dtype == LIST:
        return series.map(lambda v: list(v) if isinstance(v, (list, tuple)) else []).astype(object)
    if dtype == FLOAT:
        return pd.to_numeric(series, errors="coerce").astype(FLOAT)
    if dtype == INT:
        return pd.to_numeric(series, errors="coerce").astype(INT)
    if dtype == BOOL:
        return series.astype(BOOL)
    if dtype == STR:
        return series.astype(STR).fillna("")
    return series.astype(dtype)


def validate(name: str, df: pd.DataFrame) -> None:
    """Raise ``AssertionError`` naming the first column whose name or dtype is wrong."""
    sch = schema(name)
    if list(df.columns) != sch.names:
        raise AssertionError(f"{name}: columns {list(df.columns)} != schema {sch.names}")
    for col in sch.columns:
        actual = str(df[col.name].dtype)
        if actual != col.dtype:
            raise AssertionError(f"{name}.{col.name}: dtype {actual} != {col.dtype}")
        if col.dtype == LIST and not all(isinstance(v, list) for v in df[col.name]):
            raise AssertionError(f"{name}.{col.name}: every value must be a list")
