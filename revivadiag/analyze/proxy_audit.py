"""The proxy's checks: keep-alive, re-resolution, WebSocket, forwarded headers, CORS, rate limit.

Pure judgement of what :func:`revivadiag.collect.live.gather` and
:func:`revivadiag.collect.proxy_config.read_nginx_config` observed.

>>> from revivadiag.collect.live_facts import HttpResult, LiveFacts
>>> facts = LiveFacts("http://127.0.0.1:8080", burst={"200": 50})
>>> check_rate_limit(facts)[0]["status"]
'fail'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlsplit

import pandas as pd

from revivadiag.analyze.checks import Row, row
from revivadiag.collect import nginx_conf
from revivadiag.collect.live_facts import FAKE_CLIENT_IP, FOREIGN_ORIGIN, LiveFacts
from revivadiag.collect.proxy_config import expand_variables, nginx_variables

#: environment variables and labels by which a deployment declares that something outside
#: nginx keeps the upstream address current (the lab's target entrypoint reads the first)
WATCHER_ENV_KEYS = ("RESOLVE_INTERVAL_S", "UPSTREAM_RESOLVE_INTERVAL_S")
WATCHER_LABEL = "io.revivadiag.upstream-resolver"
FORWARDED = ("x-forwarded-proto", "x-forwarded-for", "x-forwarded-host")
LIMIT_STATUSES = ("429", "503")


def declared_watcher(
    env: pd.DataFrame, containers: pd.DataFrame, proxy_service: str
) -> str | None:
    """How the proxy's deployment declares upstream re-resolution, or None."""
    mine = env[(env["service"] == proxy_service) & env["key"].isin(WATCHER_ENV_KEYS)]
    if len(mine):
        rec = mine.iloc[0]
        return f"{rec['container']} {rec['key']}={rec['value']}: entrypoint re-resolves and reloads"
    for rec in containers[containers["service"] == proxy_service].to_dict("records"):
        try:
            labels = json.loads(str(rec["labels"]) or "{}")
        except ValueError:
            continue
        if labels.get(WATCHER_LABEL):
            return f"{rec['name']} label {WATCHER_LABEL}={labels[WATCHER_LABEL]}"
    return None


def echo_headers(live: LiveFacts) -> dict[str, str] | None:
    """Headers the backend received (lower-case names), from /api/debug/echo's JSON."""
    if live.echo is None or live.echo.status != 200:
        return None
    try:
        data = json.loads(live.echo.body)
    except ValueError:
        return None
    headers = data.get("headers", data) if isinstance(data, dict) else None
    if not isinstance(headers, Mapping):
        return None
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _echo_version(live: LiveFacts) -> str:
    try:
        data = json.loads(live.echo.body) if live.echo is not None else {}
    except ValueError:
        return ""
    return f"; backend saw HTTP/{data['http_version']}" if "http_version" in data else ""


def backend_routes(cfg: nginx_conf.NginxConfig, hosts: frozenset[str],
                   variables: Mapping[str, str] | None = None) -> nginx_conf.NginxConfig:
    """``cfg`` with only the proxy_pass directives that lead to the backend (its names or
    addresses, directly, through an upstream, or through a ``set $var``); all of them when
    none does or no backend is known.

    >>> cfg = nginx_conf.parse_files({"n": "upstream b { server api:8000; } server { "
    ...     "location / { proxy_pass http://web:3000; } location /api/ { proxy_pass http://b; } }"})
    >>> [p.location for p in backend_routes(cfg, frozenset({"api"})).proxy_passes]
    ['/api/']
    """
    def leads_to_backend(p: nginx_conf.ProxyPass) -> bool:
        host = p.host
        if p.uses_variable:
            host = urlsplit(expand_variables(p.url, variables or {})).hostname or host
        up = cfg.upstreams.get(host)
        targets = [s.rsplit(":", 1)[0].lower() for s, _ in up.servers] if up else [host]
        return any(t.lower() in hosts for t in targets)

    mine = [p for p in cfg.proxy_passes if leads_to_backend(p)] if hosts else []
    if not mine:
        return cfg
    return replace(cfg, proxy_passes=mine)


