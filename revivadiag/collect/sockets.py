"""The ``connections`` frame: every TCP connection held in the project's containers, from
the kernel's socket tables, with how long each has been idle and whether TCP keepalive
guards it.

From inside each running container's network namespace (one ``sockets`` job per container,
by the snapshot's probe method: setns, sidecar or exec; see
:mod:`revivadiag.engine.netprobe.sockdiag`) the kernel's INET_DIAG table is read: the
established, connecting (``SYN_SENT``) and half-closed (``CLOSE_WAIT``) connections, and the
listening ports that tell an inbound connection from an outbound one, and the namespace's
``net.ipv4.tcp_keepalive_time``. Each peer address is
mapped to what it is in the project: a container (its endpoints), a Swarm service's VIP
(``swarm_services``), this container itself (loopback), or outside the project.

Idle time is the time since the last data sent, data received or ACK received, whichever is
latest: a stateful middlebox on the path (NAT, a firewall's conntrack, a cloud load
balancer, Swarm's IPVS with its 900 s timeout) forgets a flow after that long without a
packet. A keepalive timer pending means the socket has TCP keepalive on. The kernel arms
that timer for the socket's keepalive idle time (its ``TCP_KEEPIDLE``, else the namespace's
``tcp_keepalive_time``) and, when it fires early because the connection was not silent, for
the rest of it; so the first probe goes out after at least ``keepalive_after_s`` (the last
receive plus the timer) of silence, exactly that when the connection has been silent since
the timer was set. The socket's own ``TCP_KEEPIDLE`` is not in the kernel's socket table.

>>> res = {"sockets": [
...     {"state": "LISTEN", "local": "0.0.0.0", "lport": 8000, "remote": "0.0.0.0", "rport": 0,
...      "timer": "off", "timer_ms": None},
...     {"state": "ESTABLISHED", "local": "10.0.0.3", "lport": 40122, "remote": "10.0.0.2",
...      "rport": 5432, "timer": "keepalive", "timer_ms": 7110188, "last_send_ms": 1848,
...      "last_recv_ms": 1848, "last_ack_ms": 1848, "recv_q": 0, "send_q": 0}],
...     "method": "setns", "error": ""}
>>> peers = PeerMap({"10.0.0.2": ("p_db", "db")}, {}, {"db": "database", "api": "backend"})
>>> [row] = socket_rows("p_api", "api", res, peers)
>>> row["direction"], row["peer_service"], row["peer_role"], row["idle_s"], row["keepalive"]
('outbound', 'db', 'database', 1.848, True)
>>> row["keepalive_after_s"]
7112.036
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from revivadiag.engine.jobs import Result
from revivadiag.schemas import to_frame

#: the states read from the kernel (LISTEN only tells inbound from outbound)
STATES = ("ESTABLISHED", "SYN_SENT", "CLOSE_WAIT", "LISTEN")
#: rows kept per container at most (a busy proxy holds thousands)
MAX_ROWS_PER_CONTAINER = 2000
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class PeerMap:
    """What an address is in the project: a container, a Swarm VIP, and services' roles."""

    #: address -> (container name, service)
    containers: Mapping[str, tuple[str, str]]
    #: VIP address -> service
    vips: Mapping[str, str]
    #: service -> role
    roles: Mapping[str, str]

    @classmethod
    def from_frames(cls, endpoints: pd.DataFrame, roles: pd.DataFrame,
                    swarm_services: pd.DataFrame | None = None) -> PeerMap:
        """From a snapshot's ``endpoints``, ``roles`` and (optional) ``swarm_services``."""
        addrs = {str(r["ipv4"]): (str(r["container"]), str(r["service"]))
                 for r in endpoints.to_dict("records") if r["ipv4"]}
        vips: dict[str, str] = {}
        if swarm_services is not None:
            for r in swarm_services.to_dict("records"):
                for vip in r["vips"]:
                    vips[str(vip).rsplit(":", 1)[-1].split("/", 1)[0]] = str(r["service"])
        return cls(addrs, vips, {str(r["service"]): str(r["role"])
                                 for r in roles.to_dict("records")})

    def peer(self, ip: str, own: tuple[str, str]) -> tuple[str, str, str]:
        """(kind, container, service) of address ``ip`` seen from container ``own``."""
        if ip in self.containers:
            name, service = self.containers[ip]
            return "container", name, service
        if ip in self.vips:
            return "vip", "", self.vips[ip]
        try:
            if ipaddress.ip_address(ip).is_loopback:
                return "loopback", own[0], own[1]
        except ValueError:
            pass
        return "external", "", ""


def _seconds(ms: Any) -> float | None:
    return None if ms is None else round(float(ms) / 1000.0, 3)


