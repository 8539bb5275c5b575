"""Facts about a running stack for the role inference, and :func:`collect_roles`.

Gathers, for the project's running containers: the TCP ports each LISTENs on and the
connections between services (socket tables of each container's network namespace: asked
of the kernel over netlink as root on the engine host (:mod:`revivadiag.engine.nsdiag`), else
``/proc/<pid>/net/tcp{,6}``, else ``cat`` through ``exec``),
the program of each process (``/proc`` on the engine's host, else ``docker top``), the HTTP
path of each Docker healthcheck, and the routes of the proxy (its nginx configuration
through the engine, or Traefik labels). The decision itself is the pure
:func:`revivadiag.collect.roles.infer_roles`.

Commands and healthchecks may hold secrets: only program names and URL paths leave here.

>>> healthcheck_path(["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health?full=1"])
'/health?full=1'
>>> healthcheck_path(["CMD-SHELL", "pg_isready -q"])
''
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.collect import connections as conn
from revivadiag.collect.containers import compose_identity, container_name
from revivadiag.collect.inventory import RawInventory
from revivadiag.collect.proxy_config import nginx_routes, read_nginx_config, traefik_routes
from revivadiag.collect.roles import Edge, ProxyRoute, command_words, infer_roles
from revivadiag.engine.nsdiag import namespace_sockets, open_diag_sockets
from revivadiag.schemas import to_frame

_URL_PATH = re.compile(r"https?://[^/\s'\"]+(/[^\s'\"|;&>]*)")
#: socket states that show a client talking to a server (TIME_WAIT: a short-lived one)
_TALKING = frozenset({"ESTABLISHED", "TIME_WAIT", "SYN_SENT", "FIN_WAIT1", "FIN_WAIT2"})


@dataclass
class StackFacts:
    """What :func:`gather_facts` saw (plain values, no secrets)."""

    listening: dict[str, list[int]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    processes: dict[str, list[str]] = field(default_factory=dict)
    health_paths: dict[str, str] = field(default_factory=dict)
    routes: list[ProxyRoute] = field(default_factory=list)
    #: proxy service -> ({path: text} or None, how it was read)
    proxy_configs: dict[str, tuple[dict[str, str] | None, str]] = field(default_factory=dict)
    #: running containers whose socket table held no connection (listening sockets only, or
    #: none) when it was read
    without_connections: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def healthcheck_path(test: Sequence[str] | None) -> str:
    """The URL path a Docker healthcheck requests, or ""."""
    m = _URL_PATH.search(" ".join(str(t) for t in (test or [])))
    return m.group(1) if m else ""


def health_paths(inv: RawInventory) -> dict[str, str]:
    """service -> the URL path its Docker healthcheck requests (services that have one)."""
    out: dict[str, str] = {}
    for inspect in inv.containers:
        test = ((inspect.get("Config") or {}).get("Healthcheck") or {}).get("Test")
        path = healthcheck_path(test)
        if path:
            out.setdefault(compose_identity(inspect, inv.project)[1], path)
    return out


def listening_ports(sockets: Iterable[conn.Socket]) -> list[int]:
    """TCP ports listened on where other containers can connect (loopback-only ones left out).

    >>> listening_ports([conn.Socket("0.0.0.0", 80, "0.0.0.0", 0, "LISTEN"),
    ...                  conn.Socket("127.0.0.11", 40215, "0.0.0.0", 0, "LISTEN")])
    [80]
    """
    ports = {s.local_port for s in sockets if s.state == "LISTEN"
             and not s.local_ip.startswith("127.") and s.local_ip != "::1"}
    return sorted(ports)


def service_edges(tables: Mapping[str, Sequence[conn.Socket]], owner_ips: Mapping[str, str],
                  listening: Mapping[str, Sequence[int]]) -> list[Edge]:
    """Connections between services: ``tables`` service -> its sockets, ``owner_ips`` ip ->
    service. A connection counts when its server side is a port the server listens on.

    >>> s = conn.Socket("10.0.0.2", 41000, "10.0.0.3", 5432, "ESTABLISHED")
    >>> service_edges({"api": [s]}, {"10.0.0.2": "api", "10.0.0.3": "db"}, {"db": [5432]})
    [Edge(source='api', target='db', port=5432)]
    """
    edges: set[Edge] = set()
    for service, sockets in tables.items():
        for s in sockets:
            if s.state not in _TALKING:
                continue
            local, remote = owner_ips.get(s.local_ip), owner_ips.get(s.remote_ip)
            if local != service or remote is None or remote == service:
                continue
            if s.remote_port in listening.get(remote, ()):
                edges.add(Edge(service, remote, s.remote_port))
            elif s.local_port in listening.get(service, ()):
                edges.add(Edge(remote, service, s.local_port))
    return sorted(edges, key=lambda e: (e.source, e.target, e.port))


def _running(inv: RawInventory) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(service, container name, inspect) of each running container."""
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    for inspect in inv.containers:
        if (inspect.get("State") or {}).get("Running"):
            out.append((compose_identity(inspect, inv.project)[1], container_name(inspect),
                        inspect))
    return out


