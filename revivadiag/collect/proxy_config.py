"""The proxy's own configuration, read from its container, and the routes it declares.

nginx: ``nginx -T`` through ``exec`` (the binary is there), else the configuration files
themselves through the archive API (no shell needed). Traefik: the routers its Docker
provider reads from the other containers' labels. Routes feed the role inference
(:mod:`revivadiag.collect.roles`): the service the proxy forwards ``/api`` to is the backend.

>>> files = {"/etc/nginx/nginx.conf": '''http { upstream app { server api:8000; keepalive 8; }
...   server { location / { proxy_pass http://web:3000; }
...            location /api/ { proxy_pass http://app; } } }'''}
>>> [(r.location, r.host, r.port) for r in nginx_routes("proxy", files)]
[('/', 'web', 3000), ('/api/', 'api', 8000)]
>>> traefik_routes("edge", {"api": {"traefik.http.routers.a.rule": "PathPrefix(`/api`)",
...     "traefik.http.services.a.loadbalancer.server.port": "8000"}})
[ProxyRoute(proxy='edge', location='/api', host='api', port=8000)]
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import re
import tarfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from revivadiag.collect.nginx_conf import parse_files, split_dump
from revivadiag.collect.roles import ProxyRoute

MAX_BODY = 1_000_000
MAX_CONF_FILES = 30
_INCLUDE = re.compile(r"^\s*include\s+([^;#]+);", re.MULTILINE)
_CONF_ARG = re.compile(r"\s-c\s+(\S+)")
_TRAEFIK_RULE = re.compile(r"^traefik\.http\.routers\.([^.]+)\.rule$")
_PATH_PREFIX = re.compile(r"(?:PathPrefix|Path)\(\s*[`\"']([^`\"']+)[`\"']")
_TRAEFIK_PORT = re.compile(r"^traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port$")
_SCHEME_PORTS = {"http": 80, "https": 443}
_SET = re.compile(r"(?:^|[;{\s])set\s+\$(\w+)\s+([^;]+);")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


# ---------------------------------------------------------------- routes (pure)


def _host_port(address: str, scheme: str = "http") -> tuple[str, int | None]:
    parts = urlsplit(f"{scheme}://{address}" if "://" not in address else address)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def nginx_variables(files: Mapping[str, str]) -> dict[str, str]:
    """``set $name value;`` assignments of a configuration (the last one of a name wins).

    >>> nginx_variables({"n": 'set $api "http://api:8000"; set $x $y;'})
    {'api': 'http://api:8000', 'x': '$y'}
    """
    out: dict[str, str] = {}
    for text in files.values():
        for name, value in _SET.findall(text):
            out[name] = value.strip().strip("\"'")
    return out


def expand_variables(url: str, variables: Mapping[str, str]) -> str:
    """``url`` with the ``$name`` / ``${name}`` it uses replaced by their ``set`` values.

    >>> expand_variables("http://$api_host:8000", {"api_host": "api"})
    'http://api:8000'
    """
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), url)


def nginx_routes(proxy: str, files: Mapping[str, str]) -> list[ProxyRoute]:
    """Each ``proxy_pass`` of an nginx configuration as routes to hosts (upstreams expanded;
    ``set $var`` values put in). A proxy_pass whose host stays a variable gives no route.

    >>> [(r.location, r.host, r.port) for r in nginx_routes("p", {"n": "resolver 127.0.0.11; "
    ...     "server { location /api/ { set $up http://api:8000; proxy_pass $up; } }"})]
    [('/api/', 'api', 8000)]
    """
    cfg = parse_files(files)
    variables = nginx_variables(files)
    out: list[ProxyRoute] = []
    for p in cfg.proxy_passes:
        if p.uses_variable:
            url = expand_variables(p.url, variables)
            parts = urlsplit(url)
            if not parts.hostname or "$" in parts.netloc:
                continue
            p = replace(p, url=url, host=parts.hostname)
        scheme = urlsplit(p.url).scheme or "http"
        upstream = cfg.upstreams.get(p.host)
        if upstream is not None:
            for server, _params in upstream.servers:
                host, port = _host_port(server)
                if host:
                    out.append(ProxyRoute(proxy, p.location, host, port or 80))
            continue
        host, port = _host_port(p.url)
        if host and "$" not in host:
            out.append(ProxyRoute(proxy, p.location, host, port or _SCHEME_PORTS.get(scheme)))
    return list(dict.fromkeys(out))


def traefik_routes(proxy: str, labels: Mapping[str, Mapping[str, str]]) -> list[ProxyRoute]:
    """Routes of a Traefik Docker provider: service -> its containers' traefik labels."""
    out: list[ProxyRoute] = []
    for service, labs in sorted(labels.items()):
        port = next((int(v) for k, v in labs.items()
                     if _TRAEFIK_PORT.match(k) and str(v).isdigit()), None)
        for key, rule in sorted(labs.items()):
            if _TRAEFIK_RULE.match(key):
                prefixes = _PATH_PREFIX.findall(str(rule)) or ["/"]
                out += [ProxyRoute(proxy, prefix, service.lower(), port) for prefix in prefixes]
    return out