def _listening(sockets: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(str(s["local"]), int(s["lport"])) for s in sockets if s.get("state") == "LISTEN"}


def _inbound(sock: Mapping[str, Any], listening: set[tuple[str, int]]) -> bool:
    port = int(sock["lport"])
    return any((ip, port) in listening for ip in (str(sock["local"]), *WILDCARDS))


def socket_rows(container: str, service: str, result: Result, peers: PeerMap,
                limit: int = MAX_ROWS_PER_CONTAINER) -> list[dict[str, Any]]:
    """The ``connections`` rows of one container's ``sockets`` result (an error result is
    one row saying why)."""
    role = peers.roles.get(service, "")
    base = {"container": container, "service": service, "role": role,
            "method": str(result.get("method", "")),
            "keepalive_time_s": result.get("keepalive_time_s")}
    if result.get("error") and not result.get("sockets"):
        return [{**base, "error": str(result["error"])[:300]}]
    sockets = list(result.get("sockets") or [])
    listening = _listening(sockets)
    rows = []
    for s in sockets:
        if s.get("state") == "LISTEN":
            continue
        kind, peer_container, peer_service = peers.peer(str(s["remote"]), (container, service))
        times = [_seconds(s.get(k)) for k in ("last_send_ms", "last_recv_ms", "last_ack_ms")]
        known = [t for t in times if t is not None]
        timer, timer_s = str(s.get("timer", "")), _seconds(s.get("timer_ms"))
        keepalive = {"keepalive": True, "off": False}.get(timer)  # hidden behind another timer
        after = (round((times[1] or 0.0) + timer_s, 3)
                 if keepalive and timer_s is not None else None)
        rows.append({**base, "direction": "inbound" if _inbound(s, listening) else "outbound",
                     "state": str(s["state"]), "local_ip": str(s["local"]),
                     "local_port": int(s["lport"]), "peer_ip": str(s["remote"]),
                     "peer_port": int(s["rport"]), "peer_kind": kind,
                     "peer_container": peer_container, "peer_service": peer_service,
                     "peer_role": peers.roles.get(peer_service, ""),
                     "idle_s": min(known) if known else None, "last_send_s": times[0],
                     "last_recv_s": times[1], "last_ack_s": times[2], "timer": timer,
                     "timer_s": timer_s, "keepalive": keepalive, "keepalive_after_s": after,
                     "send_queue": s.get("send_q"), "recv_queue": s.get("recv_q"),
                     "error": ""})
    rows.sort(key=lambda r: (r["direction"], r["peer_service"], -(r["idle_s"] or 0.0)))
    if len(rows) > limit:
        rows = rows[:limit]
    truncated = int(result.get("truncated") or 0)
    if truncated:
        rows.append({**base, "error": f"{truncated} more sockets not read"})
    return rows


def connections_frame(results: Mapping[str, Result], members: Mapping[str, tuple[str, str]],
                      peers: PeerMap) -> pd.DataFrame:
    """The ``connections`` frame from ``sockets`` results keyed like ``members``
    (key -> (container name, service))."""
    rows: list[dict[str, Any]] = []
    for key, (name, service) in sorted(members.items(), key=lambda kv: kv[1]):
        result = results.get(key)
        if result is not None:
            rows += socket_rows(name, service, result, peers)
    return to_frame("connections", rows)


#: runs {container id: [job]} inside each container; gives {container id: [result]}
Runner = Callable[[dict[str, list[dict[str, Any]]], dict[str, tuple[str, int]]],
                  Mapping[str, list[Result]]]


def collect_connections(run: Runner, containers: pd.DataFrame, endpoints: pd.DataFrame,
                        roles: pd.DataFrame,
                        swarm_services: pd.DataFrame | None = None,
                        skip: Collection[str] = ()) -> pd.DataFrame:
    """Read every running container's socket table (``run``: a probe engine's ``run`` with
    ``known=``) into the ``connections`` frame; containers named in ``skip`` are not read
    (the snapshot passes those that held no connection moments before)."""
    running = containers[(containers["state"] == "running")
                         & ~containers["name"].astype(str).isin(set(skip))]
    members = {str(r["container_id"]): (str(r["name"]), str(r["service"]))
               for r in running.to_dict("records")}
    if not members:
        return to_frame("connections", [])
    job = {"kind": "sockets", "states": list(STATES), "max_rows": MAX_ROWS_PER_CONTAINER}
    known = {str(r["container_id"]): (str(r["name"]), int(r["pid"] or 0))
             for r in running.to_dict("records")}
    results = run({key: [dict(job)] for key in members}, known)
    first = {key: rows[0] for key, rows in results.items() if rows}
    return connections_frame(first, members,
                             PeerMap.from_frames(endpoints, roles, swarm_services))
