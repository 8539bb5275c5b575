"""Narrowing "the proxy returns 502": pure judgement of what the incident probes observed.

The live probes (:mod:`revivadiag.collect.incident`) each give one :class:`Observation`;
this module reads the proxy's error log lines, the proxy's routes to the backend, and decides
the cause from all of them, naming the diagnosis finding that matches.

>>> lines = ['2026/11/30 11:22:47 [error] 6#6: *80 connect() failed (111: Connection refused) '
...          'while connecting to upstream, client: 10.0.0.1, server: , request: "GET /api/health'
...          ' HTTP/1.1", upstream: "http://10.0.0.4:3011/api/health", host: "x"']
>>> row = upstream_errors(lines).iloc[0]
>>> row.upstream_ip, int(row.upstream_port), row.error, int(row["count"])
('10.0.0.4', 3011, 'connect() failed (111: Connection refused)', 1)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from revivadiag.analyze.proxy_audit import backend_routes
from revivadiag.collect import nginx_conf
from revivadiag.collect.proxy_config import nginx_variables

_UPSTREAM = re.compile(r'upstream: "(?P<scheme>[a-z]+)://(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):'
                       r'(?P<port>\d+)(?P<path>[^"]*)"')
_ERROR = re.compile(r"\[(?:error|crit|warn)\][^:]*: \*?\d* ?(?P<what>.*?) while ")
_REQUEST = re.compile(r'request: "(?P<request>[^"]*)"')
#: columns of :func:`upstream_errors`
UPSTREAM_COLUMNS = ("upstream_ip", "upstream_port", "error", "request", "count")
#: the finding the stale-upstream cause matches (the diagnosis's ``proxy-resolution`` check)
STALE_UPSTREAM_FINDING = "RD-PRX-002"
#: the finding a backend that does not answer matches
UNHEALTHY_FINDING = "RD-HLT-001"


@dataclass
class Observation:
    """One step of the narrowing: what was tried, whether it worked, and its figures.

    ``ok`` is what the step expects on a healthy stack (a request answered, a name resolved,
    a connection opened); ``data`` holds the values later steps use (addresses, statuses).
    """

    step: str
    target: str
    ok: bool
    outcome: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row: step, target, ok, outcome, detail."""
        return steps_frame([self])


def steps_frame(observations: Sequence[Observation]) -> pd.DataFrame:
    """One row per observation (step, target, ok, outcome, detail).

    >>> steps_frame([Observation("dns", "api", True, "resolved", "10.0.0.5")]).columns.tolist()
    ['step', 'target', 'ok', 'outcome', 'detail']
    """
    return pd.DataFrame([{"step": o.step, "target": o.target, "ok": o.ok, "outcome": o.outcome,
                          "detail": o.detail} for o in observations],
                        columns=["step", "target", "ok", "outcome", "detail"])


def upstream_errors(lines: Iterable[str]) -> pd.DataFrame:
    """The proxy's failed upstream attempts from nginx error-log lines: which address and
    port it really sent to (what it resolved at start, not what the name resolves to now),
    the error, and how often (one row per address, port and error)."""
    counts: dict[tuple[str, int, str], list[Any]] = {}
    for line in lines:
        up = _UPSTREAM.search(line)
        if up is None:
            continue
        err = _ERROR.search(line)
        req = _REQUEST.search(line)
        key = (up["ip"], int(up["port"]), err["what"].strip() if err else "")
        if key in counts:
            counts[key][1] += 1
        else:
            counts[key] = [req["request"] if req else "", 1]
    rows = [{"upstream_ip": ip, "upstream_port": port, "error": error, "request": req,
             "count": n} for (ip, port, error), (req, n) in counts.items()]
    return pd.DataFrame(rows, columns=list(UPSTREAM_COLUMNS))


@dataclass(frozen=True)
class Route:
    """A proxy_pass that leads to the backend: where, to what, and the name nginx resolves."""

    location: str
    url: str
    host: str
    port: int | None
    uses_variable: bool


