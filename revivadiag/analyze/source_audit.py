"""Source audit: hard-coded backend URLs, service ports and container names in a source tree.

What is flagged (each match once, the first rule that applies):

* ``container_name``: ``<prefix>_new_<service>`` anywhere (fix: the service name);
* loopback hosts (``localhost``, ``127.x``, ``0.0.0.0``, ``[::1]``) with a service port —
  the backend's 3011 (``backend_url``, ``websocket_url`` or bare ``backend_port``), the
  database's 5432/5435 (``database_port``) or Redis's 6379/6383 (``redis_port``);
* in browser code only: any host with the backend port (browsers cannot resolve service
  names) and quoted port fragments such as ``':3011'``.

Not flagged: comment lines and trailing comments, the proxy's own port (``localhost:3010``),
loopback addresses in compose commands and health checks (run inside the container itself),
other ports (``:30110``), service-name URLs in server-side code and config (that is the
target design: ``BACKEND_INTERNAL_URL=http://revivatech_backend:3011``), and files that are
not JS/TS/Python/.env/YAML, are binary, too large, or under ``node_modules``/``.git``.

>>> [(f.kind, f.match) for f in scan_text("src/api.ts", "const u = 'http://localhost:3011/api';")]
[('backend_url', 'http://localhost:3011/api')]
>>> scan_text("app/db.py", "# see http://localhost:3011/docs")
[]
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from revivadiag import schemas
from revivadiag.redact import redact_url

CODE_EXTS = {".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"}
PY_EXTS = {".py"}
YAML_EXTS = {".yml", ".yaml"}
SKIP_DIRS = {"node_modules", ".git", ".next", "dist", "build", "__pycache__", ".venv", "venv",
             ".tox", ".mypy_cache", ".pytest_cache", "coverage"}
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 20_000

BACKEND_PORTS = frozenset({3011})
DATABASE_PORTS = frozenset({5432, 5435})
REDIS_PORTS = frozenset({6379, 6383})
CLIENT_ENV_PREFIXES = ("NEXT_PUBLIC_", "VITE_", "REACT_APP_", "PUBLIC_")
SERVER_PATH_HINTS = ("/pages/api/", "/app/api/", "/server/", "/api/", "server.", "middleware.",
                     "next.config.", "/scripts/")

_URL = re.compile(
    r"(?P<scheme>https?|wss?|postgres(?:ql)?|redis)://(?:[^@\s/'\"`]*@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+|\$\{[^}]+\})(?::(?P<port>\d{1,5}))?"
    r"(?P<rest>[^\s'\"`)<>,;]*)"
)
_BARE = re.compile(
    r"(?<![/\w.@-])(?P<host>localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0)\s*:\s*(?P<port>\d{1,5})\b"
)
_PORT_FRAGMENT = re.compile(r"(?P<q>['\"`]):(?P<port>\d{2,5})(?P=q)")
_CONTAINER = re.compile(r"\b(?P<prefix>[a-z][a-z0-9]*)_new_(?P<service>[a-z][a-z0-9]*)\b")


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


# ---------------------------------------------------------------- classification


def language(path: str) -> str | None:
    """js, py, env or yaml for files the audit reads; None for the rest."""
    p = PurePosixPath(path)
    if p.name == ".env" or p.name.startswith(".env.") or p.suffix == ".env":
        return "env"
    if p.suffix in CODE_EXTS:
        return "js"
    if p.suffix in PY_EXTS:
        return "py"
    if p.suffix in YAML_EXTS:
        return "yaml"
    return None


def file_side(path: str, lang: str) -> str:
    """client (browser code), server (Python, API routes, server files) or config."""
    if lang in ("env", "yaml"):
        return "config"
    if lang == "py":
        return "server"
    low = "/" + path.lower()
    return "server" if any(h in low for h in SERVER_PATH_HINTS) else "client"


def _comment_starts(line: str, i: int, lang: str) -> bool:
    if lang == "js":
        return line.startswith(("//", "/*"), i)
    return line[i] == "#" and (i == 0 or line[i - 1].isspace())


def code_part(line: str, lang: str) -> str:
    """``line`` with its comment blanked out (same length, so columns stay right).

    Comments start with ``//`` or ``/*`` (and ``*`` continuation lines) in JS/TS and with
    ``#`` (at the start or after a space) elsewhere, outside string literals.
    """
    stripped = line.lstrip()
    starters = ("//", "/*", "*") if lang == "js" else ("#",)
    if stripped.startswith(starters):
        return " " * len(line)
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote and line[i - 1] != "\\":
                quote = ""
        elif c in "'\"`":
            quote = c
        elif _comment_starts(line, i, lang):
            return line[:i] + " " * (len(line) - i)
    return line


def _host_is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    return h in ("localhost", "0.0.0.0", "::1") or h.startswith("127.")


def _port_kind(port: int, scheme: str) -> str | None:
    if port in BACKEND_PORTS:
        if scheme.startswith("ws"):
            return "websocket_url"
        return "backend_url" if scheme else "backend_port"
    if port in DATABASE_PORTS:
        return "database_port"
    if port in REDIS_PORTS:
        return "redis_port"
    return None


# ---------------------------------------------------------------- fixes


def suggested_fix(kind: str, side: str, match: str, lang: str, env_key: str = "") -> str:
    """The replacement to use for one finding."""
    client = side == "client" or env_key.startswith(CLIENT_ENV_PREFIXES)
    if kind == "container_name":
        m = _CONTAINER.search(match)
        service = m["service"] if m else "the service"
        prefix = m["prefix"] if m else "<prefix>"
        return (f"the compose service name {service!r} (or {prefix}_{service}, the target "
                "naming) instead of the container name")
    if kind == "websocket_url":
        return ("getWebSocketUrl() (wss:// on https, same origin, path /ws through the proxy)"
                if client else "BACKEND_INTERNAL_URL with ws:// (service name backend:3011)")
    if kind in ("backend_url", "backend_port"):
        if env_key and client:
            return f"{env_key}= (empty: relative URLs through the proxy)"
        if client:
            rel = _relative(match)
            return f"relative URL {rel!r} through the proxy (or getApiUrl() + {rel!r})"
        getter = "os.environ['BACKEND_INTERNAL_URL']" if lang == "py" else (
            "BACKEND_INTERNAL_URL" if lang in ("env", "yaml")
            else "process.env.BACKEND_INTERNAL_URL")
        return f"{getter} (http://backend:3011 on the container network)"
    if kind == "database_port":
        if client:
            return "no database access from the browser: call the backend API"
        return "DATABASE_INTERNAL_HOST (service name database, port 5432) from the environment"
    if kind == "redis_port":
        if client:
            return "no Redis access from the browser: call the backend API"
        return "REDIS_INTERNAL_URL (redis://redis:6379) from the environment"
    return "use configuration instead of a literal"


def _relative(match: str) -> str:
    m = _URL.match(match)
    rest = m["rest"] if m else ""
    return rest if rest.startswith("/") else "/api"


# ---------------------------------------------------------------- scanning


_IN_CONTAINER = re.compile(
    r"""["']CMD(-SHELL)?["']|^\s*-?\s*(test|healthcheck|command|entrypoint)\s*:""")
_YAML_KEY = re.compile(r"^\s*-?\s*(?P<key>[A-Z][A-Z0-9_]*)\s*[:=]")


def _env_key(line: str, lang: str) -> str:
    """The variable a .env line (``KEY=value``) or YAML line (``KEY: value``) sets."""
    if lang == "env" and "=" in line:
        return line.split("=", 1)[0].strip().removeprefix("export ").strip()
    if lang == "yaml":
        m = _YAML_KEY.match(line)
        return m["key"] if m else ""
    return ""


def _container_matches(code: str) -> Iterator[tuple[int, int, str]]:
    for m in _CONTAINER.finditer(code):
        yield m.start(), m.end(), "container_name"


def _url_matches(code: str, side: str, local_ok: bool) -> Iterator[tuple[int, int, str]]:
    for m in _URL.finditer(code):
        if not m["port"]:
            continue
        kind = _port_kind(int(m["port"]), m["scheme"].lower())
        loopback = _host_is_loopback(m["host"])
        if loopback and local_ok:
            continue
        if kind and (loopback or (side == "client" and kind in ("backend_url", "websocket_url"))):
            yield m.start(), m.end(), kind


def in_container_command(line: str, lang: str) -> bool:
    """A compose healthcheck/command line: there, localhost is the container itself."""
    return lang == "yaml" and bool(_IN_CONTAINER.search(line))


def _matches(code: str, side: str, local_ok: bool = False) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of every flagged span in one comment-free line.

    Overlaps are resolved by order: in browser code the URL wins (the fix is a relative
    URL), elsewhere the container name wins (the fix is the service name). ``local_ok``
    (a command run inside the container) lets loopback addresses pass.
    """
    if side == "client":
        yield from _url_matches(code, side, local_ok)
        yield from _container_matches(code)
    else:
        yield from _container_matches(code)
        yield from _url_matches(code, side, local_ok)
    for m in _BARE.finditer(code) if not local_ok else ():
        kind = _port_kind(int(m["port"]), "")
        if kind:
            yield m.start(), m.end(), kind
    if side == "client":
        for m in _PORT_FRAGMENT.finditer(code):
            if int(m["port"]) in BACKEND_PORTS:
                yield m.start() + 1, m.end() - 1, "backend_port"


def scan_text(path: str, text: str) -> list[SourceFinding]:
    """Findings in one file's text (``path`` decides language and side)."""
    lang = language(path)
    if lang is None:
        return []
    side = file_side(path, lang)
    out: list[SourceFinding] = []
    for n, line in enumerate(text.splitlines(), start=1):
        code = code_part(line, lang)
        local_ok = in_container_command(code, lang)
        key = _env_key(line, lang)
        line_side = "client" if key.startswith(CLIENT_ENV_PREFIXES) else side
        taken: list[tuple[int, int]] = []
        for start, end, kind in _matches(code, line_side, local_ok):
            if any(start < e and s < end for s, e in taken):
                continue  # one finding per span; container names win
            taken.append((start, end))
            match = line[start:end]
            out.append(SourceFinding(
                file=path, line=n, column=start + 1, kind=kind, match=redact_url(match),
                snippet=redact_url(line.strip())[:200], side=line_side,
                suggested_fix=suggested_fix(kind, line_side, match, lang, key),
            ))
    return out


def iter_files(root: Path) -> Iterator[Path]:
    """Auditable files under ``root`` (skipped dirs pruned, sorted, bounded)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if language(name) is None or path.is_symlink():
                continue
            count += 1
            if count > MAX_FILES:
                return
            yield path


def read_text(path: Path) -> str | None:
    """The file's text, or None when it is too large or binary."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def scan_tree(root: str | Path) -> list[SourceFinding]:
    """Every finding under ``root`` (a directory or a single file)."""
    base = Path(root)
    if base.is_file():
        text = read_text(base)
        return scan_text(base.name, text) if text is not None else []
    out: list[SourceFinding] = []
    for path in iter_files(base):
        text = read_text(path)
        if text is not None:
            out.extend(scan_text(path.relative_to(base).as_posix(), text))
    return out


def to_frame(findings: list[SourceFinding]) -> pd.DataFrame:
    """The ``source_findings`` frame."""
    return schemas.to_frame("source_findings", [asdict(f) for f in findings])


def audit_source(root: str | Path) -> pd.DataFrame:
    """Scan ``root`` and return the ``source_findings`` frame."""
    return to_frame(scan_tree(root))
