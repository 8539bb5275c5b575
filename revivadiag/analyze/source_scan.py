r"""Candidates of the source audit: every place a line names a host and a port.

One pass over a file's lines (comments blanked, lines that only listen, allow, log or smoke-test
skipped, see ``source_context``) yields :class:`Candidate` records: URLs, ``host:port``, quoted
``':port'`` fragments in browser code, references to container names, and a ``host`` value
joined with the ``port`` set on a neighbouring line. Whether a candidate is a finding is
decided later (``source_audit.judge``), once the whole tree has taught the stack. Server code
that listens on a port teaches it here (``app.listen(3001)``, ``const PORT = ... || 5000``).

>>> from revivadiag.analyze.source_stack import Stack
>>> [(c.host, c.port, c.line) for c in file_candidates("src/db.ts",
...  "const db = {\n  host: process.env.DB_HOST || 'localhost',\n  port: 5432,\n}", Stack())]
[('localhost', 5432, 2)]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from revivadiag.analyze import source_stack as st
from revivadiag.analyze.source_context import (
    CLIENT_ENV_PREFIXES,
    CommentStripper,
    LineFilter,
    Regions,
    excluded,
    file_side,
    language,
)
from revivadiag.analyze.source_files import reads, split_lines
from revivadiag.redact import redact_url

_SCHEMES = r"https?|wss?|postgres(?:ql)?(?:\+\w+)?|mysql(?:\+\w+)?|mariadb|mongodb(?:\+srv)?|" \
           r"rediss?|amqps?|nats|kafka|tcp|grpc"
_URL = re.compile(
    rf"(?<![\w+.-])(?P<scheme>{_SCHEMES})://(?:[^@\s/'\"`]*@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|\$\{[^}]+\}|\{[^}]*\}|[A-Za-z0-9_.\-]+)(?::(?P<port>\d{1,5}))?"
    r"(?P<rest>[^\s'\"`)<>,;]*)", re.I)
_LOOPBACK = r"localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|host\.docker\.internal|\[::1\]"
_BARE = re.compile(rf"(?<![/\w.@-])(?P<host>{_LOOPBACK})\s*:\s*(?P<port>\d{{2,5}})\b", re.I)
_PORT_FRAGMENT = re.compile(r"(?P<q>['\"`]):(?P<port>\d{2,5})(?P=q)")
_HOST_VALUE = re.compile(
    r"(?P<key>\b[\w.]*?host(?:name)?)['\"]?\s*(?:[:=]|,\s*)[^\n]*?['\"]"
    r"(?P<host>localhost|127\.0\.0\.1|host\.docker\.internal|::1)['\"]", re.I)
_ENV_HOST = re.compile(r"^\s*(?:export\s+)?(?P<key>[\w.]*(?:HOST|HOSTNAME|SERVER|ADDR|ADDRESS))"
                       r"\s*[:=]\s*['\"]?(?P<host>localhost|127\.0\.0\.1|host\.docker\.internal)"
                       r"['\"]?\s*,?\s*$", re.I)
_PORT_KEY = re.compile(r"(?:(?<![a-z0-9])(?i:port)|(?<=[a-z])Port)\w*['\"]?\s*[:=,]")
_NUMBER = re.compile(r"(?<![\w.])(\d{2,5})(?![\w.])")
_IN_CONTAINER = re.compile(r"""["']CMD(-SHELL)?["']|^\s*-?\s*(test|healthcheck|command|"""
                           r"""entrypoint)\s*:""")
_CLIENT_ENV_KEY = re.compile(r"(?P<key>\b(?:{})\w+)".format("|".join(CLIENT_ENV_PREFIXES)))
_DOCKER_SCANNED = re.compile(r"^\s*(ENV|ARG)\s", re.I)
_PKG_PROXY = re.compile(r"^\s*\"proxy\"\s*:")
_KEY = re.compile(r"^\s*(?:export\s+|-\s+)?['\"]?(?P<key>[A-Za-z_][\w.]*)['\"]?\s*[:=]")
#: a libpq / Go-style key=value connection string: "host=localhost port=5432 dbname=app"
_DSN_HOST = re.compile(r"(?<![\w-])host=(?P<host>localhost|127\.0\.0\.1)(?![\w.])", re.I)
_DSN_PORT = re.compile(r"(?<![\w-])port=(?P<port>\d{2,5})\b", re.I)


