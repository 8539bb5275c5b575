"""Findings: one frame of problems and observations, each with a stable id and a remedy.

Every kind of problem has one catalogue entry (:data:`CATALOGUE`) with a stable id such as
``RD-POL-001``; all instances of it are gathered into one row whose ``evidence`` lists them
(the first few, then a count). ``remediation`` names the runbook or README section that fixes
it. Rows are ordered error, warning, info, then by id.

>>> import pandas as pd
>>> from revivadiag import schemas
>>> checks = schemas.to_frame("checks", [{"check_id": "container-naming", "title": "",
...     "environment": "development", "subject": "p_new_backend", "status": "fail",
...     "evidence": "p_new_backend != p_backend"}])
>>> f = build_findings(checks=checks)
>>> f[["id", "severity", "category"]].values.tolist()
[['RD-NAME-001', 'error', 'naming']]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from revivadiag import schemas

MAX_EVIDENCE_ITEMS = 6
SEVERITY_ORDER = {s: i for i, s in enumerate(schemas.SEVERITIES)}

MIGRATE = "README § Migration"
PROXY = "README § Proxy configuration"
ISOLATION = "README § Network isolation"
ENVCONF = "README § Environment configuration"
KPI = "README § Performance KPIs"
SOURCE = "README § Source audit (revivadiag audit-source)"
HEALTH = "runbooks/diagnose.ipynb health table (README § Diagnose)"
ENGINES = "README § Several engines and Swarm"


@dataclass(frozen=True)
class Entry:
    """A kind of finding: id, severity, category, title and remediation."""

    id: str
    severity: str
    category: str
    title: str
    remediation: str


def _e(*args: str) -> Entry:
    return Entry(*args)


CATALOGUE: dict[str, Entry] = {e.id: e for e in (
    _e("RD-POL-001", "error", "policy", "Denied paths are open: network isolation is missing",
       f"Split the networks so only the backend joins the database's and Redis's: {MIGRATE}; "
       f"{ISOLATION}"),
    _e("RD-POL-002", "warning", "policy",
       "Denied paths are refused, not dropped: source and target share a network",
       f"Put them on separate networks so the path is dropped: {ISOLATION}"),
    _e("RD-POL-003", "error", "policy", "Allowed paths are blocked",
       f"Attach both services to a common network and check the target's health: {ISOLATION}"),
    _e("RD-POL-004", "info", "policy", "Some reachability probes were inconclusive",
       "A stopped container or a failed probe leaves no verdict: start it and re-run "
       "runbooks/diagnose.ipynb (README § Diagnose)"),
    _e("RD-CFG-001", "error", "config",
       "Client-visible API/WebSocket URLs point at localhost or a container port",
       f"Leave NEXT_PUBLIC_API_URL/NEXT_PUBLIC_WEBSOCKET_URL empty (relative URLs through the "
       f"proxy): {MIGRATE}; {ENVCONF}"),
    _e("RD-CFG-002", "error", "config",
       "The served page calls the backend at localhost or a container port",
       f"Use relative URLs or getApiUrl()/getWebSocketUrl() in the page: {MIGRATE}; {SOURCE}"),
    _e("RD-CFG-003", "error", "config",
       "http:// or ws:// URLs are served to the https site (mixed content)",
       f"Serve relative URLs (the proxy keeps the page's scheme) or https/wss ones: {MIGRATE}; "
       f"{ENVCONF}"),
    _e("RD-DNS-001", "error", "config", "Internal URLs name hosts that do not resolve",
       f"Use the service names on a shared network in BACKEND_INTERNAL_URL, "
       f"DATABASE_INTERNAL_HOST, REDIS_INTERNAL_URL: {ENVCONF}"),
    _e("RD-NAME-001", "error", "naming",
       "Container names differ from the target <prefix>_<service>",
       f"Rename the containers (volumes and networks kept): {MIGRATE}"),
    _e("RD-PORT-001", "error", "config",
       "Ports are published outside the environment's allowed list",
       f"Publish only the proxy in production; never a database or cache: {MIGRATE}; "
       f"{ENVCONF}"),
    _e("RD-NET-001", "error", "policy", "The proxy can reach a database or cache",
       f"Move databases and caches to a backend-only network: {MIGRATE}; {ISOLATION}"),
    _e("RD-NET-002", "warning", "policy",
       "Reachability differs from the compose file's declared networks",
       f"Services should reach each other exactly when they share a declared network: check "
       f"networks attached by hand and network_mode: {ISOLATION}"),
    _e("RD-POL-005", "warning", "policy", "The policy names roles or services the stack lacks",
       "Fix the policy's names, or assign the role (label revivadiag.role=<role>, "
       "x-revivadiag: {role: ...}, or the policy's roles:): README § Roles"),
    _e("RD-ROLE-001", "warning", "roles", "A service's role is ambiguous or undecided",
       "Declare it: label revivadiag.role=<role> or x-revivadiag: {role: ...} in the compose "
       "file, or roles: in the policy (README § Roles)"),
    _e("RD-PRX-001", "error", "proxy", "The proxy opens a new backend connection per request "
       "(no upstream keep-alive)",
       f"Add an upstream block with keepalive, proxy_http_version 1.1 and an empty Connection "
       f"header: {PROXY}; {MIGRATE}"),
    _e("RD-PRX-002", "error", "proxy", "The proxy resolves the backend only once "
       "(stale address after the backend is recreated)",
       f"Re-resolve through Docker's resolver 127.0.0.11 (resolver + variable proxy_pass, or a "
       f"watcher that reloads nginx): {PROXY}"),
    _e("RD-PRX-003", "error", "proxy", "WebSocket upgrade fails through the proxy",
       f"Proxy /ws with HTTP/1.1 and the Upgrade/Connection headers: {PROXY}"),
    _e("RD-PRX-004", "warning", "proxy", "X-Forwarded-* headers do not reach the backend",
       f"Set X-Forwarded-Proto, -For and -Host in the proxy: {PROXY}"),
    _e("RD-PRX-005", "warning", "proxy",
       "A client-supplied X-Forwarded-For passes through unchecked (spoofable client address)",
       f"Set X-Forwarded-For from $remote_addr (or trust only known proxies): {PROXY}"),
    _e("RD-PRX-006", "warning", "proxy", "CORS preflight allows any origin",
       f"Allow only the site's own origin(s): {PROXY}"),
    _e("RD-PRX-007", "warning", "proxy", "The proxy does not rate-limit a burst of requests",
       f"Add limit_req_zone/limit_req for /api/: {PROXY}"),
    _e("RD-KPI-001", "warning", "kpi", "Container startup is slower than 30 s",
       f"Check image size, health-check intervals and dependencies: {KPI}"),
    _e("RD-KPI-002", "warning", "kpi", "Inter-service latency is above 10 ms",
       f"Check host load and the probes' method: {KPI}"),
    _e("RD-KPI-003", "warning", "kpi", "Proxy overhead is above 5 ms",
       f"Enable upstream keep-alive and check proxy buffering: {PROXY}; {KPI}"),
    _e("RD-KPI-004", "warning", "kpi", "DNS resolution of container names is above 5 ms",
       f"Check Docker's resolver load (names unknown to it go upstream): {KPI}"),
    _e("RD-KPI-005", "error", "kpi", "Connection reuse between proxy and backend is below 90 %",
       f"Enable upstream keep-alive in the proxy: {PROXY}; {MIGRATE}"),
    _e("RD-KPI-000", "info", "kpi", "Some KPIs could not be measured",
       f"Run with live checks on, on the engine host, with the stack running: {KPI}"),
    _e("RD-HLT-001", "error", "health", "A service is unhealthy", HEALTH),
    _e("RD-HLT-002", "warning", "health",
       "A service is degraded, or unhealthy on its published port",
       HEALTH),
    _e("RD-SRC-001", "error", "source", "Browser code hard-codes backend URLs or ports",
       f"Use relative URLs or getApiUrl()/getWebSocketUrl(): {SOURCE}; {MIGRATE}"),
    _e("RD-SRC-002", "warning", "source", "Server code and config hard-code service addresses",
       f"Read BACKEND_INTERNAL_URL, DATABASE_INTERNAL_HOST, REDIS_INTERNAL_URL: {SOURCE}"),
    _e("RD-SRC-003", "warning", "source", "Source and config name containers instead of services",
       f"Use the compose service names: {SOURCE}; {MIGRATE}"),
    _e("RD-ENG-001", "error", "engine", "An engine did not answer: its rows are missing",
       f"Check the address (docker -H URL info), the ssh key and known_hosts, or the context: "
       f"{ENGINES}"),
    _e("RD-SWM-001", "error", "swarm",
       "A service's VIP answers nothing while its tasks do",
       "VIP load balancing needs IPVS in the kernel of every node (CONFIG_IP_VS, module ip_vs); "
       "where it is missing, set `deploy: endpoint_mode: dnsrr` on the service (clients then "
       f"resolve the tasks' addresses and must re-resolve): {ENGINES}"),
    _e("RD-SWM-002", "error", "swarm", "A service runs fewer replicas than desired",
       "docker service ps --no-trunc SERVICE shows why its tasks fail (a failing health check, "
       f"a dependency unreachable, a placement constraint, an image missing on a node): {ENGINES}"),
    _e("RD-SWM-003", "error", "swarm",
       "A node's load balancer holds a task that no longer runs (stale backend)",
       "Traffic to the service is partly sent nowhere. Force a refresh: docker service update "
       f"--force SERVICE; if it persists, restart dockerd on that node (moby#25985): {ENGINES}"),
    _e("RD-SWM-004", "error", "swarm",
       "A running task is missing from a node's load balancer (divergence)",
       "That node never sends traffic to the task: check the gossip ports (7946 tcp/udp) "
       f"between nodes, then docker service update --force SERVICE: {ENGINES}"),
    _e("RD-SWM-005", "warning", "swarm",
       "Connections through a VIP will cross IPVS's 900 s idle timeout",
       "IPVS silently forgets connections idle for 900 s; the next query on a pooled database "
       "or Redis connection then hangs or resets. Make the kernel probe idle connections "
       "sooner: `sysctls: {net.ipv4.tcp_keepalive_time: 300}` on the client service (per "
       "network namespace; libpq's default keepalives then fire at 300 s, redis-py needs "
       "socket_keepalive=True), or libpq keepalives_idle=300, or recycle pooled connections "
       "sooner, or use endpoint_mode: dnsrr for the database (no IPVS on the path). "
       f"The connections frame shows each connection's idle time and keepalive: {ENGINES}"),
    _e("RD-SWM-007", "warning", "swarm",
       "A start-first update or rollback sends traffic to a task that is not ready, or runs "
       "two tasks on one volume",
       "start-first starts the new task before stopping the old one. Give the service a "
       "healthcheck (the new task then takes traffic only once healthy) and a "
       "stop_grace_period long enough to finish in-flight requests; for a service whose "
       "volume one server must own (a database, Redis with persistence) use "
       "`deploy: update_config: order: stop-first` (and rollback_config). Clients in VIP mode "
       "keep pooled connections to the old task until it stops: close them on SIGTERM "
       f"(connections frame): {ENGINES}"),
    _e("RD-SWM-006", "error", "swarm", "An overlay network's MTU exceeds the path's",
       "VXLAN adds 50 bytes: set the overlay's com.docker.network.driver.mtu to the path MTU "
       f"minus 50 (driver_opts in the compose file): {ENGINES}"),
)}

#: config check id -> finding id (a ``warn`` status lowers an error to a warning)
CHECK_FINDINGS = {
    "client-api-url": "RD-CFG-001", "page-api-url": "RD-CFG-002", "mixed-content": "RD-CFG-003",
    "internal-dns": "RD-DNS-001", "container-naming": "RD-NAME-001",
    "published-ports": "RD-PORT-001", "frontend-isolation": "RD-NET-001",
    "proxy-keepalive": "RD-PRX-001", "proxy-resolution": "RD-PRX-002",
    "websocket-upgrade": "RD-PRX-003", "forwarded-headers": "RD-PRX-004",
    "xff-spoofing": "RD-PRX-005", "cors-preflight": "RD-PRX-006", "rate-limit": "RD-PRX-007",
}
VERDICT_FINDINGS = {"violation": "RD-POL-001", "refused_not_dropped": "RD-POL-002",
                    "blocked": "RD-POL-003", "inconclusive": "RD-POL-004"}
KPI_FINDINGS = {"startup_time": "RD-KPI-001", "inter_service_latency": "RD-KPI-002",
                "proxy_overhead": "RD-KPI-003", "dns_resolution": "RD-KPI-004",
                "connection_reuse": "RD-KPI-005"}
INTERNAL_HEALTH_CHECKS = ("http", "postgres_internal", "redis_internal", "docker")


def summarise(items: list[str]) -> str:
    """``a; b; c (+N more)`` with at most MAX_EVIDENCE_ITEMS items, duplicates dropped."""
    unique = list(dict.fromkeys(i for i in items if i))
    shown = "; ".join(unique[:MAX_EVIDENCE_ITEMS])
    more = len(unique) - MAX_EVIDENCE_ITEMS
    return shown + (f" (+{more} more)" if more > 0 else "")


def _lower(severity: str) -> str:
    return {"error": "warning", "warning": "info"}.get(severity, severity)


class _Collector:
    """Gathers evidence per finding id, keeping the most severe severity seen."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}
        self.severity: dict[str, str] = {}

    def add(self, fid: str, evidence: str, severity: str | None = None) -> None:
        sev = severity or CATALOGUE[fid].severity
        old = self.severity.get(fid)
        if old is None or SEVERITY_ORDER[sev] < SEVERITY_ORDER[old]:
            self.severity[fid] = sev
        self.items.setdefault(fid, []).append(evidence)

    def frame(self) -> pd.DataFrame:
        rows = []
        for fid, items in self.items.items():
            e = CATALOGUE[fid]
            rows.append({"id": fid, "severity": self.severity[fid], "category": e.category,
                         "title": e.title, "evidence": summarise(items),
                         "remediation": e.remediation})
        rows.sort(key=lambda r: (SEVERITY_ORDER[r["severity"]], r["id"]))
        return schemas.to_frame("findings", rows)