def _ips(inspect: Mapping[str, Any]) -> list[str]:
    nets = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    return [str(n.get("IPAddress")) for n in nets.values() if n and n.get("IPAddress")]


def table_reader(client: Any, local: bool) -> tuple[conn.TableReader, str]:
    """procfs as root on the engine host, else ``cat`` through exec."""
    if local and os.geteuid() == 0:
        return conn.read_procfs_tables, "procfs"
    return conn.exec_table_reader(client), "exec"


#: containers whose facts (socket tables, processes) are read at once: the engine and the
#: kernel do the work, this process mostly waits
FACT_THREADS = 8
#: processes of one container whose programs are read from /proc (a bound, not a census)
MAX_PROCESSES = 256
#: socket states that are a connection (what the ``connections`` frame reports)
CONNECTED_STATES = frozenset({"ESTABLISHED", "SYN_SENT", "CLOSE_WAIT"})
#: the states asked of the kernel: listening ports, connections, and those just closed
#: (``TIME_WAIT``: the trace of a client that does not keep its connections)
DIAG_STATES = tuple(sorted(_TALKING | CONNECTED_STATES | {"LISTEN"}))


def socket_facts(inv: RawInventory, reader: conn.TableReader, how: str,
                 facts: StackFacts) -> None:
    """Listening ports per service and edges between services, into ``facts``."""
    tables: dict[str, list[conn.Socket]] = {}
    owner: dict[str, str] = {}
    unread: list[str] = []
    running = _running(inv)
    for _service, _name, inspect in running:
        for ip in _ips(inspect):
            owner[ip] = _service

    diag = _diag_sockets(running) if how == "procfs" else {}

    def read(item: tuple[str, str, Mapping[str, Any]]) -> list[conn.Socket] | None:
        _service, name, inspect = item
        pid = int((inspect.get("State") or {}).get("Pid") or 0)
        sock = diag.get(pid)
        if isinstance(sock, socket.socket):
            try:
                return [conn.Socket(str(r["local"]), int(r["lport"]), str(r["remote"]),
                                    int(r["rport"]), str(r["state"]))
                        for r in namespace_sockets(sock, DIAG_STATES)]
            except OSError:
                pass  # the proc files below say the same, slower
        try:
            text = reader(name, pid)
        except OSError:
            return None
        return [s for chunk in conn.split_tables(text) for s in conn.parse_proc_net_tcp(chunk)]

    with ThreadPoolExecutor(max_workers=FACT_THREADS) as pool:
        for (service, name, _inspect), sockets in zip(running, pool.map(read, running),
                                                      strict=True):
            if sockets is None:
                unread.append(name)
                continue
            tables.setdefault(service, []).extend(sockets)
            if not any(s.state in CONNECTED_STATES for s in sockets):
                facts.without_connections.add(name)
    for service, sockets in tables.items():
        facts.listening[service] = listening_ports(sockets)
    facts.edges = service_edges(tables, owner, facts.listening)
    if unread:
        facts.notes.append(f"roles: socket tables unreadable ({how}) in {', '.join(unread)}")


def _diag_sockets(running: Sequence[tuple[str, str, Mapping[str, Any]]]
                  ) -> dict[int, socket.socket | OSError]:
    """A socket-diagnostics socket in each running container's network namespace
    (:mod:`revivadiag.engine.nsdiag`), by init pid (an OSError where none could be opened)."""
    pids = [int((inspect.get("State") or {}).get("Pid") or 0) for _s, _n, inspect in running]
    return open_diag_sockets(p for p in pids if p > 0)


def process_facts(client: Any, inv: RawInventory, facts: StackFacts,
                  local: bool = False) -> None:
    """Program of each process and of the configured entrypoint/command. On this host
    (``local``) the programs are read from ``/proc`` (the container's init process and its
    descendants, checked to be the container's by their cgroup); elsewhere the engine is asked
    (``docker top``, which runs ``ps`` on the engine's host: ~20 ms a container)."""
    running = _running(inv)

    def programs(item: tuple[str, str, Mapping[str, Any]]) -> list[str]:
        _service, name, inspect = item
        config = inspect.get("Config") or {}
        argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        cmds = [" ".join(command_words(str(argv[0]))[:1])] if argv else []
        pid = int((inspect.get("State") or {}).get("Pid") or 0)
        here = local_programs(pid, str(inspect.get("Id") or "")) if local else None
        if here is not None:
            return cmds + [w for cmd in here for w in command_words(cmd)[:1]]
        return cmds + top_programs(client, str(inspect.get("Id") or name))

    with ThreadPoolExecutor(max_workers=FACT_THREADS) as pool:
        for (service, _name, _inspect), cmds in zip(running, pool.map(programs, running),
                                                    strict=True):
            facts.processes.setdefault(service, []).extend(c for c in dict.fromkeys(cmds) if c)
    facts.health_paths.update(health_paths(inv))


