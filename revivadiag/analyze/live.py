"""Live facts for the config audit, gathered through the project's own proxy.

Every request goes to ``http://127.0.0.1:<published proxy port>``, or, when the proxy
publishes nothing, to ``http://<the proxy container's own address>:<its port>`` (reachable
from the engine host); every loop is bounded. The proxy's configuration is read by
:func:`revivadiag.collect.proxy_config.read_nginx_config`. Nothing here judges;
:mod:`config_audit` does.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

#: a documentation address (RFC 5737), sent only as a header value, never contacted
FAKE_CLIENT_IP = "203.0.113.7"
#: a foreign origin, sent only as a header value
FOREIGN_ORIGIN = "https://untrusted.example"
MAX_BURST = 200
BURST_CONCURRENCY = 25  # arrivals at once: a limit shows whatever the response time
MAX_SCRIPTS = 5
MAX_BODY = 1_000_000
#: a backend endpoint that echoes the request headers it received as JSON (the reference
#: lab's backend has one; elsewhere the forwarded-header checks are skipped)
ECHO_PATH = "/api/debug/echo"
_SCRIPT_SRC = re.compile(r"<script[^>]+src\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


@dataclass
class HttpResult:
    """Status, headers (lower-case names) and body text of one request, or its error."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


@dataclass
class LiveFacts:
    """Everything the live checks observed."""

    base_url: str
    page: HttpResult | None = None
    scripts: dict[str, str] = field(default_factory=dict)
    echo: HttpResult | None = None
    websocket: tuple[bool, str] | None = None
    cors: dict[str, HttpResult] = field(default_factory=dict)
    burst: dict[str, int] = field(default_factory=dict)
    nginx_files: dict[str, str] | None = None
    nginx_source: str = ""
    #: names and addresses of the backend (the proxy audit judges the routes to it)
    backend_hosts: frozenset[str] = frozenset()
    #: the path the preflights and the burst were sent to
    health_path: str = "/"


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
    concurrency: int = BURST_CONCURRENCY,
) -> dict[str, int]:
    """Status counts of ``count`` GETs sent ``concurrency`` at a time (bounded in time)."""
    deadline = time.monotonic() + budget_s

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
           websocket_path: str | None = "/ws") -> LiveFacts:
    """All HTTP-level live facts from the proxy at ``base_url`` (see :func:`check_loopback`).

    ``health_path``: a path the proxy forwards to the backend (preflights and the burst);
    ``websocket_path``: the proxy's WebSocket location (None: it has none, not tried).
    """
    base = check_loopback(base_url, allowed_hosts)
    facts = LiveFacts(base_url=base, health_path=health_path)
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
        facts.burst = burst(http, base + health_path, burst_count)
    return facts
