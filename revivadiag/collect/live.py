"""The live facts of a snapshot, gathered through the project's own proxy and engine.

:func:`gather_live` is the one call :func:`revivadiag.analyze.diagnosis.diagnose` makes: it
measures connection reuse through the proxy (:mod:`revivadiag.collect.connections`), sends
the bounded HTTP checks (:func:`gather`) and reads the proxy's nginx configuration, and
returns plain data (:class:`LiveGathering`, :class:`~revivadiag.collect.live_facts.LiveFacts`).

Every request goes to ``http://127.0.0.1:<published proxy port>``, or, when the proxy
publishes nothing, to ``http://<the proxy container's own address>:<its port>`` (reachable
from the engine host); every loop is bounded. The proxy's configuration is read by
:func:`revivadiag.collect.proxy_config.read_nginx_config`. Nothing here judges;
:mod:`revivadiag.analyze.config_audit` does.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from revivadiag.collect import connections, nginx_conf
from revivadiag.collect.live_facts import (
    ECHO_PATH,
    FAKE_CLIENT_IP,
    FOREIGN_ORIGIN,
    HttpResult,
    LiveFacts,
    ReuseMeasurement,
)
from revivadiag.collect.proxy_config import read_nginx_config, websocket_locations
from revivadiag.collect.roles import Roles
from revivadiag.collect.snapshot import Snapshot
from revivadiag.errors import RevivadiagError

#: proxies whose configuration is nginx's
NGINX_SOFTWARE = ("", "nginx", "openresty")

MAX_BURST = 200
BURST_CONCURRENCY = 25  # arrivals at once: a limit shows whatever the response time
MAX_SCRIPTS = 5
MAX_BODY = 1_000_000
_SCRIPT_SRC = re.compile(r"<script[^>]+src\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


def check_loopback(base_url: str, allowed_hosts: Iterable[str] = ()) -> str:
    """``base_url`` if it is ``http://127.0.0.1:PORT`` or ``http://<allowed host>:PORT``
    (the proxy container's own addresses); ValueError otherwise.

    >>> check_loopback("http://10.0.0.5:80", {"10.0.0.5"})
    'http://10.0.0.5:80'
    """
    m = re.fullmatch(r"http://([0-9.]+):\d{1,5}", base_url)
    if m is None or (m.group(1) != "127.0.0.1" and m.group(1) not in set(allowed_hosts)):
        raise ValueError(f"live checks talk to http://127.0.0.1:PORT or the proxy's own "
                         f"address only, not {base_url!r}")
    return base_url


def _request(http: httpx.Client, method: str, url: str, **kw: Any) -> HttpResult:
    try:
        r = http.request(method, url, **kw)
    except httpx.HTTPError as exc:
        return HttpResult(error=f"{type(exc).__name__}: {exc}"[:300])
    return HttpResult(r.status_code, {k.lower(): v for k, v in r.headers.items()},
                      r.text[:MAX_BODY])


def fetch_page(http: httpx.Client, base: str) -> tuple[HttpResult, dict[str, str]]:
    """The page at ``/`` and up to MAX_SCRIPTS same-origin scripts it loads."""
    page = _request(http, "GET", base + "/")
    scripts: dict[str, str] = {}
    for src in _SCRIPT_SRC.findall(page.body)[:MAX_SCRIPTS]:
        if src.startswith("/") and not src.startswith("//"):
            res = _request(http, "GET", base + src)
            if res.status == 200:
                scripts[src] = res.body
    return page, scripts


def websocket_check(base: str, timeout_s: float = 3.0, path: str = "/ws") -> tuple[bool, str]:
    """Open ws://...<path> through the proxy, send one message, wait for the echo."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    url = "ws://" + base.removeprefix("http://") + path
    try:
        with connect(url, open_timeout=timeout_s, close_timeout=1.0) as ws:
            ws.send("revivadiag-ping")
            reply = ws.recv(timeout=timeout_s)
    except (WebSocketException, OSError, TimeoutError) as exc:
        return False, f"{url}: {type(exc).__name__}: {exc}"[:300]
    shown = reply if isinstance(reply, str) else reply.decode("utf-8", "replace")
    return True, f"{url}: upgraded (101), echo {shown[:80]!r}"


def burst(
    http: httpx.Client, url: str, count: int = 50, budget_s: float = 10.0,
    concurrency: int = BURST_CONCURRENCY, interval_s: float = 0.0,
) -> dict[str, int]:
    """Status counts of ``count`` GETs sent ``concurrency`` at a time (bounded in time); with
    ``interval_s`` (a declared rate limit) one at a time, one per interval at most."""
    deadline = time.monotonic() + budget_s
    if interval_s > 0:
        counts: Counter[str] = Counter()
        for _ in range(max(1, min(count, MAX_BURST))):
            if time.monotonic() + interval_s > deadline:
                counts["not_sent"] += 1
                continue
            res = _request(http, "GET", url)
            counts[str(res.status) if res.status is not None else "error"] += 1
            time.sleep(interval_s)
        return dict(counts)

    def one(_: int) -> str:
        if time.monotonic() > deadline:
            return "not_sent"
        res = _request(http, "GET", url)
        return str(res.status) if res.status is not None else "error"

    n = max(1, min(count, MAX_BURST))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, n))) as pool:
        return dict(Counter(pool.map(one, range(n))))


