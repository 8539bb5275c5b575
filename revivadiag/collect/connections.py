"""Connection reuse between the proxy and the backend, measured from socket tables.

The seed's KPI "> 90 % connection reuse" is measured, not assumed: send ``N`` requests
through the proxy (on its published loopback port; when it publishes none, to the proxy
container's own address on its network, from the engine host), and count the TCP
connections the proxy opened to the backend meanwhile, from the socket tables of both
containers' network namespaces (``/proc/<pid>/net/tcp`` and ``tcp6`` of each container's
init process, read as root on the engine host; ``cat /proc/net/tcp`` through ``exec``
otherwise). A connection is a 4-tuple proxy ip:port -> backend ip:port in any state but
LISTEN (closed connections linger in TIME_WAIT on the side that closed first, so reading
both tables sees them all).
``reuse = 1 - new_connections / answered_requests``.

>>> [s] = parse_proc_net_tcp('''  sl  local_address rem_address   st
...    0: 0300140A:1F40 0200140A:A1B2 06 00000000:00000000''')
>>> (s.local_ip, s.local_port, s.remote_ip, s.remote_port, s.state)
('10.20.0.3', 8000, '10.20.0.2', 41394, 'TIME_WAIT')
>>> reuse_percent(answered=50, new_connections=1)
98.0
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd

from revivadiag.collect.live_facts import ReuseMeasurement
from revivadiag.errors import ParameterError, ServiceNotFound

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}
MAX_REQUESTS = 500
#: the path requested when none was learned from the stack
DEFAULT_PATH = "/"
#: statuses produced by the proxy itself: those requests never reached the backend
PROXY_ONLY_STATUSES = frozenset({429, 502, 503, 504})

ConnKey = tuple[str, int, str, int]


@dataclass(frozen=True)
class Socket:
    """One row of a /proc/net/tcp table."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: str


@dataclass(frozen=True)
class ReuseTarget:
    """Where to measure: the proxy and backend containers, their pids, addresses and URL."""

    proxy_container: str
    proxy_pid: int
    proxy_ips: frozenset[str]
    backend_container: str
    backend_pid: int
    backend_ips: frozenset[str]
    backend_port: int
    url: str


# ---------------------------------------------------------------- pure parsing


