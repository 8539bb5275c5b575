"""A compose file read for its topology only: services, networks and published ports.

Parsed with PyYAML; ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``$VAR`` and ``$$`` are interpolated from ``env`` (default: the process environment), as
Compose does. Several files are merged in order (later mappings win, port lists add up).
Everything malformed raises :class:`~revivadiag.errors.ComposeFileError` naming the key.

>>> m = load_compose({"services": {"db": {"ports": ["127.0.0.1:5435:5432"]}}}, project="p")
>>> m.services["db"].ports
[ComposePort(host_ip='127.0.0.1', host_port=5435, container_port=5432, protocol='tcp')]
>>> m.services["db"].networks, m.networks["default"].name
(['default'], 'p_default')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from revivadiag.errors import ComposeFileError
from revivadiag.render.compose_vars import interpolate, read_dotenv

_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(?P<host>\d+(?:-\d+)?)?:)?"
    r"(?P<container>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)
MAX_PORT_RANGE = 1000


@dataclass(frozen=True)
class ComposePort:
    """One published port: host address and port, container port, protocol."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class ComposeNetwork:
    """A network as declared (``key``) and as Compose names it on the engine (``name``)."""

    key: str
    name: str
    driver: str = "bridge"
    internal: bool = False
    external: bool = False


@dataclass
class ComposeService:
    """The parts of a service that shape the topology."""

    name: str
    container_name: str = ""
    image: str = ""
    networks: list[str] = field(default_factory=list)
    ports: list[ComposePort] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    network_mode: str = ""


@dataclass
class ComposeModel:
    """Services and networks of one project, from one or more compose files."""

    project: str
    services: dict[str, ComposeService]
    networks: dict[str, ComposeNetwork]
    origin: str = "<mapping>"


# ---------------------------------------------------------------- reading

ComposeSource = str | Path | Mapping[str, Any] | Sequence[str | Path]


def load_compose(
    source: ComposeSource,
    *,
    project: str = "",
    profiles: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    strict: bool = True,
) -> ComposeModel:
    """Read (and merge) compose file(s), or take a parsed mapping, into a :class:`ComposeModel`.

    Variables come from ``env`` (default: the process environment) over the ``.env`` file
    beside the first compose file. With ``strict=False`` a missing required variable becomes
    empty instead of an error (a port whose host part is then empty counts as unpublished).
    """
    data, origin, folder = read_compose_data(source)
    dotenv = read_dotenv(folder / ".env") if folder is not None else {}
    environ = {**dotenv, **(os.environ if env is None else env)}
    data = interpolate(data, environ, origin, strict=strict)
    folder_name = folder.name if folder is not None else ""
    name = (
        project
        or str(data.get("name") or "")
        or environ.get("COMPOSE_PROJECT_NAME", "")
        or folder_name
    )
    return parse_compose(data, project=normalize_project(name), profiles=profiles, origin=origin)


def read_compose_data(source: ComposeSource) -> tuple[dict[str, Any], str, Path | None]:
    """(merged raw mapping, origin for messages, folder of the first file or None)."""
    if isinstance(source, Mapping):
        return dict(source), "<mapping>", None
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not paths:
        raise ComposeFileError("<none>", "no compose file given")
    data: dict[str, Any] = {}
    for path in paths:
        data = merge(data, read_yaml(path))
    return data, ",".join(str(p) for p in paths), paths[0].resolve().parent


def read_yaml(path: Path) -> dict[str, Any]:
    """One compose file as a mapping; ComposeFileError for unreadable or malformed YAML."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ComposeFileError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeFileError(str(path), f"{where}not valid YAML ({problem})") from exc
    if data is None:
        raise ComposeFileError(str(path), "the file is empty")
    if not isinstance(data, dict):
        raise ComposeFileError(
            str(path), f"expected a mapping at the top level, got {type(data).__name__}"
        )
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Compose's merge of two files: mappings merge deeply, ``ports`` lists add up."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        elif key == "ports" and isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        else:
            out[key] = value
    return out


def normalize_project(name: str) -> str:
    """Compose's project name rule: lowercase, only [a-z0-9_-].

    >>> normalize_project("My App")
    'myapp'
    """
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


# ---------------------------------------------------------------- parsing


def parse_compose(
    data: Mapping[str, Any],
    *,
    project: str,
    profiles: Iterable[str] = (),
    origin: str = "<mapping>",
) -> ComposeModel:
    """Validate an interpolated compose mapping into a :class:`ComposeModel`."""
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        hint = " (the version 1 format without 'services:' is not supported)" if data else ""
        raise ComposeFileError(origin, f"no 'services:' mapping{hint}")
    networks = parse_networks(data.get("networks"), project, origin)
    active = set(profiles)
    model = ComposeModel(project=project, services={}, networks=networks, origin=origin)
    for name, spec in services.items():
        svc = parse_service(str(name), spec, origin)
        if svc.profiles and not active.intersection(svc.profiles):
            continue
        for key in svc.networks:
            if key not in networks:
                if key != "default":
                    raise ComposeFileError(
                        origin,
                        f"services.{name}.networks: network {key!r} is not declared under "
                        f"the top-level networks: (declared: {', '.join(networks) or 'none'})",
                    )
                networks[key] = ComposeNetwork(
                    "default", f"{project}_default" if project else "default"
                )
        model.services[svc.name] = svc
    return model


def parse_networks(data: Any, project: str, origin: str) -> dict[str, ComposeNetwork]:
    """The top-level ``networks:`` mapping, named as Compose names them on the engine."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ComposeFileError(origin, "networks: expected a mapping of network names")
    out: dict[str, ComposeNetwork] = {}
    for key, spec in data.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ComposeFileError(origin, f"networks.{key}: expected a mapping or nothing")
        ext = spec.get("external", False)
        external = bool(ext)
        name = spec.get("name") or (ext.get("name") if isinstance(ext, dict) else None)
        if not name:
            name = str(key) if external or not project else f"{project}_{key}"
        out[str(key)] = ComposeNetwork(
            key=str(key),
            name=str(name),
            driver=str(spec.get("driver") or "bridge"),
            internal=bool(spec.get("internal", False)),
            external=external,
        )
    return out


