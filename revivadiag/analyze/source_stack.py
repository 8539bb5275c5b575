"""What the source audit knows about the stack: services, their roles, ports and names.

Learned from the tree itself (compose files, ``.env`` files, ``package.json`` dependencies,
Dockerfiles, the ports server code listens on) and, when the stack runs, from its containers
(:func:`stack_from_containers`, fed by ``source_cli``). Without any of it the audit falls back
to ports common for web backends, and judges those by context (see ``source_audit``).

>>> s = Stack()
>>> learn_compose(s, "docker-compose.yml", '''
... services:
...   api:
...     build: ./backend
...     command: uvicorn app.main:app --host 0.0.0.0 --port 8000
...     ports: ["8001:8000"]
...   db: {image: "postgres:16"}
...   web: {build: ./frontend, ports: ["3000:3000"]}
... ''')
>>> for p in (8000, 8001, 5432, 3000, 9999):
...     print(p, s.port_role(p))
8000 ('backend', 'api', 8000)
8001 ('backend', 'api', 8000)
5432 ('database', 'db', 5432)
3000 ('frontend', 'web', 3000)
9999 None
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from revivadiag import yamlio
from revivadiag.analyze.source_files import Skip, is_dockerfile, is_env_name, split_lines

ROLES = ("backend", "database", "cache", "proxy", "frontend", "service")
#: well-known container ports of databases, caches and brokers (used with or without a stack)
WELL_KNOWN_PORTS: dict[int, str] = {
    5432: "database", 3306: "database", 27017: "database", 1433: "database", 26257: "database",
    6379: "cache", 11211: "cache", 5672: "service", 9092: "service", 9200: "service",
    4222: "service", 7474: "database", 7687: "database", 8123: "database",
}
#: ports web backends commonly listen on; without stack evidence a loopback URL with one of
#: them is a finding only when its context names an API
COMMON_BACKEND_PORTS = frozenset({3000, 3001, 3002, 3003, 3333, 4000, 4001, 5000, 5001, 5050,
                                  7000, 8000, 8001, 8008, 8080, 8081, 8082, 8088, 8888, 9000,
                                  9090, 1337})
#: the dev-server port each frontend framework uses by default (package.json dependency)
FRONTEND_DEFAULT_PORTS: dict[str, int] = {
    "next": 3000, "react-scripts": 3000, "nuxt": 3000, "vite": 5173, "@sveltejs/kit": 5173,
    "@angular/core": 4200, "astro": 4321, "@remix-run/dev": 3000, "gatsby": 8000,
    "@vue/cli-service": 8080, "quasar": 8080,
}
BACKEND_DEPS = frozenset({"express", "@nestjs/core", "fastify", "koa", "hono", "elysia",
                          "@hapi/hapi", "restify", "@adonisjs/core", "apollo-server",
                          "@apollo/server", "socket.io", "@trpc/server", "feathers"})
FRONTEND_DEPS = frozenset({"react", "react-dom", "vue", "svelte", "@angular/core", "solid-js",
                           "preact", "next", "nuxt", "@sveltejs/kit", "astro", "vite",
                           "react-scripts", "@remix-run/react", "gatsby"})

_IMAGE_ROLES = (
    (re.compile(r"postgres|postgis|timescale|mysql|mariadb|mongo|mssql|cockroach|neo4j|"
                r"clickhouse|supabase/postgres"), "database"),
    (re.compile(r"redis|valkey|keydb|memcache|dragonfly"), "cache"),
    (re.compile(r"nginx|traefik|caddy|haproxy|envoy"), "proxy"),
    (re.compile(r"rabbitmq|kafka|nats|elasticsearch|opensearch|minio|mailhog|mailpit|zookeeper|"
                r"localstack|meilisearch|typesense"), "service"),
)
_NAME_ROLES = (
    (re.compile(r"^(db|database|postgres\w*|pg|mysql|mariadb|mongo\w*)$"), "database"),
    (re.compile(r"^(redis|cache|valkey|memcached?)$"), "cache"),
    (re.compile(r"^(proxy|nginx|traefik|caddy|gateway|reverse[-_]proxy|lb)$"), "proxy"),
    (re.compile(r"(^|[-_])(frontend|client|ui|webapp|spa|dashboard|admin[-_]ui)$"), "frontend"),
    (re.compile(r"(^|[-_])(backend|api|server|service|svc|app)$"), "backend"),
)
_BACKEND_CMD = re.compile(r"uvicorn|gunicorn|hypercorn|daphne|manage\.py|flask|fastapi|"
                          r"node\s+(dist|build|server|src)|nest\s+start|bun\s+(run\s+)?(src|"
                          r"index|server)|go\s+run|air\b|nodemon|ts-node|python", re.I)
_FRONTEND_CMD = re.compile(r"\b(vite|next\s+(dev|start)|nuxt|react-scripts|ng\s+serve|astro)\b")
_PORT_FLAG = re.compile(r"(?:--port[= ]|-p\s+|--listen[= ]|PORT=)(\d{2,5})\b")
_BIND_FLAG = re.compile(r"(?:--bind[= ]|-b\s+)['\"]?[\w.\[\]:]*:(\d{2,5})\b")
_INTERP = re.compile(r"\$\{(\w+)(?::?[-?](?P<default>[^}]*))?\}")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")
_EXPOSE = re.compile(r"^\s*EXPOSE\s+(.+)$", re.I)


@dataclass
class Service:
    """One service of the stack: its role, the ports it answers on and its container name."""

    name: str
    role: str = ""
    ports: dict[int, int] = field(default_factory=dict)  # any port (host or container) -> container
    container_name: str = ""
    evidence: list[str] = field(default_factory=list)


@dataclass
class Stack:
    """Services, roles and ports known so far, with where each fact came from."""

    services: dict[str, Service] = field(default_factory=dict)
    #: port -> (role, service, container port) learned outside compose (listen, env, ...)
    extra_ports: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    #: directories of JS packages -> "frontend" or "backend", by their dependencies
    packages: dict[str, str] = field(default_factory=dict)
    #: directories of JS packages -> the frameworks they depend on
    package_deps: dict[str, frozenset[str]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    from_engine: bool = False

    def service(self, name: str) -> Service:
        """The service called ``name`` (created when new)."""
        return self.services.setdefault(name, Service(name))

    def port_role(self, port: int) -> tuple[str, str, int] | None:
        """(role, service, container port) of a port the stack declares, or None."""
        best: tuple[str, str, int] | None = None
        for svc in self.services.values():
            if port in svc.ports and svc.role:
                cand = (svc.role, svc.name, svc.ports[port])
                if best is None or _rank(cand[0]) < _rank(best[0]):
                    best = cand
        return best or self.extra_ports.get(port)

    def add_port(self, port: int, role: str, service: str = "", container_port: int = 0) -> None:
        """Record a port learned outside compose; compose facts and earlier facts win."""
        if port not in self.extra_ports or _rank(role) < _rank(self.extra_ports[port][0]):
            self.extra_ports[port] = (role, service, container_port or port)

    def names(self) -> set[str]:
        """Every service name (what browsers cannot resolve)."""
        return set(self.services)

    def container_names(self) -> dict[str, str]:
        """container name -> service, for names that differ from the service name."""
        return {s.container_name: s.name for s in self.services.values()
                if s.container_name and s.container_name != s.name}

    def service_for_role(self, role: str) -> str:
        """A service holding ``role`` (the first by name), or ''."""
        return next((s.name for s in sorted(self.services.values(), key=lambda s: s.name)
                     if s.role == role), "")

    def known(self) -> bool:
        """Whether anything was learned."""
        return bool(self.services or self.extra_ports)

    def summary(self) -> str:
        """One line: each service with its role and ports, then ports learned elsewhere.

        >>> s = Stack()
        >>> s.service("api").role, s.service("api").ports = "backend", {8001: 8000, 8000: 8000}
        >>> s.add_port(5173, "frontend")
        >>> s.summary()
        'api (backend 8000, 8001->8000); 5173 frontend'
        """
        parts = []
        for svc in sorted(self.services.values(), key=lambda x: x.name):
            ports = ", ".join(str(p) if p == t else f"{p}->{t}"
                              for p, t in sorted(svc.ports.items()))
            parts.append(f"{svc.name} ({svc.role or 'unknown'}{' ' + ports if ports else ''})")
        extra = ", ".join(f"{p} {r}" for p, (r, _, _) in sorted(self.extra_ports.items()))
        return "; ".join(parts + ([extra] if extra else [])) or "nothing learned"


def _rank(role: str) -> int:
    order = {"database": 0, "cache": 1, "backend": 2, "service": 3, "proxy": 4, "frontend": 5}
    return order.get(role, 9)


# ---------------------------------------------------------------- compose


def is_compose_name(name: str) -> bool:
    """``docker-compose*.yml``, ``compose*.yaml``."""
    low = name.lower()
    return low.startswith(("docker-compose", "compose")) and low.endswith((".yml", ".yaml"))


def _interp(text: str) -> str:
    """``${VAR:-default}`` -> ``default`` (the value Compose would use without the variable)."""
    return _INTERP.sub(lambda m: m["default"] or "", text)


def parse_port_spec(spec: object) -> list[tuple[int, int]]:
    """(published or container port, container port) pairs of one ``ports:`` entry.

    >>> parse_port_spec("127.0.0.1:8001:8000/tcp"), parse_port_spec(3000)
    ([(8001, 8000), (8000, 8000)], [(3000, 3000)])
    >>> parse_port_spec({"target": 80, "published": "8080"}), parse_port_spec("9000-9001")
    ([(8080, 80), (80, 80)], [(9000, 9000)])
    """
    if isinstance(spec, Mapping):
        target = _int(spec.get("target"))
        published = _int(spec.get("published"))
        out = [(published, target)] if published and target else []
        return out + ([(target, target)] if target else [])
    text = _interp(str(spec)).split("/")[0].strip()
    parts = text.rsplit(":", 2) if text.count(":") <= 2 else text.rsplit(":", 1)
    nums = [_int(p.split("-")[0]) for p in parts[-2:]]
    if len(parts) == 1 or nums[0] is None:
        return [(nums[-1], nums[-1])] if nums[-1] else []
    published, target = nums[0], nums[1]
    if not target:
        return []
    return ([(published, target)] if published else []) + [(target, target)]


def _int(value: object) -> int | None:
    try:
        n = int(str(value).strip().strip("'\""))
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 65536 else None


def _role_of(name: str, image: str, command: str, build: str, stack: Stack) -> tuple[str, str]:
    """(role, evidence) of a compose service."""
    for pattern, role in _IMAGE_ROLES:
        if image and pattern.search(image.lower().split("/")[-1]):
            return role, f"image {image}"
    if command and _BACKEND_CMD.search(command):
        return "backend", "command"
    if command and _FRONTEND_CMD.search(command):
        return "frontend", "command"
    if build:
        pkg = stack.packages.get(str(PurePosixPath(build.lstrip("./") or ".")).rstrip("/"))
        if pkg:
            return pkg, f"package.json in {build}"
        low = build.lower()
        if re.search(r"(front|client|web|ui|app)[^/]*/?$", low) and "api" not in low:
            return "frontend", f"build context {build}"
        if re.search(r"(back|api|server|service)", low):
            return "backend", f"build context {build}"
    for pattern, role in _NAME_ROLES:
        if pattern.search(name.lower()):
            return role, f"name {name}"
    return "", ""


def learn_compose(stack: Stack, rel: str, text: str) -> None:
    """Services, roles, ports and container names of one compose file (errors become skips)."""
    try:
        data = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stack.skips.append(Skip(rel, f"compose file not parsed: {reason}"))
        return
    services = data.get("services") if isinstance(data, Mapping) else None
    if not isinstance(services, Mapping):
        if data is not None:
            stack.skips.append(Skip(rel, "compose file not used: no services mapping"))
        return
    base = str(PurePosixPath(rel).parent)
    for name, spec in services.items():
        if not isinstance(spec, Mapping):
            continue
        svc = stack.service(str(name))
        image = str(spec.get("image") or "")
        command = _command_text(spec.get("command")) + " " + _command_text(spec.get("entrypoint"))
        build = spec.get("build")
        context = (build.get("context") if isinstance(build, Mapping) else build) or ""
        if context:
            context = str(PurePosixPath(base) / str(context)) if base != "." else str(context)
        for entry in _as_list(spec.get("ports")):
            for port, target in parse_port_spec(entry):
                svc.ports.setdefault(port, target)
        for entry in _as_list(spec.get("expose")):
            for port, target in parse_port_spec(entry):
                svc.ports.setdefault(port, target)
        for m in list(_PORT_FLAG.finditer(command)) + list(_BIND_FLAG.finditer(command)):
            svc.ports.setdefault(int(m[1]), int(m[1]))
        for key, value in _env_items(spec.get("environment")):
            if key == "PORT" and (env_port := _int(_interp(value))):
                svc.ports.setdefault(env_port, env_port)
        if spec.get("container_name"):
            svc.container_name = _interp(str(spec["container_name"]))
        if not svc.role:
            svc.role, why = _role_of(svc.name, image, command, str(context), stack)
            if svc.role:
                svc.evidence.append(f"{rel}: {why}")
        if not svc.role and svc.ports:
            svc.role = "backend"
            svc.evidence.append(f"{rel}: a service with ports and no other role")
        if (known := image_port(image)) is not None:
            svc.ports.setdefault(known, known)


_IMAGE_PORTS = (("postgres", 5432), ("postgis", 5432), ("timescale", 5432), ("mysql", 3306),
                ("mariadb", 3306), ("mongo", 27017), ("redis", 6379), ("valkey", 6379),
                ("keydb", 6379), ("memcached", 11211), ("rabbitmq", 5672), ("mssql", 1433),
                ("elasticsearch", 9200), ("opensearch", 9200), ("nats", 4222))


def image_port(image: str) -> int | None:
    """The port the well-known image listens on (``postgres:16`` -> 5432), or None."""
    name = image.lower().rsplit("/", 1)[-1]
    return next((port for key, port in _IMAGE_PORTS if name.startswith(key)), None)


def _command_text(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value) if value else ""


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else ([] if value is None else [value])


def _env_items(env: object) -> list[tuple[str, str]]:
    if isinstance(env, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in env.items()]
    out = []
    for item in _as_list(env):
        key, _, value = str(item).partition("=")
        out.append((key.strip(), value.strip()))
    return out


# ---------------------------------------------------------------- .env, package.json, Dockerfile

_ENV_PORT_ROLES = (
    (re.compile(r"^(DB|DATABASE|POSTGRES|PG|MYSQL|MARIADB|MONGO\w*)_PORT$"), "database"),
    (re.compile(r"^(REDIS|CACHE|VALKEY|MEMCACHED?)_PORT$"), "cache"),
    (re.compile(r"^(FRONTEND|CLIENT|WEB|UI|VITE|NEXT|NUXT)_?PORT$"), "frontend"),
    (re.compile(r"^(API|BACKEND|SERVER|APP|HTTP)_PORT$"), "backend"),
)


def learn_env(stack: Stack, rel: str, text: str) -> None:
    """Ports named by ``X_PORT=`` lines; ``PORT=`` takes the role of the package it sits in."""
    for line in split_lines(text):
        m = _ENV_LINE.match(line)
        if not m:
            continue
        key = m["key"].upper()
        port = _int(m["value"].split("#")[0].strip())
        if port is None:
            continue
        if key == "PORT":
            role = package_role(stack, rel) or path_role(rel)
            if role:
                stack.add_port(port, role)
            continue
        for pattern, role in _ENV_PORT_ROLES:
            if pattern.match(key):
                stack.add_port(port, role)


def path_role(rel: str) -> str:
    """frontend/backend from the directories holding ``rel`` ('' when they say nothing).

    >>> path_role("client/.env"), path_role("services/api/.env"), path_role(".env")
    ('frontend', 'backend', '')
    """
    parts = [p.lower() for p in rel.split("/")[:-1]]
    if any(re.search(r"front|client|web|ui$|spa", p) for p in parts):
        return "frontend"
    if any(re.search(r"back|api|server|service", p) for p in parts):
        return "backend"
    return ""


def package_role(stack: Stack, rel: str) -> str:
    """frontend/backend of the nearest JS package holding ``rel`` ('' when none)."""
    parts = rel.split("/")[:-1]
    for i in range(len(parts), -1, -1):
        key = "/".join(parts[:i]) or "."
        if key in stack.packages:
            return stack.packages[key]
    return ""


def learn_package_json(stack: Stack, rel: str, text: str) -> None:
    """A package's role from its dependencies; a frontend framework's default dev port."""
    try:
        data = json.loads(text)
    except ValueError:
        return
    if not isinstance(data, Mapping):
        return
    deps: set[str] = set()
    for key in ("dependencies", "devDependencies", "peerDependencies"):
        if isinstance(data.get(key), Mapping):
            deps |= set(data[key])
    directory = str(PurePosixPath(rel).parent)
    stack.package_deps[directory] = frozenset(deps & (BACKEND_DEPS | FRONTEND_DEPS))
    back, front = deps & BACKEND_DEPS, deps & FRONTEND_DEPS
    if back and not (front - {"vite"}):
        stack.packages[directory] = "backend"
    elif front:
        stack.packages[directory] = "frontend"
        for dep, port in FRONTEND_DEFAULT_PORTS.items():
            if dep in deps:
                scripts = json.dumps(data.get("scripts") or {})
                flag = re.search(r"(?:-p|--port)[ =](\d{2,5})", scripts)
                stack.add_port(int(flag[1]) if flag else port, "frontend")
                break


def learn_dockerfile(stack: Stack, rel: str, text: str) -> None:
    """``EXPOSE`` and ``--port``/``--bind`` of CMD lines: ports of the image built there."""
    role = package_role(stack, rel) or path_role(rel)
    if not role:
        return  # an image of unknown purpose: its ports say nothing
    for line in split_lines(text):
        m = _EXPOSE.match(line)
        ports = [_int(p.split("/")[0]) for p in m[1].split()] if m else []
        if not m and re.match(r"^\s*(CMD|ENTRYPOINT|RUN)\b", line, re.I):
            ports = [int(x[1]) for x in _PORT_FLAG.finditer(line)]
            ports += [int(x[1]) for x in _BIND_FLAG.finditer(line)]
        for port in ports:
            if port:
                stack.add_port(port, role)


def learn_file(stack: Stack, rel: str, text: str) -> None:
    """Feed one file of the tree to the stack learner (by its name)."""
    name = rel.rsplit("/", 1)[-1]
    if is_compose_name(name):
        learn_compose(stack, rel, text)
    elif is_env_name(name):
        learn_env(stack, rel, text)
    elif is_dockerfile(name):
        learn_dockerfile(stack, rel, text)


def is_stack_file(rel: str) -> bool:
    """Files read before the scan: compose, .env, package.json, Dockerfile."""
    name = rel.rsplit("/", 1)[-1]
    return (is_compose_name(name) or is_env_name(name) or is_dockerfile(name)
            or name == "package.json")


# ---------------------------------------------------------------- the running stack


def stack_from_containers(containers: Iterable[Mapping[str, Any]]) -> Stack:
    """A stack from the Docker API's container records of one compose project.

    Each record is what ``docker inspect`` gives (``Name``, ``Config.Labels``,
    ``Config.Image``, ``Config.ExposedPorts``, ``NetworkSettings.Ports``).

    >>> s = stack_from_containers([{"Name": "/shop-api-1", "Config": {
    ...     "Labels": {"com.docker.compose.service": "api"}, "Image": "shop-api",
    ...     "ExposedPorts": {"8000/tcp": {}}},
    ...     "NetworkSettings": {"Ports": {"8000/tcp": [{"HostPort": "8001"}]}}}])
    >>> s.port_role(8001), s.container_names()
    (('backend', 'api', 8000), {'shop-api-1': 'api'})
    """
    stack = Stack(from_engine=True)
    for info in containers:
        config = info.get("Config") or {}
        labels = config.get("Labels") or {}
        name = str(labels.get("com.docker.compose.service") or str(info.get("Name", "")).strip("/"))
        if not name:
            continue
        svc = stack.service(name)
        svc.container_name = str(info.get("Name", "")).lstrip("/")
        for spec in config.get("ExposedPorts") or {}:
            if (port := _int(str(spec).split("/")[0])) is not None:
                svc.ports.setdefault(port, port)
        for spec, bindings in ((info.get("NetworkSettings") or {}).get("Ports") or {}).items():
            target = _int(str(spec).split("/")[0])
            for b in bindings or []:
                host = _int((b or {}).get("HostPort"))
                if host and target:
                    svc.ports.setdefault(host, target)
        command = _command_text(config.get("Cmd")) + " " + _command_text(config.get("Entrypoint"))
        svc.role, why = _role_of(name, str(config.get("Image") or ""), command, "", stack)
        if not svc.role and svc.ports:
            svc.role, why = "backend", "a service with ports and no other role"
        svc.evidence.append(f"container {svc.container_name}: {why}")
    return stack