def gather(base_url: str, *, burst_count: int = 50, timeout_s: float = 3.0,
           health_path: str = "/", allowed_hosts: Iterable[str] = (),
           websocket_path: str | None = "/ws",
           limit: nginx_conf.RateLimit | None = None) -> LiveFacts:
    """All HTTP-level live facts from the proxy at ``base_url`` (see :func:`check_loopback`).

    ``health_path``: a path the proxy forwards to the backend (preflights and the burst);
    ``websocket_path``: the proxy's WebSocket location (None: it has none, not tried);
    ``limit``: the proxy's declared rate limit on ``health_path``: the burst then stays under
    it (at most half its burst, at half its rate), so the diagnosis never has the proxy
    refuse its other clients; the declaration is the evidence of the limit.
    """
    base = check_loopback(base_url, allowed_hosts)
    facts = LiveFacts(base_url=base, health_path=health_path)
    interval = 0.0
    if limit is not None:
        interval = limit.interval_s()
        burst_count = max(1, min(burst_count, limit.burst // 2 or 1))
        facts.rate_limit = limit.describe()
        facts.paced = (f"{burst_count} requests at {1 / interval:.3g}/s, under the declared "
                       f"{limit.describe()}")
    limits = httpx.Limits(max_connections=BURST_CONCURRENCY)
    with httpx.Client(timeout=timeout_s, trust_env=False, limits=limits) as http:
        facts.page, facts.scripts = fetch_page(http, base)
        facts.echo = _request(http, "GET", base + ECHO_PATH,
                              headers={"X-Forwarded-For": FAKE_CLIENT_IP})
        for origin in (FOREIGN_ORIGIN, "http://localhost:" + base.rsplit(":", 1)[1]):
            facts.cors[origin] = _request(
                http, "OPTIONS", base + health_path,
                headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "content-type"},
            )
        if websocket_path:
            facts.websocket = websocket_check(base, timeout_s, websocket_path)
        facts.burst = burst(http, base + health_path, burst_count, interval_s=interval)
    return facts


@dataclass(frozen=True)
class ProxyTarget:
    """The proxy and the backend of a stack, as the live steps use them."""

    proxy: str
    proxy_port: int
    backend: str
    backend_port: int
    path: str


def proxy_target(roles: Roles) -> ProxyTarget:
    """The services holding the proxy and backend roles, their ports and the learned path.

    ServiceNotFound-like :class:`~revivadiag.errors.RevivadiagError` naming what is missing.
    """
    from revivadiag.errors import ServiceNotFound

    proxy, backend = roles.service("proxy"), roles.service("backend")
    if proxy is None or backend is None:
        missing = " and ".join(r for r, s in (("proxy", proxy), ("backend", backend)) if not s)
        raise ServiceNotFound(f"{missing} (no service holds the role)",
                              sorted(roles.as_mapping()))
    pport, bport = roles.port(proxy), roles.port(backend)
    if pport is None or bport is None:
        raise ServiceNotFound(f"{proxy if pport is None else backend} (its port is unknown)")
    path = roles.http_path(proxy) or roles.http_path(backend) or "/"
    return ProxyTarget(proxy, pport, backend, bport, path)


def _engine(snapshot: Snapshot, docker_host: str | None) -> tuple[Any, str, bool]:
    """A client for the snapshot's engine, its address, and whether it runs on this host."""
    from revivadiag.engine.client import connect, engine_address, is_local_address

    address = docker_host or (snapshot.meta.engine_address
                              if "***" not in snapshot.meta.engine_address else None)
    address = engine_address(address or None)
    return connect(address), address, is_local_address(address)


def _current_pids(client: Any, target: connections.ReuseTarget) -> connections.ReuseTarget:
    """The target with today's init pids (a container restarted since the snapshot moved)."""
    import docker.errors

    def pid(name: str, old: int) -> int:
        try:
            return int(client.api.inspect_container(name)["State"]["Pid"] or 0)
        except (docker.errors.DockerException, KeyError, TypeError, ValueError):
            return old

    return replace(target, proxy_pid=pid(target.proxy_container, target.proxy_pid),
                   backend_pid=pid(target.backend_container, target.backend_pid))


def _measure_reuse(snapshot: Snapshot, roles: Roles, client: Any, procfs: bool,
                   requests: int, notes: list[str],
                   limit: nginx_conf.RateLimit | None = None) -> ReuseMeasurement | None:
    try:
        t = proxy_target(roles)
        target = connections.target_from_frames(
            snapshot.containers, snapshot.endpoints, snapshot.ports, proxy_service=t.proxy,
            proxy_port=t.proxy_port, backend_service=t.backend, backend_port=t.backend_port,
            path=t.path)
    except RevivadiagError as exc:
        notes.append(f"connection reuse not measured: {exc}")
        return None
    pace: dict[str, Any] = {}
    if limit is not None:
        pace = {"interval_s": limit.interval_s(),
                "paced": f"at {1 / limit.interval_s():.3g}/s under the declared "
                         f"{limit.describe()}"}
    if procfs:
        target = _current_pids(client, target)
        return connections.measure_reuse(target, requests, **pace)
    return connections.measure_reuse(target, requests, reader=connections.exec_table_reader(client),
                                     method="exec", **pace)


def declared_limit(files: dict[str, str] | None, path: str) -> nginx_conf.RateLimit | None:
    """The proxy's rate limit on ``path`` as its configuration declares it (None without
    one, or when the configuration cannot be parsed)."""
    if not files:
        return None
    try:
        return nginx_conf.parse_files(files).limit_for(path)
    except (ValueError, KeyError, OSError):
        return None


def _gather_live(snapshot: Snapshot, roles: Roles, client: Any, burst: int,
                 notes: list[str], conf: LiveFacts | None = None) -> LiveFacts | None:
    try:
        t = proxy_target(roles)
        base = connections.proxy_base_url(snapshot.containers, snapshot.endpoints,
                                          snapshot.ports, t.proxy, t.proxy_port)
    except RevivadiagError as exc:
        notes.append(f"live proxy checks skipped: {exc}")
        return None
    own = set(snapshot.endpoints[snapshot.endpoints["service"] == t.proxy]["ipv4"].astype(str))
    if conf is None:
        conf = LiveFacts(base_url="")
        _read_nginx(snapshot, roles, client, conf)
    ws = websocket_locations(conf.nginx_files) if conf.nginx_files else []
    facts = gather(base, burst_count=burst, health_path=t.path, allowed_hosts=own,
                   websocket_path=ws[0] if ws else None,
                   limit=declared_limit(conf.nginx_files, t.path))
    facts.nginx_files, facts.nginx_source = conf.nginx_files, conf.nginx_source
    facts.backend_hosts = backend_hosts(snapshot, t.backend)
    return facts


def backend_hosts(snapshot: Snapshot, backend: str) -> frozenset[str]:
    """Every name and address the backend answers to (what a proxy_pass may name)."""
    eps = snapshot.endpoints[snapshot.endpoints["service"] == backend]
    names = {backend, *snapshot.containers[snapshot.containers["service"] == backend]["name"]}
    for rec in eps.to_dict("records"):
        names.update([*list(rec["aliases"]), *list(rec["dns_names"]), rec["ipv4"]])
    return frozenset(str(n).lower() for n in names if n)


def _nginx_only(snapshot: Snapshot, roles: Roles, client: Any) -> LiveFacts:
    facts = LiveFacts(base_url="")
    _read_nginx(snapshot, roles, client, facts)
    backend = roles.service("backend")
    if backend:
        facts.backend_hosts = backend_hosts(snapshot, backend)
    return facts


def _read_nginx(snapshot: Snapshot, roles: Roles, client: Any, facts: LiveFacts) -> None:
    """The proxy container's nginx configuration into ``facts`` (through the engine's API)."""
    proxy = roles.service("proxy")
    if proxy is None:
        facts.nginx_source = "no service holds the role proxy"
        return
    software = roles.software(proxy)
    if software not in NGINX_SOFTWARE:
        facts.nginx_source = f"the proxy {proxy} runs {software}, not nginx"
        return
    proxies = snapshot.containers[(snapshot.containers["service"] == proxy)
                                  & (snapshot.containers["state"] == "running")]
    if len(proxies):
        facts.nginx_files, facts.nginx_source = read_nginx_config(
            client, str(proxies["name"].iloc[0]))
    else:
        facts.nginx_source = f"no running {proxy} container"


def nginx_facts(snapshot: Snapshot, docker_host: str | None = None) -> LiveFacts:
    """Only the proxy's nginx configuration (through the engine's API): no request is sent,
    for a stack that must not be loaded (an incident being narrowed)."""
    client, _address, _local = _engine(snapshot, docker_host)
    try:
        return _nginx_only(snapshot, Roles.from_snapshot(snapshot), client)
    finally:
        client.close()


@dataclass
class LiveGathering:
    """What the live steps of one snapshot gathered: facts for the audit, reuse for the KPIs,
    and a note for each step that could not run."""

    facts: LiveFacts | None = None
    reuse: ReuseMeasurement | None = None
    notes: list[str] = field(default_factory=list)


def gather_live(snapshot: Snapshot, roles: Roles | None = None, *, requests: int = 50,
                burst: int = 50, docker_host: str | None = None) -> LiveGathering:
    """Connection reuse (``requests`` proxied GETs), the HTTP checks (a ``burst`` of GETs)
    and the proxy's nginx configuration, for the stack of ``snapshot``.

    On an engine that is not on this host only its API is used (the nginx configuration);
    a step that cannot run leaves a note, never an exception.
    """
    roles = Roles.from_snapshot(snapshot) if roles is None else roles
    out = LiveGathering()
    client, address, on_this_host = _engine(snapshot, docker_host)
    try:
        if on_this_host:
            # the configuration first: a declared rate limit paces the requests below
            conf = LiveFacts(base_url="")
            _read_nginx(snapshot, roles, client, conf)
            limit = None
            with contextlib.suppress(RevivadiagError):  # no target: the steps below say so
                limit = declared_limit(conf.nginx_files, proxy_target(roles).path)
            out.reuse = _measure_reuse(snapshot, roles, client, os.geteuid() == 0, requests,
                                       out.notes, limit)
            out.facts = _gather_live(snapshot, roles, client, burst, out.notes, conf)
        else:  # 127.0.0.1 here is not the engine's host: only the API is used
            out.notes.append(f"live HTTP checks skipped: the engine at {address} is not on "
                             "this host, so its published ports are not on 127.0.0.1")
            out.facts = _nginx_only(snapshot, roles, client)
    finally:
        client.close()
    return out