def websocket_locations(files: Mapping[str, str]) -> list[str]:
    """Locations that pass a WebSocket upgrade (``Connection`` set to upgrade).

    >>> websocket_locations({"n": "server { location /ws { proxy_pass http://a:1; "
    ...     "proxy_set_header Upgrade $http_upgrade; "
    ...     "proxy_set_header Connection $connection_upgrade; } }"})
    ['/ws']
    """
    cfg = parse_files(files)
    found = [p.location for p in cfg.proxy_passes
             if "upgrade" in (p.connection_header or "").lower() and p.location]
    return [loc.strip("=~^* ") for loc in dict.fromkeys(found)]


# ---------------------------------------------------------------- reading nginx (I/O)


def nginx_conf_path(top: dict[str, Any]) -> str:
    """The ``-c`` file of the nginx master in ``docker top`` output (else the default)."""
    titles = [t.upper() for t in top.get("Titles") or []]
    col = titles.index("CMD") if "CMD" in titles else (titles.index("COMMAND") if
                                                        "COMMAND" in titles else -1)
    for proc in top.get("Processes") or []:
        cmd = " ".join(proc) if col < 0 else str(proc[col])
        is_master = "nginx" in cmd and "master" in cmd
        if is_master or cmd.startswith(("nginx", "/usr/sbin/nginx")):
            m = _CONF_ARG.search(" " + cmd)
            if m and not m.group(1).endswith("/"):  # `ps` may cut a long line: "-c /"
                return m.group(1)
    return "/etc/nginx/nginx.conf"


def _archive_files(container: Any, path: str) -> dict[str, str]:
    """Regular files under ``path`` (a file or a directory) from the archive API."""
    stream, _stat = container.get_archive(path)
    data = b"".join(stream)
    out: dict[str, str] = {}
    parent = posixpath.dirname(path.rstrip("/"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.size <= MAX_BODY:
                fh = tar.extractfile(member)
                if fh is not None:
                    out[posixpath.join(parent, member.name)] = fh.read().decode("utf-8", "replace")
    return out


def _via_archive(container: Any, conf: str) -> dict[str, str]:
    import docker.errors

    files = _archive_files(container, conf)
    todo = list(files)
    root = posixpath.dirname(conf)
    while todo and len(files) < MAX_CONF_FILES:
        for pattern in _INCLUDE.findall(files[todo.pop()]):
            pattern = pattern.strip().strip("\"'")
            if not pattern.startswith("/"):
                pattern = posixpath.join(root, pattern)
            directory = posixpath.dirname(pattern)
            try:
                found = _archive_files(container, directory) if any(
                    c in pattern for c in "*?[") else _archive_files(container, pattern)
            except docker.errors.DockerException:
                continue  # a missing include: nginx -T would have refused it anyway
            for path, text in found.items():
                if fnmatch.fnmatch(path, pattern) and path not in files:
                    files[path] = text
                    todo.append(path)
    return files


def read_nginx_config(client: Any, container_name: str) -> tuple[dict[str, str] | None, str]:
    """``({path: text}, how)`` of the proxy's running configuration, or ``(None, why)``."""
    import docker.errors

    try:
        container = client.containers.get(container_name)
        conf = nginx_conf_path(client.api.top(container.id))
    except docker.errors.DockerException as exc:
        return None, f"cannot inspect {container_name}: {exc}"[:300]
    try:
        res = container.exec_run(["nginx", "-T", "-c", conf], demux=True)
        out = (res.output[0] or b"").decode("utf-8", "replace") if res.output else ""
        if res.exit_code == 0 and "# configuration file" in out:
            return split_dump(out), f"nginx -T -c {conf} (exec)"
    except docker.errors.DockerException:
        pass
    try:
        return _via_archive(container, conf), f"{conf} and its includes (archive API)"
    except docker.errors.DockerException as exc:
        return None, f"cannot read {conf} from {container_name}: {exc}"[:300]
