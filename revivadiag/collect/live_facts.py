"""What the live proxy checks observed: plain data, no I/O.

:mod:`revivadiag.collect.live` fills a :class:`LiveFacts` through the project's own proxy and
:mod:`revivadiag.collect.connections` a :class:`ReuseMeasurement`; :mod:`revivadiag.analyze`
judges them (config and proxy audits, KPIs).

>>> LiveFacts(base_url="http://127.0.0.1:8080").health_path
'/'
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: a documentation address (RFC 5737), sent only as a header value, never contacted
FAKE_CLIENT_IP = "203.0.113.7"
#: a foreign origin, sent only as a header value
FOREIGN_ORIGIN = "https://untrusted.example"
#: a backend endpoint that echoes the request headers it received as JSON (the reference
#: lab's backend has one; elsewhere the forwarded-header checks are skipped)
ECHO_PATH = "/api/debug/echo"


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
    #: the proxy's rate limit on ``health_path`` as its configuration declares it ("" none)
    rate_limit: str = ""
    #: how the burst was paced under that limit ("" not paced)
    paced: str = ""


@dataclass(frozen=True)
class ReuseMeasurement:
    """The outcome: requests sent and answered, new connections and the reuse percentage."""

    requests: int
    answered: int
    new_connections: int | None
    reuse_pct: float | None
    url: str
    method: str
    detail: str