@dataclass
class Candidate:
    """A possible finding, judged once the whole tree (and so the stack) is known."""

    file: str
    line: int
    column: int
    match: str
    snippet: str
    side: str
    lang: str
    host: str
    port: int | None
    scheme: str
    path: str
    loopback: bool
    context: str
    key: str = ""
    joined: bool = False
    fragment: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    #: the two code lines above (``function getApiUrl() {`` before ``return "http://..."``)
    above: str = ""


# ---------------------------------------------------------------- per line


def _is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    return h in ("localhost", "0.0.0.0", "::1", "host.docker.internal") or h.startswith("127.")


def _key_of(line: str, lang: str) -> str:
    if lang == "docker":
        parts = line.split()
        return parts[1].split("=")[0] if len(parts) > 1 else ""
    m = _KEY.match(line)
    return m["key"].split(".")[-1] if m else ""


def container_pattern(names: frozenset[str]) -> re.Pattern[str]:
    """A regex for any of the container ``names`` as a whole word (not a declaration)."""
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])(?:{alts})(?![\w-])")


_DECLARATION = re.compile(r"^\s*-?\s*container_name\s*:")


_CONCAT_SAME = re.compile(r"""^:?['"`]\s*\+\s*(?:['"`]:)?(\d{2,5})\b""")
_CONCAT_PREV = re.compile(rf"""(?P<host>{_LOOPBACK})['"`]\s*\+\s*$""", re.I)
_CONCAT_NEXT = re.compile(r"""^\s*['"`](?P<frag>:(?P<port>\d{2,5}))\b""")


def _concatenated_port(code: str, end: int) -> int | None:
    """The port of ``'http://localhost:' + 3011`` (a URL split by concatenation)."""
    same = _CONCAT_SAME.match(code[end:])
    return int(same[1]) if same else None


def _line_candidates(rel: str, lang: str, side: str, raw: str, code: str, n: int, codes: _Codes,
                     containers: frozenset[str] = frozenset()) -> Iterator[Candidate]:
    key = _key_of(code, lang)
    client_key = _CLIENT_ENV_KEY.search(code)
    line_side = "client" if client_key and lang in ("env", "yaml", "docker", "toml") else side
    snippet = redact_url(raw.strip())[:200]
    taken: list[tuple[int, int]] = []

    def cand(start: int, end: int, host: str, port: int | None, scheme: str = "",
             path: str = "", **kw: Any) -> Candidate:
        taken.append((start, end))
        above = " ".join(codes[j] for j in (n - 3, n - 2) if j >= 0)
        return Candidate(rel, n, start + 1, redact_url(raw[start:end]), snippet, line_side, lang,
                         host, port, scheme.lower(), path, _is_loopback(host), code, key,
                         above=above, **kw)

    for m in _URL.finditer(code):
        port = int(m["port"]) if m["port"] else _concatenated_port(code, m.end())
        yield cand(m.start(), m.end(), m["host"], port, m["scheme"], m["rest"])
    nxt = _CONCAT_NEXT.match(code)
    prev = _CONCAT_PREV.search(codes[n - 2]) if nxt and n >= 2 else None
    if nxt and prev:  # "http://localhost" +  /  ":3011/api": the port is on this line
        yield cand(nxt.start("frag"), nxt.end("frag"), prev["host"], int(nxt["port"]))
    for m in _BARE.finditer(code):
        if not any(s <= m.start() < e for s, e in taken):
            yield cand(m.start(), m.end(), m["host"], int(m["port"]))
    if line_side == "client" and lang in ("js", "markup"):
        for m in _PORT_FRAGMENT.finditer(code):
            if not any(s <= m.start() < e for s, e in taken):
                yield cand(m.start() + 1, m.end() - 1, "", int(m["port"]), fragment=True)
    for m in container_pattern(containers).finditer(code) if containers else ():
        if not any(s <= m.start() < e for s, e in taken):
            yield cand(m.start(), m.end(), m[0], None)
    dsn = _DSN_HOST.search(code)
    dsn_port = _DSN_PORT.search(code) if dsn else None
    if dsn and dsn_port and not any(s <= dsn.start("host") < e for s, e in taken):
        yield cand(dsn.start("host"), dsn.end("host"), dsn["host"], int(dsn_port["port"]),
                   joined=True, extra={"host_key": "host", "role_hint": "database"})
        taken.append((dsn.start(), dsn.end()))
    has_host = "host" in code.lower()
    hm = ((_ENV_HOST.match(code) if has_host and lang in ("env", "yaml", "toml", "conf") else None)
          or (_HOST_VALUE.search(code) if has_host else None))
    if hm and not any(s <= hm.start("host") < e for s, e in taken):
        port = _neighbour_port(codes, n - 1, lang)
        extra = {"host_key": hm["key"], "role_hint": _role_hint(hm["key"], codes, n - 1)}
        yield cand(hm.start("host"), hm.end("host"), hm["host"], port, joined=True, extra=extra)


