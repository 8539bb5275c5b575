"""The live probes of an incident narrowing ("the proxy returns 502"), from the proxy's side.

Every probe runs inside the proxy container's network namespace (the probe engine: setns,
sidecar or exec), so it sees what the proxy sees: Docker's resolver at 127.0.0.11, the
proxy's networks, the addresses it can reach. Who the proxy and the backend are, and on which
ports and paths, come from a snapshot's roles (:func:`context`), never from names.

Each probe returns an :class:`~revivadiag.analyze.incident.Observation`-shaped dict
(``ok``, ``outcome``, ``detail``, ``data``); :mod:`revivadiag.analyze.incident` judges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from revivadiag.collect.live import backend_hosts
from revivadiag.collect.proxy_config import read_nginx_config
from revivadiag.collect.roles import Roles
from revivadiag.collect.stack import healthcheck_path
from revivadiag.engine.jobs import DOCKER_DNS
from revivadiag.errors import ServiceNotFound

#: seconds for one request through the proxy (a stale address may take a connect timeout)
HTTP_TIMEOUT_S = 5.0
TCP_TIMEOUT_S = 1.0
LOG_TAIL = 200


@dataclass(frozen=True)
class IncidentContext:
    """Who is who in the stack of a snapshot, for the incident probes.

    ``through_path`` is the backend's health path as seen through the proxy (the proxy's
    route to the backend, e.g. ``/api/`` + ``/health``); ``backend_path`` the same path on
    the backend itself.
    """

    project: str
    proxy: str
    proxy_container: str
    proxy_container_id: str
    proxy_port: int
    through_path: str
    backend: str
    backend_port: int
    backend_path: str
    backend_hosts: frozenset[str]
    nginx_files: dict[str, str] | None = field(default=None, repr=False)
    nginx_source: str = ""
    docker_host: str | None = None

    def summary(self) -> dict[str, str]:
        """The context as a small mapping (for a notebook cell)."""
        return {"project": self.project, "proxy": f"{self.proxy} ({self.proxy_container}) "
                f"port {self.proxy_port}", "backend": f"{self.backend} port {self.backend_port}",
                "through the proxy": self.through_path, "straight to the backend":
                self.backend_path, "proxy configuration": self.nginx_source}


def _running(snap: Any, service: str) -> dict[str, Any]:
    rows = snap.containers[(snap.containers["service"] == service)
                           & (snap.containers["state"] == "running")]
    if rows.empty:
        raise ServiceNotFound(service, sorted(set(snap.containers["service"])))
    return dict(rows.sort_values("name").iloc[0])


def context(snap: Any, docker_host: str | None = None) -> IncidentContext:
    """The proxy, the backend, their ports (from the snapshot's roles), the backend's health
    path (its Docker healthcheck's, else the one the snapshot learned) and the proxy's nginx
    configuration (read through the engine's API)."""
    from revivadiag.engine.client import connect

    roles = Roles.from_snapshot(snap)
    proxy, backend = roles.service("proxy"), roles.service("backend")
    if proxy is None or backend is None:
        missing = "proxy" if proxy is None else "backend"
        raise ServiceNotFound(f"<the {missing} role>", sorted(roles.as_mapping()))
    pc, bc = _running(snap, proxy), _running(snap, backend)
    client = connect(docker_host)
    try:
        files, source = read_nginx_config(client, str(pc["name"]))
        inspect = client.api.inspect_container(str(bc["container_id"]))
    finally:
        client.close()
    test = ((inspect.get("Config") or {}).get("Healthcheck") or {}).get("Test")
    backend_path = healthcheck_path(test) or roles.http_path(backend) or "/"
    through = through_path(roles.route(backend), backend_path)
    return IncidentContext(
        project=snap.project, proxy=proxy, proxy_container=str(pc["name"]),
        proxy_container_id=str(pc["container_id"]), proxy_port=roles.port(proxy) or 80,
        through_path=through, backend=backend, backend_port=roles.port(backend) or 80,
        backend_path=backend_path, backend_hosts=backend_hosts(snap, backend),
        nginx_files=files, nginx_source=source, docker_host=docker_host)


def through_path(route: str, backend_path: str) -> str:
    """The backend's ``backend_path`` as requested through the proxy's ``route`` to it.

    >>> through_path("/api/", "/health"), through_path("/api/", "/api/health")
    ('/api/health', '/api/health')
    >>> through_path("", "/healthz")
    '/healthz'
    """
    if not route or backend_path.startswith(route):
        return backend_path
    return route.rstrip("/") + backend_path


def _run(ctx: IncidentContext, job: dict[str, Any]) -> dict[str, Any]:
    """One job inside the proxy's network namespace; its result."""
    from revivadiag.engine.client import connect
    from revivadiag.engine.probe import ProbeEngine

    client = connect(ctx.docker_host)
    try:
        with ProbeEngine(client, timeout_s=TCP_TIMEOUT_S) as engine:
            result = engine.run({ctx.proxy_container_id: [job]})
    finally:
        client.close()
    return next(iter(result.values()))[0]


def _http(ctx: IncidentContext, url: str, via_proxy: bool) -> dict[str, Any]:
    res = _run(ctx, {"kind": "http", "url": url, "samples": 1, "warmup": 0,
                     "timeout_s": HTTP_TIMEOUT_S, "via_proxy": via_proxy,
                     "new_connection": True})
    samples = res.get("samples") or []
    if samples:
        status = int(samples[0].get("status") or 0)
        return {"ok": 200 <= status < 400, "outcome": f"HTTP {status}",
                "detail": f"{samples[0].get('total_ms', 0):.1f} ms", "data": {"status": status}}
    error = str(res.get("error") or "no answer")
    status_text = error.rsplit(" ", 1)[-1]
    code = int(status_text) if status_text.isdigit() else None
    outcome = f"HTTP {code}" if code else str(res.get("error_type") or "error")
    return {"ok": False, "outcome": outcome, "detail": f"{res.get('error_type', '')}: {error}",
            "data": {"status": code}}


def request_through_proxy(ctx: IncidentContext) -> dict[str, Any]:
    """GET the backend's health path through the proxy (from the proxy's own namespace, to
    its listening port: the same path a client's request takes, published port or not)."""
    url = f"http://127.0.0.1:{ctx.proxy_port}{ctx.through_path}"
    return {"step": "request through the proxy", "target": url, **_http(ctx, url, True)}


def request_direct(ctx: IncidentContext) -> dict[str, Any]:
    """GET the backend's health path straight from the proxy's namespace, by service name
    (resolved now at Docker's resolver)."""
    url = f"http://{ctx.backend}:{ctx.backend_port}{ctx.backend_path}"
    return {"step": "request straight to the backend", "target": url, **_http(ctx, url, False)}


def resolve(ctx: IncidentContext, name: str) -> dict[str, Any]:
    """Ask Docker's resolver, from the proxy's namespace, for ``name`` (what nginx resolves)."""
    res = _run(ctx, {"kind": "dns", "name": name, "server": DOCKER_DNS, "timeout_s": 0.5,
                     "retries": 1})
    answers = [str(a) for a in res.get("answers") or []]
    rcode = str(res.get("rcode") or "ERROR")
    return {"step": "DNS from the proxy", "target": name, "ok": bool(answers),
            "outcome": "resolved" if answers else rcode,
            "detail": ", ".join(answers) or str(res.get("error") or ""),
            "data": {"answers": answers}}


def connect_from_proxy(ctx: IncidentContext, addresses: list[str], port: int,
                       step: str = "TCP to the address the proxy uses") -> dict[str, Any]:
    """A TCP connect from the proxy's namespace to each of ``addresses`` on ``port``."""
    outcomes = {}
    for ip in addresses:
        res = _run(ctx, {"kind": "tcp", "host": ip, "port": port, "timeout_s": TCP_TIMEOUT_S,
                         "retries": 0})
        outcomes[ip] = str(res.get("outcome") or "error")
    ok = bool(outcomes) and all(o == "open" for o in outcomes.values())
    detail = ", ".join(f"{ip}:{port} {o}" for ip, o in outcomes.items()) or "no address to try"
    worst = next((o for o in outcomes.values() if o != "open"), "open" if outcomes else "none")
    return {"step": step, "target": ", ".join(addresses) or "-", "ok": ok, "outcome": worst,
            "detail": detail, "data": {"outcomes": outcomes}}


def proxy_log_lines(ctx: IncidentContext, since: float | None = None,
                    tail: int = LOG_TAIL) -> list[str]:
    """The proxy container's last ``tail`` log lines, from ``since`` (epoch seconds) on when
    given (nginx logs its errors to stderr, which the engine keeps)."""
    from revivadiag.engine.client import connect

    client = connect(ctx.docker_host)
    try:
        kwargs: dict[str, Any] = {"since": int(since)} if since is not None else {}
        raw = client.containers.get(ctx.proxy_container).logs(tail=tail, stdout=True,
                                                              stderr=True, **kwargs)
    finally:
        client.close()
    return bytes(raw).decode("utf-8", "replace").splitlines()