def check_nginx(live: LiveFacts | None, watcher: str | None) -> list[Row]:
    """Upstream keep-alive and name re-resolution from the parsed configuration."""
    if live is None or live.nginx_files is None:
        why = ("live checks off" if live is None
               else f"configuration unreadable: {live.nginx_source}")
        return [row("proxy-keepalive", "nginx", "skip", why),
                row("proxy-resolution", "nginx", "skip", why)]
    cfg = backend_routes(nginx_conf.parse_files(live.nginx_files), live.backend_hosts,
                         nginx_variables(live.nginx_files))
    src = f" [{live.nginx_source}]"
    ka_status, ka_ev = nginx_conf.keepalive_verdict(cfg)
    rs_status, rs_ev = nginx_conf.resolution_verdict(cfg, watcher)
    return [row("proxy-keepalive", "nginx", ka_status, ka_ev + _echo_version(live) + src),
            row("proxy-resolution", "nginx", rs_status, rs_ev + src)]


def check_websocket(live: LiveFacts) -> list[Row]:
    """Upgrade to WebSocket at the proxy's WebSocket location, with one echoed message."""
    if live.websocket is None:
        return [row("websocket-upgrade", "/ws", "skip",
                    "not tried (the proxy's configuration has no WebSocket location)")]
    ok, evidence = live.websocket
    return [row("websocket-upgrade", "/ws", "pass" if ok else "fail", evidence)]


def check_forwarded(live: LiveFacts) -> list[Row]:
    """Which X-Forwarded-* headers the backend received, and whether a client's XFF is kept."""
    headers = echo_headers(live)
    if headers is None:
        why = live.echo.error or f"HTTP {live.echo.status}" if live.echo else "not requested"
        return [row("forwarded-headers", "/api/debug/echo", "skip", f"no echo: {why}"),
                row("xff-spoofing", "/api/debug/echo", "skip", f"no echo: {why}")]
    seen = ", ".join(f"{h}: {headers[h]}" for h in FORWARDED if h in headers)
    missing = [h for h in FORWARDED if h not in headers]
    fwd = row("forwarded-headers", "/api/debug/echo", "fail" if missing else "pass",
              (seen or "none received") + (f"; missing {', '.join(missing)}" if missing else ""))
    xff = headers.get("x-forwarded-for", "")
    spoofed = FAKE_CLIENT_IP in xff
    xff_row = row(
        "xff-spoofing", "/api/debug/echo", "fail" if spoofed else "pass",
        f"client sent X-Forwarded-For: {FAKE_CLIENT_IP}; backend received {xff or 'none'}"
        + ("; passed through unchecked (spoofable client address)" if spoofed
           else "; replaced by the peer address"),
    )
    return [fwd, xff_row]


def check_cors(live: LiveFacts) -> list[Row]:
    """Preflight with a foreign Origin must not be allowed (``*`` or reflected)."""
    if not live.cors:
        return [row("cors-preflight", live.health_path, "skip", "not tried")]
    parts, status = [], "pass"
    for origin, res in live.cors.items():
        if res.status is None:
            parts.append(f"Origin {origin}: {res.error}")
            continue
        acao = res.headers.get("access-control-allow-origin", "")
        parts.append(f"Origin {origin}: HTTP {res.status}, Allow-Origin {acao or 'none'}")
        if origin == FOREIGN_ORIGIN and acao in ("*", origin):
            status = "fail"
    if all(r.status is None for r in live.cors.values()):
        status = "skip"
    return [row("cors-preflight", f"OPTIONS {live.health_path}", status, "; ".join(parts))]


def check_rate_limit(live: LiveFacts) -> list[Row]:
    """A back-to-back burst should meet 429/503 from the proxy. A limit the configuration
    declares is the evidence itself: the burst was then paced under it (so the diagnosis does
    not have the proxy refuse its other clients) and only shows the path answers."""
    if live.rate_limit:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(live.burst.items()))
        return [row("rate-limit", live.health_path, "pass",
                    f"declared: {live.rate_limit}; burst paced ({live.paced}): {counts}")]
    if not live.burst:
        return [row("rate-limit", live.health_path, "skip", "not tried")]
    total = sum(live.burst.values())
    limited = sum(live.burst.get(s, 0) for s in LIMIT_STATUSES)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(live.burst.items()))
    if limited:
        return [row("rate-limit", live.health_path, "pass",
                    f"{limited}/{total} limited in a burst of {total} ({counts})")]
    return [row("rate-limit", live.health_path, "fail",
                f"no request limited in a burst of {total} ({counts})")]


def proxy_checks(live: LiveFacts | None, watcher: str | None) -> list[Row]:
    """Every proxy check (skips when live checks are off)."""
    rows = check_nginx(live, watcher)
    if live is None:
        return rows + [row(c, "proxy", "skip", "live checks off") for c in
                       ("websocket-upgrade", "forwarded-headers", "xff-spoofing",
                        "cors-preflight", "rate-limit")]
    return rows + check_websocket(live) + check_forwarded(live) + check_cors(live) \
        + check_rate_limit(live)
