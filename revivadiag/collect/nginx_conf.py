"""Parse an nginx configuration (with crossplane) and judge upstream keep-alive and name
re-resolution.

Input is the configuration as files (``{path: text}``): the output of ``nginx -T`` split with
:func:`split_dump`, which already holds every included file. crossplane reads files from disk,
so each text is parsed on its own (``single=True``) from a private temporary directory, and
``include`` directives are resolved here against the given file names, globs and all
(relative patterns against the main file's directory, as nginx does), then inlined where
they appear so that directives inherit their scope across files.

>>> files = {"/etc/nginx/nginx.conf": '''
... http { server { location /api/ { proxy_pass http://revivatech_new_backend:3011; } } }'''}
>>> cfg = parse_files(files)
>>> [(p.location, p.host, p.port, p.uses_variable) for p in cfg.proxy_passes]
[('/api/', 'revivatech_new_backend', 3011, False)]
>>> keepalive_verdict(cfg)[0]
'fail'
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import crossplane

_DUMP_HEADER = re.compile(r"^# configuration file (?P<path>\S+):[ \t]*\r?\n", re.MULTILINE)
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<plain>\w+))")
_GLOB_MAGIC = re.compile(r"[*?\[]")
#: Include nesting deeper than this is a loop (nginx itself stops far earlier in practice).
MAX_INCLUDE_DEPTH = 32
DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


@dataclass
class Directive:
    """One directive: name, arguments, (for blocks) children, and where it was written."""

    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)
    is_block: bool = False
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Upstream:
    """An ``upstream`` block: its servers (address, params) and ``keepalive`` count."""

    name: str
    servers: tuple[tuple[str, tuple[str, ...]], ...]
    keepalive: int | None

    @property
    def ports(self) -> set[int | None]:
        """Ports of its servers (80 where a server names none, None for a unix socket)."""
        return {server_port(addr) for addr, _ in self.servers}


@dataclass(frozen=True)
class ProxyPass:
    """A ``proxy_pass`` with the headers and HTTP version in force where it appears.

    ``host`` and ``port`` are where it sends requests: from the URL (``set`` variables of the
    enclosing blocks substituted), the port of the named upstream's servers when they agree,
    else the scheme's default; ``port`` is None when it cannot be known.
    """

    location: str
    url: str
    host: str
    uses_variable: bool
    http_version: str
    connection_header: str | None
    port: int | None = None
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class RateLimit:
    """A ``limit_req`` in force at ``location`` ("" for the server or http level), with its
    zone's ``rate`` (requests per second) from ``limit_req_zone``.

    ``interval_s(share)``: the gap between requests that keeps a client at ``share`` of the
    rate, so its own requests never meet the limit (and do not eat the budget of the
    clients sharing its key).

    >>> RateLimit("/api/", "api", 30.0, 30, True).interval_s(0.5)
    0.0667
    """

    location: str
    zone: str
    rate_per_s: float
    burst: int
    nodelay: bool

    def interval_s(self, share: float = 0.5) -> float:
        return round(1.0 / max(self.rate_per_s * share, 1e-3), 4)

    def describe(self) -> str:
        rate = f"{self.rate_per_s:g}r/s"
        return (f"limit_req zone={self.zone} rate={rate} burst={self.burst}"
                f"{' nodelay' if self.nodelay else ''} on {self.location or 'every location'}")


def parse_rate(text: str) -> float | None:
    """``limit_req_zone``'s ``rate=`` value in requests per second.

    >>> parse_rate("30r/s"), parse_rate("120r/m"), parse_rate("x")
    (30.0, 2.0, None)
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)r/([sm])", text.strip())
    if m is None:
        return None
    return float(m[1]) / (60.0 if m[2] == "m" else 1.0)