_KEY_ROLE = re.compile(r"(?P<db>db|database|postgres\w*|pg|mysql|mariadb|mongo\w*|sql)|"
                       r"(?P<cache>redis|cache|valkey|memcached?)|"
                       r"(?P<backend>api|backend|server|service|ws|socket|websocket)", re.I)
_ENGINE_HINT = re.compile(r"(dialect|type|engine|driver|client|provider|adapter)['\"]?\s*[:=]\s*"
                          r"['\"]?[\w.]*?(?P<engine>postgres|mysql|mariadb|mongo|redis|mssql)",
                          re.I)


_DB_KEY = re.compile(r"(?<![\w.])['\"]?(database|db_?name|dbname)['\"]?\s*[:=]\s*['\"]?\w",
                     re.I)


def _role_hint(key: str, codes: _Codes, i: int) -> str:
    """database/cache when the host's key (``DB_HOST``) or a neighbouring ``dialect``/``type``
    line names one; '' otherwise."""
    prefix = re.split(r"[_.]?host", key, flags=re.I)[0]
    m = _KEY_ROLE.fullmatch(prefix.split(".")[-1].strip("_")) if prefix else None
    if m:
        return "database" if m["db"] else "cache" if m["cache"] else "backend"
    for j in range(max(i - 4, 0), min(i + 5, len(codes))):
        hint = _ENGINE_HINT.search(codes[j])
        if hint:
            return "cache" if hint["engine"].lower() == "redis" else "database"
    for j in range(max(i - 4, 0), min(i + 5, len(codes))):
        if _DB_KEY.search(codes[j]):
            return "database"  # mysql.createConnection({host: 'localhost', database: 'x'})
    return ""


def _neighbour_port(codes: _Codes, i: int, lang: str) -> int | None:
    """The port set on the host's line or the nearest of the three lines around it."""
    order = [i, i + 1, i - 1, i + 2, i - 2, i + 3]
    for j in order:
        if 0 <= j < len(codes):
            text = codes[j]
            if j != i and re.search(r"host", text, re.I) and not re.search(r"port", text, re.I):
                continue
            m = _PORT_KEY.search(text)
            numbers = _NUMBER.findall(text[m.end():]) if m else []
            if numbers:
                return int(numbers[-1])
    return None


_TRIGGER = (r"://|localhost|127\.|0\.0\.0\.0|(?<![a-z])host|['\"`]:\d|(?<![a-z])port|listen|bind|"
            r"docker\.internal|\[::1\]")
_BLOCK_OPENERS = ("/*", "<!--", '"""', "\'\'\'", "`")


def _trigger(containers: frozenset[str]) -> re.Pattern[str]:
    extra = "".join("|" + re.escape(n) for n in sorted(containers))
    return re.compile(_TRIGGER + extra, re.I)


class _Codes:
    """Comment-free lines of one file, computed only for the lines that are looked at."""

    def __init__(self, lines: list[str], lang: str) -> None:
        self.lines = lines
        self.codes: list[str | None] = [None] * len(lines)
        self.stateful = CommentStripper(lang)
        self.stateless = CommentStripper(lang)
        self.openers = tuple(o for o in _BLOCK_OPENERS
                             if (lang == "py") == o.startswith(('"', "'")) or o == "/*")

    def advance(self, i: int, wanted: bool) -> str | None:
        """Line ``i`` in order: stripped when it is wanted or may open/close a block comment."""
        line = self.lines[i]
        if wanted or self.stateful.active or any(o in line for o in self.openers):
            self.codes[i] = self.stateful.strip(line)
        return self.codes[i]

    def __getitem__(self, i: int) -> str:
        code = self.codes[i]
        if code is None:  # a line outside any block comment (advance() saw it)
            self.stateless.block = self.stateless.string = ""
            code = self.codes[i] = self.stateless.strip(self.lines[i])
        return code

    def __len__(self) -> int:
        return len(self.lines)