def top_programs(client: Any, container: str) -> list[str]:
    """The program of each process ``docker top`` lists (arguments may hold secrets: only
    the first word of each command is kept); none when the engine cannot say."""
    import docker.errors

    try:
        top = client.api.top(container)
    except docker.errors.DockerException:
        return []
    titles = [str(t).upper() for t in top.get("Titles") or []]
    col = titles.index("CMD") if "CMD" in titles else titles.index("COMMAND") \
        if "COMMAND" in titles else -1
    out: list[str] = []
    for proc in top.get("Processes") or []:
        cmd = str(proc[col]) if col >= 0 else " ".join(map(str, proc))
        out += command_words(cmd)[:1]
    return out


def local_programs(pid: int, container_id: str,
                   limit: int = MAX_PROCESSES) -> list[str] | None:
    """``argv[0]`` of host process ``pid`` and of its descendants (``/proc/<p>/cmdline``,
    children from ``/proc/<p>/task/*/children``), at most ``limit`` processes; None when
    ``pid`` is not this container's process here (another PID namespace, a restarted
    container) or ``/proc`` cannot say, so that the engine is asked instead.

    >>> local_programs(0, "f" * 64) is None
    True
    """
    from revivadiag.engine.probe import pid_belongs_to

    if pid <= 0 or not pid_belongs_to(pid, container_id):
        return None
    out: list[str] = []
    queue: list[int] = [pid]
    seen: set[int] = set()
    try:
        while queue and len(seen) < limit:
            current = queue.pop(0)
            if current in seen:
                continue
            seen.add(current)
            try:
                argv0 = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0", 1)[0]
                tasks = list(Path(f"/proc/{current}/task").iterdir())
            except OSError:  # ended meanwhile
                continue
            if argv0:
                out.append(argv0.decode("utf-8", "replace"))
            for task in tasks:
                try:
                    queue += [int(c) for c in (task / "children").read_text().split()]
                except (OSError, ValueError):
                    continue
    except OSError:
        return None
    return out if out else None


def proxy_facts(client: Any, inv: RawInventory, roles: pd.DataFrame,
                facts: StackFacts) -> None:
    """Routes of every service whose role is ``proxy``: nginx config, or Traefik labels."""
    first: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for service, name, inspect in _running(inv):
        first.setdefault(service, name)
        labs = {str(k): str(v) for k, v in ((inspect.get("Config") or {}).get("Labels")
                                             or {}).items() if str(k).startswith("traefik.")}
        if labs:
            labels.setdefault(service, labs)
    for rec in roles[roles["role"] == "proxy"].to_dict("records"):
        proxy = str(rec["service"])
        if proxy not in first:
            continue
        if rec["software"] == "traefik":
            facts.routes += traefik_routes(proxy, labels)
            continue
        files, how = read_nginx_config(client, first[proxy])
        facts.proxy_configs[proxy] = (files, how)
        if files:
            facts.routes += nginx_routes(proxy, files)
        else:
            facts.notes.append(f"roles: {proxy}'s configuration unreadable: {how}")


def gather_facts(client: Any, inv: RawInventory, local: bool,
                 reader: conn.TableReader | None = None) -> StackFacts:
    """Sockets, processes and healthchecks (routes need the roles: :func:`proxy_facts`)."""
    facts = StackFacts()
    if reader is None:
        reader, how = table_reader(client, local)
    else:
        how = "given"
    socket_facts(inv, reader, how, facts)
    process_facts(client, inv, facts, local=local)
    return facts


Infer = Callable[..., pd.DataFrame]


def collect_roles(client: Any, inv: RawInventory, frames: Mapping[str, pd.DataFrame], *,
                  local: bool = True,
                  compose: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None
                  = None,
                  policy_roles: Mapping[str, Sequence[str]] | None = None,
                  ) -> tuple[pd.DataFrame, StackFacts]:
    """The ``roles`` frame of the project in ``inv``, and the facts behind it.

    Two passes: the software, ports and traffic say which service is the proxy; its
    configuration's routes then name the backend. ``compose`` may be a callable, asked only
    once the facts are gathered (the caller reads Compose meanwhile).
    """
    facts = gather_facts(client, inv, local)
    if callable(compose):
        compose = compose()

    def infer() -> pd.DataFrame:
        return infer_roles(frames["containers"], endpoints=frames["endpoints"],
                           listening=facts.listening, processes=facts.processes,
                           routes=facts.routes, edges=facts.edges, compose=compose,
                           policy_roles=policy_roles, health_paths=facts.health_paths)

    roles = infer()
    if (roles["role"] == "proxy").any():
        proxy_facts(client, inv, roles, facts)
        if facts.routes:
            roles = infer()
    return roles, facts


def empty_roles() -> pd.DataFrame:
    """A ``roles`` frame with no rows."""
    return to_frame("roles", [])