@dataclass
class NginxConfig:
    """What the checks need from a parsed configuration."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    proxy_passes: list[ProxyPass] = field(default_factory=list)
    resolvers: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: ``file:line: problem`` for what crossplane could not parse or an include that matched
    #: no file of the dump
    errors: list[str] = field(default_factory=list)
    #: zone name -> requests per second (``limit_req_zone``)
    zones: dict[str, float] = field(default_factory=dict)
    #: each ``limit_req`` with the location it is written in (zone rates filled in later)
    limits: list[tuple[str, str, int, bool]] = field(default_factory=list)
    #: every ``location`` (its arguments joined), for matching a path as nginx does
    locations: list[str] = field(default_factory=list)

    def rate_limits(self) -> list[RateLimit]:
        """Every ``limit_req`` whose zone is declared, with the zone's rate."""
        return [RateLimit(loc, zone, self.zones[zone], burst, nodelay)
                for loc, zone, burst, nodelay in self.limits if zone in self.zones]

    def limit_for(self, path: str) -> RateLimit | None:
        """The tightest ``limit_req`` a request for ``path`` meets: the longest prefix
        location (or an exact ``= path``) that has one, else one at the server level
        (regular-expression locations are not matched: an approximation on the safe side
        is to take the tightest limit of the configuration when no prefix matches).

        >>> cfg = parse_files({"n.conf": "http { limit_req_zone $binary_remote_addr "
        ...     "zone=api:1m rate=10r/s; server { location /api/ { limit_req zone=api "
        ...     "burst=5; } } }"})
        >>> cfg.limit_for("/api/health").describe()
        'limit_req zone=api rate=10r/s burst=5 on /api/'
        >>> cfg.limit_for("/") is None
        True
        """
        limits = self.rate_limits()
        where = match_location(self.locations, path)
        if where is not None:
            own = [lim for lim in limits if lim.location == where]
            if own:  # a location's own limit_req replaces the ones above it
                return min(own, key=lambda r: r.rate_per_s)
        server = [lim for lim in limits if not lim.location]
        regex = [] if where is not None else \
            [lim for lim in limits if lim.location.split()[:1] in (["~"], ["~*"])]
        pool = server or regex
        return min(pool, key=lambda r: r.rate_per_s) if pool else None


def match_location(locations: list[str], path: str) -> str | None:
    """The location nginx picks for ``path`` among prefix and exact ones (``= /x`` first,
    then the longest prefix); regular-expression locations are not evaluated.

    >>> match_location(["/", "/api/", "= /api/x", "~ [.]php$"], "/api/y")
    '/api/'
    >>> match_location(["/", "/api/", "= /api/x"], "/api/x")
    '= /api/x'
    """
    best: tuple[int, str | None] = (-1, None)
    for loc in locations:
        words = loc.split()
        if len(words) == 2 and words[0] == "=":
            if words[1] == path:
                return loc
            continue
        if not words or words[0] in ("~", "~*", "@"):
            continue
        prefix = words[-1]
        if path.startswith(prefix) and len(prefix) > best[0]:
            best = (len(prefix), loc)
    return best[1]


def split_dump(text: str) -> dict[str, str]:
    """``nginx -T`` output -> ``{path: text}`` (the status lines before the first file dropped)."""
    out: dict[str, str] = {}
    matches = list(_DUMP_HEADER.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[m["path"]] = text[m.end() : end]
    return out


# ---------------------------------------------------------------- parsing (crossplane)


def _to_directives(stmts: list[dict[str, Any]], file: str) -> list[Directive]:
    return [
        Directive(
            name=str(s["directive"]),
            args=[str(a) for a in s.get("args", [])],
            children=_to_directives(s["block"], file) if "block" in s else [],
            is_block="block" in s,
            file=file,
            line=int(s.get("line") or 0),
        )
        for s in stmts
    ]


def parse_texts(files: Mapping[str, str]) -> tuple[dict[str, list[Directive]], list[str]]:
    """Each file's own directive tree (includes not followed), and crossplane's errors."""
    trees: dict[str, list[Directive]] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="revivadiag-nginx-") as tmp:
        for i, (path, text) in enumerate(files.items()):
            disk = Path(tmp) / f"{i}.conf"
            disk.write_text(text, encoding="utf-8")
            payload = crossplane.parse(
                str(disk), single=True, check_ctx=False, catch_errors=True, comments=False
            )
            for err in payload["errors"]:
                message = str(err["error"]).replace(str(disk), path)
                errors.append(f"{path}:{err.get('line') or '?'}: {message}")
            parsed = payload["config"][0]["parsed"] if payload["config"] else []
            trees[path] = _to_directives(parsed, path)
    return trees, errors