def backend_passes(files: Mapping[str, str], backend_hosts: frozenset[str]) -> list[Route]:
    """The proxy_pass directives that lead to the backend, with the host name each resolves
    (an upstream block's server name, else the URL's host).

    >>> files = {"n": "server { location /api/ { proxy_pass http://api:8000/; } "
    ...          "location / { proxy_pass http://web:3000; } }"}
    >>> [(r.location, r.host, r.port) for r in backend_passes(files, frozenset({"api"}))]
    [('/api/', 'api', 8000)]
    """
    cfg = backend_routes(nginx_conf.parse_files(files), backend_hosts, nginx_variables(files))
    out = []
    for p in cfg.proxy_passes:
        up = cfg.upstreams.get(p.host)
        host = up.servers[0][0].rsplit(":", 1)[0] if up and up.servers else p.host
        out.append(Route(p.location, p.url, host, p.port, p.uses_variable))
    return out


def resolution_of(files: Mapping[str, str], backend_hosts: frozenset[str],
                  watcher: str | None) -> tuple[str, str]:
    """(pass|fail|skip, evidence): does the proxy re-resolve the backend's name? (the same
    verdict as the diagnosis's ``proxy-resolution`` check)."""
    cfg = backend_routes(nginx_conf.parse_files(files), backend_hosts, nginx_variables(files))
    return nginx_conf.resolution_verdict(cfg, watcher)


@dataclass(frozen=True)
class Cause:
    """The verdict of a narrowing: what is wrong, why we think so, and the matching finding."""

    cause: str
    explanation: str
    finding_id: str = ""
    #: None when the diagnosis given has no such finding (or none was given)
    finding_title: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row: cause, explanation, finding_id, finding_title."""
        return pd.DataFrame([{**self.__dict__, "finding_title": self.finding_title or ""}],
                            columns=["cause", "explanation", "finding_id", "finding_title"])


def _finding(findings: pd.DataFrame | None, finding_id: str) -> tuple[str, str | None]:
    if findings is None or findings.empty:
        return "", None
    rows = findings[findings["id"] == finding_id]
    return (finding_id, str(rows.iloc[0]["title"])) if len(rows) else ("", None)


def name_cause(through: Observation, dns: Observation, used: Observation,
               stale: Observation, direct: Observation,
               findings: pd.DataFrame | None = None) -> Cause:
    """Decide the cause of failing requests through the proxy from the five observations:
    the request through the proxy, the proxy's DNS answer for the backend's name, the
    addresses the proxy really used (its error log), a TCP connect to those addresses, and a
    request straight to the backend. ``findings`` (a diagnosis's) supplies the matching
    finding's title.

    >>> ok = lambda step, **d: Observation(step, "", True, "ok", data=d)
    >>> bad = lambda step, **d: Observation(step, "", False, "failed", data=d)
    >>> name_cause(bad("through", status=502), ok("dns", answers=["10.0.0.7"]),
    ...            ok("used", addresses=["10.0.0.4"]), bad("stale"), ok("direct")).finding_id
    'RD-PRX-002'
    >>> name_cause(ok("through"), ok("dns"), ok("used"), ok("stale"), ok("direct")).cause
    'no failure: requests through the proxy succeed'
    """
    if through.ok:
        return Cause("no failure: requests through the proxy succeed",
                     "the proxy answered; nothing to narrow")
    if not dns.ok:
        return Cause("the proxy cannot resolve the backend's name",
                     f"Docker's resolver in the proxy's namespace answered {dns.outcome} "
                     f"for {dns.target}: the backend is stopped or shares no network with the "
                     "proxy")
    answers = set(dns.data.get("answers", []))
    addresses = set(used.data.get("addresses", []))
    if not direct.ok:
        fid, title = _finding(findings, UNHEALTHY_FINDING)
        return Cause("the backend does not answer",
                     f"a request straight to the backend failed ({direct.outcome}): the "
                     "proxy's 502 only passes that on", fid, title)
    if addresses and not addresses & answers:
        fid, title = _finding(findings, STALE_UPSTREAM_FINDING)
        return Cause("the proxy sends to a stale backend address",
                     f"the proxy connects to {', '.join(sorted(addresses))} "
                     f"({stale.outcome}), but the backend's name resolves to "
                     f"{', '.join(sorted(answers))} now and answers there directly: nginx "
                     "resolved the name once at start and never again",
                     fid or STALE_UPSTREAM_FINDING, title)
    return Cause("the proxy-to-backend path fails",
                 f"the backend answers directly and the proxy uses its current address; "
                 f"look at the proxy's error log ({used.detail or 'empty'}) and timeouts")