def _hex_ip(text: str) -> str:
    """Kernel hex address (host byte order per 32-bit word) -> dotted/colon text."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    addr = ipaddress.ip_address(words)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _endpoint(text: str) -> tuple[str, int]:
    ip, _, port = text.partition(":")
    return _hex_ip(ip), int(port, 16)


def parse_proc_net_tcp(text: str) -> list[Socket]:
    """Rows of ``/proc/net/tcp`` or ``/proc/net/tcp6`` text; malformed lines are skipped."""
    out: list[Socket] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith(":"):
            continue
        try:
            lip, lport = _endpoint(parts[1])
            rip, rport = _endpoint(parts[2])
        except ValueError:
            continue
        out.append(Socket(lip, lport, rip, rport, TCP_STATES.get(parts[3].upper(), parts[3])))
    return out


def proxy_backend_connections(
    sockets: Iterable[Socket], proxy_ips: Iterable[str], backend_ips: Iterable[str],
    backend_port: int,
) -> set[ConnKey]:
    """Connections proxy -> backend:port seen from either side, as (pip, pport, bip, bport)."""
    pset, bset = set(proxy_ips), set(backend_ips)
    keys: set[ConnKey] = set()
    for s in sockets:
        if s.state == "LISTEN":
            continue
        if s.local_ip in bset and s.local_port == backend_port and s.remote_ip in pset:
            keys.add((s.remote_ip, s.remote_port, s.local_ip, s.local_port))
        elif s.remote_ip in bset and s.remote_port == backend_port and s.local_ip in pset:
            keys.add((s.local_ip, s.local_port, s.remote_ip, s.remote_port))
    return keys


def reuse_percent(answered: int, new_connections: int) -> float | None:
    """``100 * (1 - new / answered)``, floored at 0; None when nothing was answered."""
    if answered <= 0:
        return None
    return round(max(0.0, 1.0 - new_connections / answered) * 100.0, 2)


def _one_container(containers: pd.DataFrame, service: str) -> dict[str, object]:
    rows = containers[(containers["service"] == service) & (containers["state"] == "running")]
    if len(rows) == 0:
        raise ServiceNotFound(service, sorted(set(containers["service"].astype(str))))
    rec: dict[str, object] = rows.sort_values("name").iloc[0].to_dict()
    return rec


def loopback_port(ports: pd.DataFrame, service: str, container_port: int) -> int:
    """The host port publishing ``service:container_port`` on loopback (or all addresses)."""
    port = published_loopback(ports, service, container_port)
    if port is None:
        raise ParameterError(
            f"{service} port", container_port, "not published on 127.0.0.1; cannot send requests"
        )
    return port


def published_loopback(ports: pd.DataFrame, service: str, container_port: int) -> int | None:
    """The host port publishing ``service:container_port`` on loopback, or None."""
    rows = ports[
        (ports["service"] == service)
        & (ports["container_port"] == container_port)
        & (ports["protocol"] == "tcp")
        & ports["host_ip"].isin(["127.0.0.1", "0.0.0.0", ""])
    ]
    return None if len(rows) == 0 else int(rows["host_port"].iloc[0])


def proxy_base_url(containers: pd.DataFrame, endpoints: pd.DataFrame, ports: pd.DataFrame,
                   service: str, port: int) -> str:
    """``http://127.0.0.1:<host port>`` when ``service:port`` is published on loopback, else
    ``http://<its container's address>:<port>`` (reachable from the engine host).

    ServiceNotFound when no container of ``service`` runs or has an address.
    """
    host_port = published_loopback(ports, service, port)
    if host_port is not None:
        return f"http://127.0.0.1:{host_port}"
    member = _one_container(containers, service)
    ips = sorted(str(ip) for ip in endpoints[endpoints["container"] == member["name"]]["ipv4"]
                 if ip)
    if not ips:
        raise ServiceNotFound(f"{service} (no address on any network)")
    return f"http://{ips[0]}:{port}"


def target_from_frames(
    containers: pd.DataFrame,
    endpoints: pd.DataFrame,
    ports: pd.DataFrame,
    *,
    proxy_service: str,
    proxy_port: int,
    backend_service: str,
    backend_port: int,
    path: str = DEFAULT_PATH,
) -> ReuseTarget:
    """A :class:`ReuseTarget` from a snapshot's containers, endpoints and ports frames
    (requests go to :func:`proxy_base_url`)."""
    proxy = _one_container(containers, proxy_service)
    backend = _one_container(containers, backend_service)

    def ips(name: object) -> frozenset[str]:
        rows = endpoints[endpoints["container"] == name]
        return frozenset(str(ip) for ip in rows["ipv4"] if ip)

    base = proxy_base_url(containers, endpoints, ports, proxy_service, proxy_port)
    return ReuseTarget(
        proxy_container=str(proxy["name"]),
        proxy_pid=int(str(proxy["pid"])) if not pd.isna(proxy["pid"]) else 0,
        proxy_ips=ips(proxy["name"]),
        backend_container=str(backend["name"]),
        backend_pid=int(str(backend["pid"])) if not pd.isna(backend["pid"]) else 0,
        backend_ips=ips(backend["name"]),
        backend_port=backend_port,
        url=f"{base}{path if path.startswith('/') else '/' + path}",
    )


# ---------------------------------------------------------------- I/O

TableReader = Callable[[str, int], str]


def read_procfs_tables(container: str, pid: int) -> str:
    """``/proc/<pid>/net/tcp`` + ``tcp6`` of a container's init process (root, local engine)."""
    if pid <= 0:
        raise OSError(f"{container} is not running (pid 0)")
    texts = []
    for name in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{name}")
        if path.exists():
            texts.append(path.read_text())
    if not texts:
        raise OSError(f"no socket table under /proc/{pid}/net")
    return "\n".join(texts)