def parse(text: str, path: str = "nginx.conf") -> list[Directive]:
    """The directive tree of one file's text (includes not followed).

    >>> [(d.name, d.args) for d in parse('a "x { y";  # b c;\\nd \\'e\\' f;')]
    [('a', ['x { y']), ('d', ['e', 'f'])]
    """
    return parse_texts({path: text})[0][path]


def include_targets(pattern: str, main: str, names: list[str]) -> list[str]:
    """Files of the dump an ``include`` pattern names, sorted as nginx's glob sorts them.

    >>> include_targets("conf.d/*.conf", "/etc/nginx/nginx.conf",
    ...                 ["/etc/nginx/conf.d/b.conf", "/etc/nginx/conf.d/a.conf", "/x.conf"])
    ['/etc/nginx/conf.d/a.conf', '/etc/nginx/conf.d/b.conf']
    """
    full = pattern if pattern.startswith("/") else posixpath.join(posixpath.dirname(main), pattern)
    full = posixpath.normpath(full)
    if not _GLOB_MAGIC.search(full):
        return [n for n in names if posixpath.normpath(n) == full]
    depth = len(PurePosixPath(full).parts)
    return sorted(
        n
        for n in names
        if len(PurePosixPath(n).parts) == depth and PurePosixPath(posixpath.normpath(n)).match(full)
    )


def _includes(tree: list[Directive]) -> list[Directive]:
    out, stack = [], list(tree)
    while stack:
        d = stack.pop()
        stack.extend(d.children)
        if d.name == "include" and d.args and not d.is_block:
            out.append(d)
    return out


def root_files(trees: Mapping[str, list[Directive]]) -> list[str]:
    """The files to read as main configurations, in the given order: those no other file
    includes (a relative include resolved against the first file's directory, as nginx does
    when that file is the main one, and against the including file's own)."""
    names = list(trees)
    first = names[0] if names else ""
    included = {
        t
        for path, tree in trees.items()
        for d in _includes(tree)
        for base in (first, path)
        for t in include_targets(d.args[0], base, names)
        if t != path
    }
    return [n for n in names if n not in included] or names[:1]


def _inline(tree: list[Directive], main: str, trees: Mapping[str, list[Directive]],
            errors: list[str], seen: set[str], depth: int = 0) -> list[Directive]:
    """``tree`` with every include replaced by the directives of the files it names."""
    out: list[Directive] = []
    for d in tree:
        if d.name == "include" and d.args and not d.is_block:
            targets = include_targets(d.args[0], main, list(trees))
            if not targets and not _GLOB_MAGIC.search(d.args[0]):
                errors.append(f"{d.file}:{d.line}: include {d.args[0]}: no such file in the "
                              "configuration")
            if depth >= MAX_INCLUDE_DEPTH:
                errors.append(f"{d.file}:{d.line}: include {d.args[0]} nested too deep")
                continue
            for target in targets:
                seen.add(target)
                out.extend(_inline(trees[target], main, trees, errors, seen, depth + 1))
            continue
        if d.is_block:
            d = dataclasses.replace(
                d, children=_inline(d.children, main, trees, errors, seen, depth))
        out.append(d)
    return out


# ---------------------------------------------------------------- the model


def server_port(address: str) -> int | None:
    """The port of an upstream ``server`` address (80 when it names none).

    >>> server_port("backend:3011"), server_port("10.0.0.2"), server_port("[::1]:81")
    (3011, 80, 81)
    >>> server_port("unix:/run/app.sock") is None
    True
    """
    if address.startswith("unix:"):
        return None
    parsed = urlsplit(f"//{address}")
    try:
        return parsed.port or 80
    except ValueError:
        return None