def _from_violations(c: _Collector, violations: pd.DataFrame) -> None:
    for rec in violations.to_dict("records"):
        fid = VERDICT_FINDINGS.get(str(rec["verdict"]))
        if rec.get("basis") == "declared" and fid in ("RD-POL-001", "RD-POL-002", "RD-POL-003"):
            fid = "RD-NET-002"
        if fid:
            c.add(fid, str(rec["evidence"]), str(rec["severity"]) or None)


def _from_checks(c: _Collector, checks: pd.DataFrame) -> None:
    for rec in checks.to_dict("records"):
        fid = CHECK_FINDINGS.get(str(rec["check_id"]))
        if fid is None or rec["status"] not in ("fail", "warn"):
            continue
        sev = CATALOGUE[fid].severity
        c.add(fid, f"{rec['subject']}: {rec['evidence']}",
              sev if rec["status"] == "fail" else _lower(sev))


def _from_kpis(c: _Collector, kpis: pd.DataFrame) -> None:
    for rec in kpis.to_dict("records"):
        fid = KPI_FINDINGS.get(str(rec["kpi"]))
        if fid is None:
            continue
        if pd.isna(rec["passed"]):
            c.add("RD-KPI-000", f"{rec['kpi']}: {rec['detail']}")
        elif not bool(rec["passed"]):
            c.add(fid, f"{rec['value']:.2f} {rec['unit']} (target {rec['comparison']} "
                       f"{rec['threshold']:g} {rec['unit']}, {rec['samples']} samples): "
                       f"{rec['detail']}")