def exec_table_reader(client: object) -> TableReader:
    """A reader that runs ``cat /proc/net/tcp /proc/net/tcp6`` in the container (needs cat)."""

    def read(container: str, _pid: int) -> str:
        import docker.errors

        try:
            obj = client.containers.get(container)  # type: ignore[attr-defined]
            result = obj.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], demux=False)
        except docker.errors.DockerException as exc:
            raise OSError(f"exec cat in {container}: {exc}") from exc
        if result.exit_code not in (0, 1):
            raise OSError(f"exec cat in {container} exited {result.exit_code}")
        return bytes(result.output or b"").decode("utf-8", "replace")

    return read


def _snapshot(target: ReuseTarget, reader: TableReader) -> set[ConnKey]:
    sockets: list[Socket] = []
    for container, pid in (
        (target.backend_container, target.backend_pid),
        (target.proxy_container, target.proxy_pid),
    ):
        # each table has a header line per file; parse them file by file
        for chunk in split_tables(reader(container, pid)):
            sockets.extend(parse_proc_net_tcp(chunk))
    return proxy_backend_connections(
        sockets, target.proxy_ips, target.backend_ips, target.backend_port
    )


def split_tables(text: str) -> list[str]:
    """Concatenated ``tcp`` and ``tcp6`` tables -> one text per table (each with its header)."""
    chunks: list[list[str]] = []
    for line in text.splitlines():
        if line.strip().startswith("sl"):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
    return ["\n".join(c) for c in chunks]


def _send(client: httpx.Client, url: str, count: int, deadline: float,
          interval_s: float = 0.0) -> tuple[int, int]:
    """Send up to ``count`` GETs before ``deadline``, one every ``interval_s`` at most (a
    proxy's rate limit); (sent, answered by the backend)."""
    sent = answered = 0
    due = time.monotonic()
    for _ in range(count):
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, max(deadline - now, 0.0)))
        if time.monotonic() > deadline:
            break
        due = time.monotonic() + interval_s
        sent += 1
        try:
            status = client.get(url).status_code
        except httpx.HTTPError:
            continue
        if status not in PROXY_ONLY_STATUSES:
            answered += 1
    return sent, answered


def measure_reuse(
    target: ReuseTarget,
    requests: int = 50,
    *,
    reader: TableReader = read_procfs_tables,
    method: str = "procfs",
    warmup: int = 3,
    timeout_s: float = 2.0,
    budget_s: float = 30.0,
    interval_s: float = 0.0,
    paced: str = "",
) -> ReuseMeasurement:
    """Send ``requests`` proxied GETs (bounded) and count new proxy->backend connections.

    ``interval_s``: at most one request per interval (under the proxy's own rate limit, so
    the measurement neither meets it nor eats other clients' budget); ``paced`` says why, and
    goes into the detail."""
    host = urlsplit(target.url).hostname or ""
    if not target.url.startswith("http://") or (host != "127.0.0.1"
                                                 and host not in target.proxy_ips):
        raise ValueError(f"reuse is measured on 127.0.0.1 or the proxy's own address only, "
                         f"not {target.url!r}")
    requests = max(1, min(int(requests), MAX_REQUESTS))
    deadline = time.monotonic() + budget_s
    with httpx.Client(timeout=timeout_s, trust_env=False) as http:
        _send(http, target.url, warmup, deadline, interval_s)  # let a keep-alive pool fill
        try:
            before = _snapshot(target, reader)
        except OSError as exc:
            return _unmeasured(target, requests, method, f"socket tables unreadable: {exc}")
        sent, answered = _send(http, target.url, requests, deadline, interval_s)
        try:
            after = _snapshot(target, reader)
        except OSError as exc:
            return _unmeasured(target, sent, method, f"socket tables unreadable after: {exc}")
    new = len(after - before)
    pct = reuse_percent(answered, new)
    detail = (
        f"{answered}/{sent} requests via {target.url} answered by the backend; "
        f"{new} new TCP connections {target.proxy_container} -> "
        f"{target.backend_container}:{target.backend_port} "
        f"(socket tables of both, {method}; {len(before)} present before)"
        + (f"; paced {paced}" if paced else "")
    )
    return ReuseMeasurement(sent, answered, new, pct, target.url, method, detail)


def _unmeasured(target: ReuseTarget, requests: int, method: str, why: str) -> ReuseMeasurement:
    return ReuseMeasurement(requests, 0, None, None, target.url, method, why)
