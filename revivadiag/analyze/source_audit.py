"""Source audit: hard-coded service URLs, ports and container names in a source tree.

The audit first learns the stack (``source_stack``: compose files, ``.env`` files,
``package.json``, Dockerfiles, the ports server code listens on, and the running project when
one is given), then reads every file web projects keep URLs in (``source_files``) and flags:

* a loopback host (``localhost``, ``127.x``, ``[::1]``, ``host.docker.internal``, a URL to
  ``0.0.0.0``) with the port of a backend, database, cache or other service of the stack —
  as a URL, as ``host:port``, or as a ``host``/``port`` pair on neighbouring lines
  (``host: process.env.DB_HOST || 'localhost',`` then ``port: 5432``);
* in browser code, any host with a backend's port and any service name (browsers cannot
  resolve ``http://api:8000``);
* a container name that is not the service name (``container_name:`` or the engine's
  ``shop-api-1``);
* without stack evidence for a port: the well-known database/cache ports, and ports common for
  web backends (3000-3002, 4000, 5000, 8000, 8080, ...) only where the URL or the line names an
  API (``/api``, ``/graphql``, ``ws://``, ``API_URL``, ``baseURL``, ``proxy``...), never the
  frontend's own dev-server port.

Not flagged (``source_context``): comments, listen/bind addresses, CORS allow-lists, log and
error messages, ``curl``/``wget`` lines, compose health checks (``localhost`` is the container
itself), tests, CI pipelines, docs, lockfiles, dependency and build directories, the proxy's
and the frontend's own ports, service names in server code and config (the target design).

Each finding carries its ``side`` (client, server, config) and the fix for that side: a
relative URL or ``getApiUrl()`` in the browser, the service name from a ``*_INTERNAL_URL``
variable on the server, the service name in config.

>>> [(f.kind, f.match) for f in scan_text("src/api.ts", "const u = 'http://localhost:8000/api';")]
[('backend_url', 'http://localhost:8000/api')]
>>> scan_text("src/api.ts", "console.log(`listening on http://localhost:8000`)")
[]
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag import schemas
from revivadiag.analyze import source_stack as st
from revivadiag.analyze.source_context import (
    CLIENT_ENV_PREFIXES,
    Gate,
    code_part,
    excluded,
    file_side,
    language,
)
from revivadiag.analyze.source_files import Limits, Skip, read_all, read_file, walk
from revivadiag.analyze.source_scan import Candidate, file_candidates

__all__ = [
    "AuditResult",
    "SourceFinding",
    "audit_source",
    "audit_tree",
    "code_part",
    "file_side",
    "language",
    "scan_text",
    "scan_tree",
    "to_frame",
]

_API_PATH = re.compile(r"^/(api|graphql|gql|v\d+|rest|rpc|trpc|socket\.io|ws|auth|query|"
                       r"hasura|functions)\b", re.I)
_API_CONTEXT = re.compile(
    r"api|backend|server|graphql|socket|websocket|\bws\b|proxy|target|base_?url|endpoint|"
    r"axios|fetch|\bio\(|ky\.|httpx|requests\.|http\.(Get|Post|NewRequest)|upstream|"
    r"proxy_pass|reverse_proxy|service|_url\b|Url\b|URL\b|uri\b", re.I)
_FRONT_CONTEXT = re.compile(
    r"front_?end|client_?url|\borigin|redirect|callback|site_?url|public_?url|app_?url|web_?url|"
    r"nextauth|home_?page|frontend_url|vite_port|return_?to|success_?url|cancel_?url", re.I)
_FRONT = Gate(_FRONT_CONTEXT, "front", "client", "origin", "redirect", "callback", "site",
              "url", "nextauth", "home", "vite_port", "return")

_SCHEME_ROLES = {"postgres": "database", "postgresql": "database", "mysql": "database",
                 "mariadb": "database", "mongodb": "database", "redis": "cache", "rediss": "cache",
                 "amqp": "service", "amqps": "service", "nats": "service", "kafka": "service"}
_DB_SCHEMES = {0: "postgresql", 5432: "postgresql", 3306: "mysql", 27017: "mongodb", 1433: "mssql"}
DEFAULT_NAMES = {"backend": "backend", "database": "db", "cache": "redis", "service": "service"}
FALLBACK_SERVICE_HOSTS = frozenset({"backend", "api", "server", "db", "postgres", "redis"})


@dataclass(frozen=True)
class SourceFinding:
    """One hard-coded value: where, what kind, the match and the suggested fix."""

    file: str
    line: int
    column: int
    kind: str
    match: str
    snippet: str
    side: str
    suggested_fix: str

    def record(self) -> dict[str, Any]:
        """The JSON record: every field, plus ``context`` (= side) and ``fix``."""
        rec = asdict(self)
        rec["context"], rec["fix"] = self.side, self.suggested_fix
        return rec


@dataclass
class AuditResult:
    """Findings, what was skipped and why, and the stack the audit judged them by."""

    findings: list[SourceFinding]
    skips: list[Skip]
    stack: st.Stack
    files_read: int = 0
    limit_hit: bool = False


# ---------------------------------------------------------------- judging


def _role(stack: st.Stack, port: int) -> tuple[str, str, int, bool]:
    """(role, service, container port, strong) of a port."""
    hit = stack.port_role(port)
    if hit:
        return hit[0], hit[1], hit[2], True
    if port in st.WELL_KNOWN_PORTS:
        return st.WELL_KNOWN_PORTS[port], "", port, True
    if port in st.COMMON_BACKEND_PORTS:
        return "backend", "", port, False
    return "", "", port, False


def _api_like(c: Candidate) -> bool:
    if c.scheme.startswith("ws") or _API_PATH.match(c.path or ""):
        return True
    around = c.context.replace(c.match, " ")
    if c.key and _FRONT.search(c.key):
        return False
    if _FRONT.search(around):
        return False
    if _API_CONTEXT.search(around) or c.lang == "conf":
        return True
    # a bare value (`return "http://..."`, an array item) takes the context of the lines above
    bare = not c.key and re.match(r"\s*(return\b|[\[('\"`])", c.context)
    return bool(bare) and bool(_API_CONTEXT.search(c.above)) and not _FRONT.search(c.above)


def _kind(role: str, c: Candidate) -> str:
    if role == "database":
        return "database_port"
    if role == "cache":
        return "redis_port"
    if role == "service":
        return "service_url"
    socket = "socket" in c.context.lower() or re.search(r"\bio\(", c.context)
    if c.scheme.startswith("ws") or socket:
        return "websocket_url"
    return "backend_url" if c.scheme else "backend_port"


def judge(c: Candidate, stack: st.Stack) -> tuple[str, str, int] | None:
    """(kind, service, container port) when the candidate is a finding, else None."""
    host = c.host.strip("[]").lower()
    containers = stack.container_names()
    if host in containers:
        if c.side == "client" and c.scheme.startswith(("http", "ws")):
            return _kind(stack.services[containers[host]].role or "backend", c), containers[host], \
                c.port or 0
        return "container_name", containers[host], c.port or 0
    if c.port is None and not c.loopback:
        if c.side == "client" and host in stack.names() and c.scheme.startswith(("http", "ws")):
            role = stack.services[host].role
            if role in ("backend", "database", "cache", "service"):
                return _kind(role, c), host, 0
        return None
    if c.port is None:
        hint = c.extra.get("role_hint", "") if c.joined else ""
        if c.loopback and not c.joined and host != "0.0.0.0":
            hint = _SCHEME_ROLES.get(c.scheme.split("+")[0], "")  # mongodb://127.0.0.1/db
        if not hint:
            return None
        service = stack.service_for_role(hint)
        ports = stack.services[service].ports if service else {}
        return _kind(hint, c), service, min(ports.values(), default=0)
    role, service, target, strong = _role(stack, c.port)
    scheme_role = _SCHEME_ROLES.get(c.scheme.split("+")[0], "")
    if scheme_role and c.loopback:
        role, strong = scheme_role, True
    if c.joined:
        hk = c.extra.get("host_key", "").lower()
        bare = hk.split(".")[-1] in ("host", "hostname")
        hint = c.extra.get("role_hint", "")
        if (not role or not strong) and hint:
            role, service, target, strong = hint, stack.service_for_role(hint), c.port, True
        if not role or not strong or role in ("frontend", "proxy"):
            return None
        if bare and role not in ("database", "cache", "service") and not _api_like(c):
            return None
        return _kind(role, c), service, target
    if host == "0.0.0.0" and not c.scheme:
        return None  # a bind address
    if c.loopback or c.fragment or (c.side == "client" and host.startswith(("$", "{"))):
        if role in ("", "frontend", "proxy"):
            return None
        if c.key and role == "backend" and _FRONT.search(c.key):
            return None  # APP_URL, FRONTEND_URL, ...: the app's own public address
        if not strong and not _api_like(c):
            return None
        if c.fragment and not strong:
            return None
        if not c.loopback and c.side != "client":
            return None
        return _kind(role, c), service, target
    # a named host with a port: a finding in browser code when it is a service of the stack,
    # or a single-label name (no browser resolves it) with a service's port
    if c.side != "client":
        return None
    names = stack.names() or set(FALLBACK_SERVICE_HOSTS)
    svc_role = stack.services[host].role if host in stack.services else ""
    if host in names and svc_role not in ("frontend", "proxy"):
        return _kind(svc_role or role or "backend", c), host, c.port
    if "." not in host and strong and role not in ("", "frontend", "proxy"):
        return _kind(role, c), service, target
    return None


# ---------------------------------------------------------------- fixes


def suggested_fix(kind: str, side: str, service: str, port: int, c: Candidate | None = None,
                  lang: str = "") -> str:
    """The replacement for one finding, for where the code runs."""
    role = {"database_port": "database", "redis_port": "cache", "service_url": "service"}.get(
        kind, "backend")
    name = service or f"<{DEFAULT_NAMES[role]} service>"
    address = f"{name}:{port}" if port else name
    var = re.sub(r"\W", "_", service or DEFAULT_NAMES[role]).upper() + "_INTERNAL_URL"
    key = c.key if c else ""
    if kind == "container_name":
        return f"the compose service name {service!r} instead of the container name"
    if side == "client":
        if role in ("database", "cache", "service"):
            return "no database/cache access from the browser: call the backend API"
        if key and key.startswith(CLIENT_ENV_PREFIXES):
            return f"{key}= empty or '/api' (relative URLs through the proxy)"
        if kind == "websocket_url":
            return "getWebSocketUrl() (same origin, wss:// on https, the proxy's /ws path)"
        rel = c.path if c and c.path.startswith("/") else "/api"
        return f"relative URL {rel!r} through the proxy (or getApiUrl() + {rel!r})"
    scheme = {"database": _DB_SCHEMES.get(port, c.scheme if c and c.scheme else "tcp"),
              "cache": "redis"}.get(role, "http")
    if side == "server":
        getter = {"py": f"os.environ['{var}']", "go": f'os.Getenv("{var}")'}.get(
            lang, f"process.env.{var}")
        return f"{getter} = {scheme}://{address} (the service name, not localhost)"
    return f"the service name: {scheme}://{address}"


# ---------------------------------------------------------------- the tree


def _learn_stack(files: dict[str, str], stack: st.Stack) -> None:
    for rel, text in files.items():
        if rel.rsplit("/", 1)[-1] == "package.json":
            st.learn_package_json(stack, rel, text)
    for rel, text in files.items():
        if not excluded(rel):
            st.learn_file(stack, rel, text)


def _findings(cands: list[Candidate], stack: st.Stack) -> list[SourceFinding]:
    out: list[SourceFinding] = []
    seen: set[tuple[str, int, int]] = set()
    for c in cands:
        verdict = judge(c, stack)
        if verdict is None or (c.file, c.line, c.column) in seen:
            continue
        seen.add((c.file, c.line, c.column))
        kind, service, port = verdict
        out.append(SourceFinding(
            file=c.file, line=c.line, column=c.column, kind=kind, match=c.match,
            snippet=c.snippet, side=c.side,
            suggested_fix=suggested_fix(kind, c.side, service, port, c, c.lang)))
    return out


def scan_text(path: str, text: str, stack: st.Stack | None = None) -> list[SourceFinding]:
    """Findings in one file's text (``path`` decides language and side)."""
    stack = stack if stack is not None else st.Stack()
    if st.is_stack_file(path):
        _learn_stack({path: text}, stack)
    return _findings(list(file_candidates(path, text, stack)), stack)