def _from_health(c: _Collector, health: pd.DataFrame) -> None:
    for rec in health.to_dict("records"):
        status, check = str(rec["status"]), str(rec["check"])
        text = (f"{rec['service']} {check} {rec['target']}: {status}"
                + (f" [{rec['error_type']}]" if rec["error_type"] else "")
                + (f" {rec['detail']}" if rec["detail"] else ""))
        if status == "unhealthy" and check in INTERNAL_HEALTH_CHECKS:
            c.add("RD-HLT-001", text)
        elif status in ("unhealthy", "degraded"):
            c.add("RD-HLT-002", text)


def _from_source(c: _Collector, source: pd.DataFrame) -> None:
    for rec in source.to_dict("records"):
        text = f"{rec['file']}:{rec['line']} {rec['match']} -> {rec['suggested_fix']}"
        if rec["kind"] == "container_name":
            c.add("RD-SRC-003", text)
        elif rec["side"] == "client":
            c.add("RD-SRC-001", text)
        else:
            c.add("RD-SRC-002", text)


def build_findings(
    violations: pd.DataFrame | None = None,
    kpis: pd.DataFrame | None = None,
    checks: pd.DataFrame | None = None,
    health: pd.DataFrame | None = None,
    source_findings: pd.DataFrame | None = None,
    roles: list[str] | None = None,
    policy_problems: list[tuple[str, str]] | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """The ``findings`` frame from whichever analysis frames are given.

    ``roles``: one line per ambiguous or undecided role
    (:meth:`~revivadiag.collect.roles.Roles.problems`); ``policy_problems``: (line,
    severity) per name the policy uses that the stack lacks; ``extra``: (finding id,
    evidence) pairs from other analyses (:func:`revivadiag.analyze.swarm.swarm_findings`).
    """
    c = _Collector()
    for fid, evidence in extra or []:
        c.add(fid, evidence)
    for line in roles or []:
        c.add("RD-ROLE-001", line)
    for line, severity in policy_problems or []:
        c.add("RD-POL-005", line, severity)
    steps: tuple[tuple[pd.DataFrame | None, Callable[[_Collector, pd.DataFrame], None]], ...] = (
        (violations, _from_violations), (checks, _from_checks), (kpis, _from_kpis),
        (health, _from_health), (source_findings, _from_source),
    )
    for frame, fn in steps:
        if frame is not None and len(frame):
            fn(c, frame)
    return c.frame()
