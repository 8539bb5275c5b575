"""Parse an nginx configuration and judge its upstream keep-alive and name re-resolution.

Input is the configuration as files (``{path: text}``), from ``nginx -T`` (split with
:func:`split_dump`) or from the container's filesystem. Parsing is pure.

>>> files = {"/etc/nginx/nginx.conf": '''
... http { server { location /api/ { proxy_pass http://revivatech_new_backend:3011; } } }'''}
>>> cfg = parse_files(files)
>>> [(p.location, p.host, p.uses_variable) for p in cfg.proxy_passes]
[('/api/', 'revivatech_new_backend', False)]
>>> keepalive_verdict(cfg)[0]
'fail'
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_DUMP_HEADER = re.compile(r"^# configuration file (?P<path>\S+):[ \t]*\r?\n", re.MULTILINE)


@dataclass
class Directive:
    """One directive: name, arguments and (for blocks) children."""

    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)
    is_block: bool = False


@dataclass(frozen=True)
class Upstream:
    """An ``upstream`` block: its servers (address, params) and ``keepalive`` count."""

    name: str
    servers: tuple[tuple[str, tuple[str, ...]], ...]
    keepalive: int | None


@dataclass(frozen=True)
class ProxyPass:
    """A ``proxy_pass`` with the headers and HTTP version in force where it appears."""

    location: str
    url: str
    host: str
    uses_variable: bool
    http_version: str
    connection_header: str | None


@dataclass
class NginxConfig:
    """What the checks need from a parsed configuration."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    proxy_passes: list[ProxyPass] = field(default_factory=list)
    resolvers: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def split_dump(text: str) -> dict[str, str]:
    """``nginx -T`` output -> ``{path: text}`` (the status lines before the first file dropped)."""
    out: dict[str, str] = {}
    matches = list(_DUMP_HEADER.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[m["path"]] = text[m.end() : end]
    return out


def tokenize(text: str) -> Iterator[str]:
    """Words, quoted strings (unquoted), ``{``, ``}`` and ``;``; comments dropped."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            yield c
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            yield text[i + 1 : j]
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            yield text[i:j]
            i = j


def parse(text: str) -> list[Directive]:
    """The directive tree of one file (unbalanced braces are tolerated)."""
    root: list[Directive] = []
    stack: list[list[Directive]] = [root]
    words: list[str] = []
    for tok in tokenize(text):
        if tok == ";":
            if words:
                stack[-1].append(Directive(words[0], words[1:]))
            words = []
        elif tok == "{":
            block = Directive(words[0] if words else "", words[1:], is_block=True)
            stack[-1].append(block)
            stack.append(block.children)
            words = []
        elif tok == "}":
            if len(stack) > 1:
                stack.pop()
            words = []
        else:
            words.append(tok)
    return root


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


def _scope_for(children: list[Directive], parent: _Scope, location: str) -> _Scope:
    version, conn = parent.http_version, parent.connection
    for d in children:
        if d.name == "proxy_http_version" and d.args:
            version = d.args[0]
        elif (d.name == "proxy_set_header" and len(d.args) >= 2
              and d.args[0].lower() == "connection"):
            conn = d.args[1]
    return _Scope(location, version, conn)


def _walk(nodes: list[Directive], scope: _Scope, cfg: NginxConfig) -> None:
    for d in nodes:
        if d.name == "upstream" and d.is_block:
            up = _upstream(d)
            cfg.upstreams[up.name] = up
        elif d.name == "resolver":
            cfg.resolvers.extend(a for a in d.args if "=" not in a)
        elif d.name == "proxy_pass" and d.args:
            url = d.args[0]
            host = urlsplit(url).hostname or ""
            cfg.proxy_passes.append(
                ProxyPass(scope.location, url, host, "$" in url, scope.http_version,
                          scope.connection)
            )
        if d.is_block and d.name != "upstream":
            loc = " ".join(d.args) if d.name == "location" else scope.location
            _walk(d.children, _scope_for(d.children, scope, loc), cfg)


def parse_files(files: Mapping[str, str]) -> NginxConfig:
    """Parse every file; upstreams and resolvers from any file, proxy_pass with its scope."""
    cfg = NginxConfig(files=sorted(files))
    for _path, text in sorted(files.items()):
        tree = parse(text)
        _walk(tree, _scope_for(tree, _Scope(), ""), cfg)
    return cfg


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
            problems.append(f"{where}: host {p.host} resolved once at start ({resolver})")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "; ".join(sorted(set(good)))