def parse_service(name: str, spec: Any, origin: str) -> ComposeService:
    """One entry of ``services:``."""
    where = f"services.{name}"
    if not isinstance(spec, dict):
        raise ComposeFileError(origin, f"{where}: expected a mapping, got {type(spec).__name__}")
    profiles = spec.get("profiles") or []
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        raise ComposeFileError(origin, f"{where}.profiles: expected a list of names")
    mode = str(spec.get("network_mode") or "")
    networks = [] if mode else _service_networks(spec.get("networks"), where, origin)
    ports_spec = spec.get("ports") or []
    if not isinstance(ports_spec, list):
        raise ComposeFileError(origin, f"{where}.ports: expected a list")
    ports = [
        p
        for i, item in enumerate(ports_spec)
        for p in parse_port(item, f"{where}.ports[{i}]", origin)
    ]
    return ComposeService(
        name=name,
        container_name=str(spec.get("container_name") or ""),
        image=str(spec.get("image") or ""),
        networks=networks,
        ports=ports,
        profiles=list(profiles),
        network_mode=mode,
    )


def _service_networks(data: Any, where: str, origin: str) -> list[str]:
    if data is None:
        return ["default"]
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return list(data)
    if isinstance(data, dict):
        return [str(k) for k in data]
    raise ComposeFileError(origin, f"{where}.networks: expected a list of names or a mapping")


def parse_port(item: Any, where: str, origin: str) -> list[ComposePort]:
    """Published ports of one ``ports:`` entry (short or long syntax; none when ephemeral).

    >>> parse_port("127.0.0.1:3010-3011:80-81/tcp", "p", "f")[1]
    ComposePort(host_ip='127.0.0.1', host_port=3011, container_port=81, protocol='tcp')
    >>> parse_port(8080, "p", "f")
    []
    """
    if isinstance(item, bool):
        raise ComposeFileError(origin, f"{where}: bad port spec {item!r}")
    if isinstance(item, int):
        _check_port(item, where, origin)
        return []  # container port only: the engine picks an ephemeral host port
    if isinstance(item, dict):
        return _long_port(item, where, origin)
    if not isinstance(item, str):
        raise ComposeFileError(origin, f"{where}: bad port spec {item!r}")
    m = _PORT.match(item.strip())
    if not m:
        raise ComposeFileError(
            origin, f"{where}: bad port spec {item!r}; expected [[IP:]HOST:]CONTAINER[/PROTOCOL]"
        )
    if not m["host"]:
        return []
    hosts, containers = _range(m["host"], where, origin), _range(m["container"], where, origin)
    if len(hosts) != len(containers):
        raise ComposeFileError(origin, f"{where}: port ranges of different sizes in {item!r}")
    ip = (m["ip"] or "").strip("[]")
    return [
        ComposePort(ip, h, c, m["proto"] or "tcp") for h, c in zip(hosts, containers, strict=True)
    ]


def _long_port(item: Mapping[str, Any], where: str, origin: str) -> list[ComposePort]:
    target = item.get("target")
    if not isinstance(target, int) or isinstance(target, bool):
        raise ComposeFileError(origin, f"{where}.target: expected a port number, got {target!r}")
    _check_port(target, where, origin)
    published = item.get("published")
    if published in (None, ""):
        return []
    try:
        host = int(published)
    except (TypeError, ValueError):
        raise ComposeFileError(origin, f"{where}.published: bad port {published!r}") from None
    _check_port(host, where, origin)
    return [
        ComposePort(
            str(item.get("host_ip") or ""), host, target, str(item.get("protocol") or "tcp")
        )
    ]


def _range(text: str, where: str, origin: str) -> list[int]:
    lo, _, hi = text.partition("-")
    first, last = int(lo), int(hi or lo)
    for p in (first, last):
        _check_port(p, where, origin)
    if last < first or last - first >= MAX_PORT_RANGE:
        raise ComposeFileError(origin, f"{where}: bad port range {text!r}")
    return list(range(first, last + 1))


def _check_port(port: int, where: str, origin: str) -> None:
    if not 1 <= port <= 65535:
        raise ComposeFileError(origin, f"{where}: port {port} is outside 1..65535")
