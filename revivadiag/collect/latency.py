"""The ``latency`` frame: HTTP timings direct to the backend and through the proxy.

Measured apart from the reachability sweep, with few requests in flight (each path's
requests one after the other; at most ``in_flight`` paths at once), after warm-up requests
that are discarded (a sweep inflates latency tenfold). The proxy and the backend are the
services holding those roles (:class:`~revivadiag.collect.roles.Roles`), on their learned
ports. From inside the proxy container's network namespace (the backend's own when the
stack has no proxy):

- ``direct``: ``http://<backend service>:<backend port><path>``
- ``proxy``:  ``http://127.0.0.1:<proxy port><path>`` (the proxy in front of the backend)

The paths are learned (:func:`discover_paths`): the backend's healthcheck path, ``/health``,
``/api/health`` or ``/``, one request each, preferring one path that answers both ways.

and from this host through the published ports, when the engine is local (``source``
``host``, method ``host``). Each path gets N samples summarised per phase (dns, connect,
first_byte, total; cumulative from the start of a request, like ``curl -w``) as
p50/p95/p99/mean. The raw samples are in ``frame.attrs["samples"]`` (see
:data:`SAMPLE_COLUMNS`) and from :func:`measure_latency`, for KPIs such as proxy overhead.

>>> summarize_samples(pd.DataFrame({"path": ["direct"] * 3, "source": ["f"] * 3,
...     "url": ["u"] * 3, "total_ms": [1.0, 2.0, 3.0], "dns_ms": [0.0] * 3,
...     "connect_ms": [0.5] * 3, "first_byte_ms": [0.9] * 3, "status": [200] * 3,
...     "method": ["setns"] * 3, "error_type": [""] * 3, "error": [""] * 3}))["p50_ms"].tolist()
[0.0, 0.5, 0.9, 2.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from revivadiag.collect.reachability import port_list
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.engine.jobs import DOCKER_DNS, Job, Result
from revivadiag.errors import ServiceNotFound
from revivadiag.schemas import to_frame

PHASES = ("dns", "connect", "first_byte", "total")
SAMPLE_COLUMNS = ("path", "source", "url", "sample", "dns_ms", "connect_ms", "first_byte_ms",
                  "total_ms", "status", "method", "error_type", "error")
LOOPBACK = "127.0.0.1"
#: paths measured at once (each path's requests are sequential); a sweep runs hundreds
DEFAULT_IN_FLIGHT = 1
_LOCAL_BINDS = ("", "0.0.0.0", "127.0.0.1", "::", "localhost")


@dataclass(frozen=True)
class LatencyRun:
    """The summary frame (schema ``latency``) and the raw samples behind it."""

    summary: pd.DataFrame
    samples: pd.DataFrame
    paths: Paths | None = None


@dataclass(frozen=True)
class Probe:
    """One measured path: where from, which URL, which job."""

    path: str
    source: str
    url: str
    job: Job


def service_member(containers: pd.DataFrame, service: str) -> Mapping[str, Any]:
    """The first container of ``service``, a running one when there is one.

    A stopped one is still returned: its probes then give rows that say why (the proxy's
    are CONTAINER_NOT_FOUND, a stopped backend's name does not resolve). ServiceNotFound
    only when the project has no such service at all.
    """
    rows = containers[containers["service"] == service]
    if rows.empty:
        known = sorted({str(s) for s in containers["service"] if s})
        raise ServiceNotFound(service, known)
    running = rows[rows["state"] == "running"]
    return dict((running if not running.empty else rows).iloc[0])


def first_port(member: Mapping[str, Any], wanted: int | None) -> int:
    """``wanted``, else the container's first exposed TCP port."""
    if wanted is not None:
        return wanted
    ports = port_list(member.get("exposed_ports"))
    if not ports:
        raise ServiceNotFound(f"{member.get('service')} (no exposed TCP port)")
    return ports[0]


def http_job(url: str, samples: int, warmup: int, via_proxy: bool, reuse: bool) -> Job:
    """An ``http`` job measuring ``url``."""
    return {"kind": "http", "url": url, "samples": samples, "warmup": warmup, "timeout_s": 2.0,
            "via_proxy": via_proxy, "new_connection": not reuse, "server": DOCKER_DNS}


def published(ports: pd.DataFrame | None, container: str, port: int) -> int | None:
    """The host port publishing ``container``'s ``port`` on a local address, if any."""
    if ports is None or ports.empty:
        return None
    rows = ports[(ports["container"] == container) & (ports["container_port"] == port)]
    for r in rows.to_dict("records"):
        if str(r.get("host_ip") or "") in _LOCAL_BINDS and pd.notna(r.get("host_port")):
            return int(r["host_port"])
    return None


#: a proxy that answers these instead of the backend failed as a proxy (the seed's PROXY_ERROR)
PROXY_STATUSES = frozenset({502, 503, 504})


def status_failure(path: str, status: Any) -> tuple[str, str]:
    """(error_type, error) of a sample by its HTTP status: an error answer (4xx/5xx, e.g. a
    proxy's 429 rate limit) is a failed sample, not a latency figure.

    >>> status_failure("proxy", 200), status_failure("proxy", 502), status_failure("direct", 429)
    (('', ''), ('PROXY_ERROR', 'HTTP 502'), ('', 'HTTP 429'))
    """
    try:
        code = int(status)
    except (TypeError, ValueError):
        return "", ""
    if code < 400:
        return "", ""
    etype = "PROXY_ERROR" if path == "proxy" and code in PROXY_STATUSES else ""
    return etype, f"HTTP {code}"


def sample_rows(probe: Probe, result: Result) -> list[dict[str, Any]]:
    """One row per successful or failed sample of one probe."""
    rows = []
    for i, s in enumerate(result.get("samples") or []):
        etype, error = status_failure(probe.path, s.get("status"))
        rows.append({"path": probe.path, "source": probe.source, "url": probe.url, "sample": i,
                     "method": result.get("method", ""), **s,
                     "error_type": etype, "error": error})
    for err in result.get("errors") or []:
        rows.append({"path": probe.path, "source": probe.source, "url": probe.url,
                     "sample": len(rows), "method": result.get("method", ""),
                     "error_type": err.get("error_type", ""), "error": err.get("error", "")})
    return rows


def summarize_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The ``latency`` frame: per (path, source, url) and phase, percentiles of good samples."""
    rows: list[dict[str, Any]] = []
    for (path, source, url), group in samples.groupby(["path", "source", "url"], sort=False):
        good = group[group["error_type"].fillna("").eq("") & group["error"].fillna("").eq("")
                     & group["total_ms"].notna()]
        bad = group.drop(good.index)
        typed = bad["error_type"].fillna("")
        typed = typed[typed.ne("")]
        etype = str(typed.mode().iloc[0]) if not typed.empty else ""
        for phase in PHASES:
            values = pd.to_numeric(good[f"{phase}_ms"], errors="coerce").dropna()
            rows.append({"path": path, "source": source, "url": url, "phase": phase,
                         "samples": len(values), "errors": len(bad),
                         "p50_ms": values.quantile(0.50) if len(values) else None,
                         "p95_ms": values.quantile(0.95) if len(values) else None,
                         "p99_ms": values.quantile(0.99) if len(values) else None,
                         "mean_ms": values.mean() if len(values) else None,
                         "method": str(group["method"].iloc[0]), "error_type": etype})
    return to_frame("latency", rows)


#: paths tried on a backend, after its own healthcheck's
HEALTH_PATHS = ("/health", "/api/health", "/")
#: one request per candidate path while learning them
DISCOVERY_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Paths:
    """Where latency is measured: services, ports and the paths that answered."""

    source_service: str
    backend: str
    backend_port: int
    direct_path: str
    proxy: str | None = None
    proxy_port: int | None = None
    proxy_path: str = ""


def path_candidates(healthcheck_path: str = "", route: str = "") -> tuple[list[str], list[str]]:
    """(direct candidates, through-the-proxy candidates), bounded and in order.

    ``route``: the proxy location that forwards to the backend; through the proxy only paths
    under it are tried (a path the proxy answers itself would not measure the backend).

    >>> path_candidates("/healthz")[1][:3]
    ['/api/healthz', '/api/health', '/healthz']
    >>> path_candidates("/healthz", "/v1/")[1]
    ['/v1/healthz', '/v1/health', '/v1/api/health', '/v1/']
    """
    direct = list(dict.fromkeys(p for p in (healthcheck_path, *HEALTH_PATHS) if p))
    prefix = route.strip("=~^* ")
    if prefix.startswith("/") and prefix != "/":
        under = [p if p.startswith(prefix) else prefix.rstrip("/") + p
                 for p in direct if p != "/"]
        return direct, list(dict.fromkeys([*under, prefix]))
    api = [p if p.startswith("/api") else "/api" + p for p in direct if p != "/"]
    rest = [p for p in direct if p != "/"]
    proxy = list(dict.fromkeys([*api, *rest, "/"]))
    return direct, proxy


def _ok(result: Result | None) -> bool:
    samples = (result or {}).get("samples") or []
    return bool(samples) and int(samples[0].get("status") or 0) < 400


def choose_paths(direct: Sequence[str], proxy: Sequence[str],
                 direct_ok: Mapping[str, bool], proxy_ok: Mapping[str, bool]) -> tuple[str, str]:
    """(direct path, proxy path): one path answering both ways first, else each one's first.

    >>> choose_paths(["/health", "/api/health"], ["/api/health", "/health"],
    ...              {"/health": True, "/api/health": True}, {"/api/health": True})
    ('/api/health', '/api/health')
    """
    both = [p for p in proxy if proxy_ok.get(p) and direct_ok.get(p)]
    if both:
        return both[0], both[0]
    d = next((p for p in direct if direct_ok.get(p)), direct[0] if direct else "/")
    x = next((p for p in proxy if proxy_ok.get(p)), d)
    return d, x


def discover_paths(engine: Any, source_id: str, paths: Paths, healthcheck_path: str = "",
                   route: str = "") -> Paths:
    """``paths`` with the direct and proxy paths that answer (one request per candidate)."""
    direct, proxy = path_candidates(healthcheck_path, route)
    if paths.proxy is None:
        proxy = []
    jobs = [{"kind": "http", "url": f"http://{paths.backend}:{paths.backend_port}{p}",
             "samples": 1, "warmup": 0, "timeout_s": DISCOVERY_TIMEOUT_S,
             "new_connection": True, "server": DOCKER_DNS} for p in direct]
    jobs += [{"kind": "http", "url": f"http://{LOOPBACK}:{paths.proxy_port}{p}", "samples": 1,
              "warmup": 0, "timeout_s": DISCOVERY_TIMEOUT_S, "new_connection": True,
              "via_proxy": True} for p in proxy]
    results: list[Result] = engine.run({source_id: jobs}, concurrency=1)[source_id]
    d_ok = {p: _ok(r) for p, r in zip(direct, results[:len(direct)], strict=False)}
    x_ok = {p: _ok(r) for p, r in zip(proxy, results[len(direct):], strict=False)}
    d_path, x_path = choose_paths(direct, proxy, d_ok, x_ok)
    return Paths(paths.source_service, paths.backend, paths.backend_port, d_path, paths.proxy,
                 paths.proxy_port, x_path if paths.proxy is not None else "")


def plan_paths(containers: pd.DataFrame, roles: Roles) -> Paths:
    """Proxy and backend from ``roles`` (ServiceNotFound naming the missing role)."""
    backend = roles.service("backend")
    if backend is None:
        raise ServiceNotFound("backend (no service holds the role backend)",
                              sorted(roles.as_mapping()))
    proxy = roles.service("proxy")
    member = service_member(containers, backend)
    bport = roles.port(backend) or first_port(member, None)
    if proxy is None:
        return Paths(backend, backend, bport, roles.http_path(backend) or "/")
    pport = roles.port(proxy) or first_port(service_member(containers, proxy), None)
    return Paths(proxy, backend, bport, roles.http_path(backend) or "/", proxy, pport,
                 roles.http_path(proxy) or roles.http_path(backend) or "/")


def plan_probes(containers: pd.DataFrame, ports: pd.DataFrame | None, samples: int, warmup: int,
                paths: Paths, reuse: bool) -> tuple[str, list[Probe], list[Probe]]:
    """(source container id, probes from its namespace, probes from this host)."""
    source = service_member(containers, paths.source_service)
    backend = service_member(containers, paths.backend)
    url = f"http://{paths.backend}:{paths.backend_port}{paths.direct_path}"
    inside = [Probe("direct", str(source["name"]), url,
                    http_job(url, samples, warmup, False, reuse))]
    targets = [(backend["name"], "direct", paths.backend_port, paths.direct_path, False)]
    if paths.proxy is not None and paths.proxy_port is not None:
        url = f"http://{LOOPBACK}:{paths.proxy_port}{paths.proxy_path}"
        inside.append(Probe("proxy", str(source["name"]), url,
                            http_job(url, samples, warmup, True, reuse)))
        proxy = service_member(containers, paths.proxy)
        targets.append((proxy["name"], "proxy", paths.proxy_port, paths.proxy_path, True))
    host: list[Probe] = []
    for name, kind, port, path, via in targets:
        hport = published(ports, str(name), port)
        if hport is not None:
            url = f"http://{LOOPBACK}:{hport}{path}"
            host.append(Probe(kind, "host", url, http_job(url, samples, warmup, via, reuse)))
    return str(source["container_id"]), inside, host


def _roles(containers: pd.DataFrame, roles: Roles | None) -> Roles:
    return roles if roles is not None else Roles(infer_roles(containers))


def measure_latency(engine: Any, containers: pd.DataFrame, ports: pd.DataFrame | None,
                    samples: int = 20, *, roles: Roles | None = None, warmup: int = 3,
                    reuse_connection: bool = False, from_host: bool = True,
                    in_flight: int = DEFAULT_IN_FLIGHT, discover: bool = True,
                    path: str | None = None) -> LatencyRun:
    """Measure every path; see the module docstring.

    ``roles`` name the proxy and the backend (inferred from ``containers`` alone when not
    given). Requests of one path are always sequential; ``in_flight`` paths are measured at
    once (1: strictly one request at a time; 2: direct and proxy together; 4: the host paths
    too). ``discover``: learn the paths first (:func:`discover_paths`); ``path``: measure
    this one path, direct and through the proxy, instead (e.g. a delay endpoint).
    """
    known = _roles(containers, roles)
    paths = plan_paths(containers, known)
    source_id = str(service_member(containers, paths.source_service)["container_id"])
    if path is not None:
        paths = replace(paths, direct_path=path, proxy_path=path if paths.proxy else "")
    elif discover:
        backend = paths.backend
        paths = discover_paths(engine, source_id, paths, known.http_path(backend),
                               known.route(backend))
    proxy_id, inside, host = plan_probes(containers, ports, samples, warmup, paths,
                                         reuse_connection)
    if not (from_host and engine.settings.local):
        host = []
    per_side = max(1, min(2, in_flight))

    def run_inside() -> list[Result]:
        rows: list[Result] = engine.run({proxy_id: [p.job for p in inside]},
                                        concurrency=per_side)[proxy_id]
        return rows

    def run_host() -> list[Result]:
        return list(engine.run_host([p.job for p in host], concurrency=per_side)) if host else []

    with ThreadPoolExecutor(max_workers=2 if in_flight > 2 else 1) as pool:
        inside_future = pool.submit(run_inside)
        host_future = pool.submit(run_host)
        pairs = [*zip(inside, inside_future.result(), strict=True),
                 *zip(host, host_future.result(), strict=True)]
    rows = [row for probe, result in pairs for row in sample_rows(probe, result)]
    frame = pd.DataFrame.from_records(rows, columns=list(SAMPLE_COLUMNS))
    return LatencyRun(summarize_samples(frame), frame, paths)


def collect_latency(engine: Any, containers: pd.DataFrame, ports: pd.DataFrame | None,
                    samples: int = 20, *, roles: Roles | None = None,
                    warmup: int = 3) -> pd.DataFrame:
    """The ``latency`` frame; the raw samples ride along in ``frame.attrs["samples"]``.

    For connection reuse, no host probes or the learned paths, call :func:`measure_latency`.
    """
    run = measure_latency(engine, containers, ports, samples, roles=roles, warmup=warmup)
    frame = run.summary
    frame.attrs["samples"] = run.samples
    return frame