MAX_LINE = 10_000
_LONG_LINE = re.compile(rf"[^\r\n]{{{MAX_LINE + 1}}}")


def audit_tree(root: str | Path, stack: st.Stack | None = None,
               limits: Limits | None = None) -> AuditResult:
    """Learn the stack from ``root``, scan every file, and say what was skipped."""
    base = Path(root)
    stack = stack if stack is not None else st.Stack()
    limits = limits or Limits()
    if base.is_file():
        text, skip = read_file(base.resolve(), base.name, limits)  # the user named this one
        found = scan_text(base.name, text, stack) if text is not None else []
        return AuditResult(found, [skip] if skip else [], stack, int(text is not None))
    walked = walk(base, limits)
    stack_files = {rel: p for rel, p in walked.files.items() if st.is_stack_file(rel)}
    stack_texts: dict[str, str] = {}
    for rel, path in stack_files.items():
        text, _ = read_file(path, rel, limits)  # a skip is reported by the full pass below
        if text is not None:
            stack_texts[rel] = text
    _learn_stack(stack_texts, stack)
    cands: list[Candidate] = []
    read = 0
    for rel, text in read_all(base, walked, limits):
        if _LONG_LINE.search(text):
            walked.skips.append(Skip(rel, f"minified or generated (a line over {MAX_LINE} "
                                          "characters)"))
            continue
        read += 1
        cands.extend(file_candidates(rel, text, stack))
    skips = walked.skips + stack.skips
    return AuditResult(_findings(cands, stack), skips, stack, read, walked.limit_hit)


def scan_tree(root: str | Path, stack: st.Stack | None = None) -> list[SourceFinding]:
    """Every finding under ``root`` (a directory or a single file)."""
    return audit_tree(root, stack).findings


def to_frame(findings: list[SourceFinding]) -> pd.DataFrame:
    """The ``source_findings`` frame."""
    return schemas.to_frame("source_findings", [asdict(f) for f in findings])


def audit_source(root: str | Path, stack: st.Stack | None = None) -> pd.DataFrame:
    """Scan ``root`` and return the ``source_findings`` frame."""
    return to_frame(scan_tree(root, stack))