_TEST_SERVICE = re.compile(r"playwright|cypress|selenium|e2e|tests?\b|test[-_]|k6|locust|newman",
                           re.I)


class _ComposeServices:
    """Follows which service a compose file's line belongs to; test runners' lines are tests.

    >>> s = _ComposeServices()
    >>> [s.in_test_service(x) for x in ("services:", "  e2e:", "    x: 1", "  api:", "    y")]
    [False, True, True, False, False]
    """

    def __init__(self) -> None:
        self.in_services = False
        self.indent = -1
        self.test = False

    def in_test_service(self, line: str) -> bool:
        """Whether ``line`` sits in a service named like a test runner."""
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return self.test
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            self.in_services = stripped.startswith("services:")
            self.indent, self.test = -1, False
            return False
        service_key = stripped.endswith(":") and not stripped.startswith("-")
        if self.in_services and service_key and (self.indent < 0 or indent <= self.indent):
            self.indent = indent
            self.test = bool(_TEST_SERVICE.search(stripped[:-1]))
        return self.test


def file_candidates(rel: str, text: str, stack: st.Stack) -> Iterator[Candidate]:
    """Every possible finding in one file, and the ports its server code listens on."""
    lang = language(rel)
    if lang is None or excluded(rel) or not reads(rel):
        return
    containers = frozenset(stack.container_names())
    trigger = _trigger(containers)
    if not trigger.search(text):
        return
    name = rel.rsplit("/", 1)[-1]
    lines = split_lines(text)
    pkg = st.package_role(stack, rel)
    deps = stack_deps(stack, rel)
    regions = Regions(rel, lang, file_side(rel, lang, pkg, deps), lines)
    filt = LineFilter(lang)
    codes = _Codes(lines, lang)
    compose = st.is_compose_name(name)
    services = _ComposeServices() if compose else None
    docker_cont = False
    for i, raw in enumerate(lines):
        if services is not None and services.in_test_service(raw):
            continue
        wanted = filt.block_depth > 0 or lang == "docker" or bool(trigger.search(raw))
        code = codes.advance(i, wanted)
        if not wanted or code is None or not code.strip():
            continue
        if lang == "docker":
            scanned = docker_cont or bool(_DOCKER_SCANNED.match(code))
            docker_cont = scanned and code.rstrip().endswith("\\")
            if not scanned:
                continue
        if lang == "json" and not _PKG_PROXY.match(code):
            continue
        side = regions.side_of(i)
        why = filt.reason(code, i)
        if why == "listen" and side == "server":
            _learn_listen(stack, rel, code)
        if why:
            continue
        in_container = (compose or lang == "yaml") and bool(_IN_CONTAINER.search(code))
        names = frozenset() if _DECLARATION.match(code) else containers
        for c in _line_candidates(rel, lang, side, raw, code, i + 1, codes, names):
            if in_container and c.loopback:
                continue
            yield c
        if side == "server" and lang in ("js", "py", "go"):
            _learn_port_constant(stack, rel, code)


_LISTEN_PORT = re.compile(r"(?:port\w*['\"]?\s*[:=]|\|\||\?\?|,|\(|--port[= ]|:)\s*['\"]?:?"
                          r"(?P<port>\d{4,5})\b", re.I)
_PORT_CONST = re.compile(r"^\s*(?:export\s+)?(?:const|let|var)?\s*(?:PORT|port|SERVER_PORT|"
                         r"APP_PORT|API_PORT)\s*(?::\s*\w+\s*)?=\s*[^\n]*?(?<![\w.])"
                         r"(?P<port>\d{4,5})\b")


def _learn_listen(stack: st.Stack, rel: str, code: str) -> None:
    for m in _LISTEN_PORT.finditer(code):
        stack.add_port(int(m["port"]), "backend")


def _learn_port_constant(stack: st.Stack, rel: str, code: str) -> None:
    m = _PORT_CONST.match(code)
    if m:
        stack.add_port(int(m["port"]), "backend")


def stack_deps(stack: st.Stack, rel: str) -> set[str]:
    """Framework dependencies of the nearest package.json."""
    parts = rel.split("/")[:-1]
    for i in range(len(parts), -1, -1):
        key = "/".join(parts[:i]) or "."
        if key in stack.package_deps:
            return set(stack.package_deps[key])
    return set()