def _upstream(block: Directive) -> Upstream:
    servers = tuple(
        (d.args[0], tuple(d.args[1:])) for d in block.children if d.name == "server" and d.args
    )
    keep = [d for d in block.children if d.name == "keepalive" and d.args]
    count = int(keep[0].args[0]) if keep and keep[0].args[0].isdigit() else None
    return Upstream(block.args[0] if block.args else "", servers, count)


@dataclass(frozen=True)
class _Scope:
    location: str = ""
    http_version: str = "1.0"
    connection: str | None = None
    variables: tuple[tuple[str, str], ...] = ()


def _scope_for(children: list[Directive], parent: _Scope, location: str) -> _Scope:
    """The scope a block's directives run in.

    nginx inherits ``proxy_set_header`` from the outer level only when this level sets none.
    """
    version = parent.http_version
    headers = [d for d in children if d.name == "proxy_set_header" and len(d.args) >= 2]
    conn = parent.connection if not headers else None
    variables = dict(parent.variables)
    for d in children:
        if d.name == "proxy_http_version" and d.args:
            version = d.args[0]
        elif d.name == "set" and len(d.args) >= 2:
            variables[d.args[0].lstrip("$")] = d.args[1]
    for d in headers:
        if d.args[0].lower() == "connection":
            conn = d.args[1]
    return _Scope(location, version, conn, tuple(variables.items()))


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$name``/``${name}`` with values ``set`` in enclosing blocks (others kept).

    >>> expand("$up/x", {"up": "http://api:8000"})
    'http://api:8000/x'
    """
    def sub(m: re.Match[str]) -> str:
        name = m["braced"] or m["plain"]
        return variables.get(name, m.group(0))

    return _VARIABLE.sub(sub, text)


def _target(url: str) -> tuple[str, int | None, str]:
    """(host, explicit port or None, scheme) of a proxy_pass URL; host "" when unparsable."""
    if "://" not in url or "$" in url.split("://", 1)[1].split("/", 1)[0]:
        return "", None, ""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port, parts.scheme


def _walk(nodes: list[Directive], scope: _Scope, cfg: NginxConfig,
          passes: list[tuple[ProxyPass, str]]) -> None:
    """Collect upstreams, resolvers and proxy_pass (with the scheme of its URL, "" when only
    known at run time) from a tree."""
    for d in nodes:
        if d.name == "upstream" and d.is_block:
            up = _upstream(d)
            cfg.upstreams[up.name] = up
        elif d.name == "resolver":
            cfg.resolvers.extend(a for a in d.args if "=" not in a)
        elif d.name == "limit_req_zone":
            opts = dict(a.split("=", 1) for a in d.args if "=" in a)
            rate = parse_rate(opts.get("rate", ""))
            if rate is not None and opts.get("zone"):
                cfg.zones[opts["zone"].split(":", 1)[0]] = rate
        elif d.name == "limit_req":
            opts = dict(a.split("=", 1) for a in d.args if "=" in a)
            burst = opts.get("burst", "0")
            if opts.get("zone"):
                cfg.limits.append((scope.location, opts["zone"],
                                   int(burst) if burst.isdigit() else 0, "nodelay" in d.args))
        elif d.name == "proxy_pass" and d.args:
            url = d.args[0]
            host, port, scheme = _target(expand(url, dict(scope.variables)))
            passes.append((ProxyPass(scope.location, url, host, "$" in url, scope.http_version,
                                     scope.connection, port, d.file, d.line), scheme))
        if d.is_block and d.name not in ("upstream", "map", "types", "geo", "split_clients"):
            loc = " ".join(d.args) if d.name == "location" else scope.location
            if d.name == "location":
                cfg.locations.append(loc)
            _walk(d.children, _scope_for(d.children, scope, loc), cfg, passes)


def _with_port(p: ProxyPass, scheme: str, cfg: NginxConfig) -> ProxyPass:
    """The port an explicit-port-less proxy_pass reaches: its upstream's, else the scheme's."""
    if p.port is not None or not p.host:
        return p
    up = cfg.upstreams.get(p.host)
    if up is not None:
        ports = up.ports
        return dataclasses.replace(p, port=ports.pop() if len(ports) == 1 else None)
    return dataclasses.replace(p, port=DEFAULT_PORTS.get(scheme.lower()))


def parse_files(files: Mapping[str, str]) -> NginxConfig:
    """Parse a configuration given as ``{path: text}``, the main file first as ``nginx -T``
    prints it; includes are followed within the given files (a file nothing includes is
    read as a main configuration of its own)."""
    trees, errors = parse_texts(files)
    cfg = NginxConfig(files=sorted(files), errors=errors)
    passes: list[tuple[ProxyPass, str]] = []
    seen: set[str] = set()
    for root in root_files(trees):
        if root in seen:
            continue
        seen.add(root)
        tree = _inline(trees[root], root, trees, cfg.errors, seen)
        _walk(tree, _scope_for(tree, _Scope(), ""), cfg, passes)
    cfg.proxy_passes = [_with_port(p, scheme, cfg) for p, scheme in passes]
    return cfg


# ---------------------------------------------------------------- verdicts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split(":")[0])
    except ValueError:
        return False
    return True


def _upstream_of(cfg: NginxConfig, p: ProxyPass) -> Upstream | None:
    return cfg.upstreams.get(p.host)


def _api_passes(cfg: NginxConfig) -> list[ProxyPass]:
    """proxy_pass directives of plain HTTP locations (WebSocket upgrade locations excluded)."""
    return [p for p in cfg.proxy_passes
            if (p.connection_header or "").lower() != "$connection_upgrade"]


def keepalive_verdict(cfg: NginxConfig) -> tuple[str, str]:
    """(pass|fail|skip, evidence): upstream keep-alive for every HTTP proxy_pass."""
    passes = _api_passes(cfg)
    if not passes:
        return "skip", "no proxy_pass found in the configuration"
    problems, good = [], []
    for p in passes:
        up = _upstream_of(cfg, p)
        where = f"location {p.location or '?'} -> {p.url}"
        if up is None or not up.keepalive:
            why = "no upstream block" if up is None else f"upstream {up.name} has no keepalive"
            problems.append(f"{where}: {why}")
        elif p.http_version != "1.1" or p.connection_header != "":
            problems.append(
                f"{where}: upstream {up.name} keepalive {up.keepalive} but proxy_http_version "
                f"{p.http_version} / Connection header {p.connection_header!r} (needs 1.1 and \"\")"
            )
        else:
            good.append(f"{where}: keepalive {up.keepalive}, HTTP/1.1")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "; ".join(sorted(set(good)))


def resolution_verdict(cfg: NginxConfig, watcher: str | None = None) -> tuple[str, str]:
    """(pass|fail|skip, evidence): is the backend's name re-resolved after start-up?

    ``watcher`` names an outside mechanism declared by the deployment (e.g. an entrypoint
    that re-resolves and reloads nginx); without one, a host name in ``proxy_pass`` or in an
    upstream server is resolved once at start, and a literal IP never changes.
    """
    passes = _api_passes(cfg)
    if not passes:
        return "skip", "no proxy_pass found in the configuration"
    problems, good = [], []
    resolver = f"resolver {' '.join(cfg.resolvers)}" if cfg.resolvers else "no resolver"
    for p in passes:
        up = _upstream_of(cfg, p)
        where = f"location {p.location or '?'} -> {p.url}"
        if p.uses_variable and cfg.resolvers:
            good.append(f"{where}: variable proxy_pass, {resolver}")
        elif up is not None and cfg.resolvers and all("resolve" in s[1] for s in up.servers):
            good.append(f"{where}: upstream {up.name} servers marked resolve, {resolver}")
        elif watcher:
            good.append(f"{where}: re-resolved outside nginx ({watcher})")
        elif up is not None:
            addrs = ", ".join(s[0] for s in up.servers) or "no servers"
            kind = "fixed address" if all(_is_ip(s[0]) for s in up.servers) else "resolved once"
            problems.append(f"{where}: upstream {up.name} ({addrs}) {kind} at start, {resolver}")
        elif _is_ip(p.host):
            problems.append(f"{where}: fixed address, never re-resolved")
        else:
            problems.append(f"{where}: host {p.host or p.url} resolved once at start ({resolver})")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "; ".join(sorted(set(good)))
