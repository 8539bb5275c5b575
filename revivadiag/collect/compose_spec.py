"""Compose projects in the one shape this package reads (the Compose spec's, as ``docker
compose config`` prints it): :func:`normalize` turns either reader's output into it,
:func:`builtin_config` is the reader used where no Compose CLI is installed, and
:func:`redact_document` masks secret values.

In the normalised shape every service has ``labels`` and ``environment`` as mappings,
``ports`` in the long syntax (``target``, ``published`` as a string, ``host_ip``,
``protocol``), ``expose`` as strings, ``depends_on`` as a mapping of conditions and
``networks`` as a mapping (``default`` when none is named); every network has its engine
``name``.

>>> long_ports("127.0.0.1:8080:80", "p", "f")
[{'target': 80, 'published': '8080', 'host_ip': '127.0.0.1', 'protocol': 'tcp'}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from revivadiag.collect import compose_vars as cv
from revivadiag.errors import ComposeFileError
from revivadiag.redact import Scrubber, is_sensitive_key, redact_env

_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(?P<host>\d+(?:-\d+)?)?:)?"
    r"(?P<container>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)
#: The longest port range a ``ports:`` entry may name.
MAX_PORT_RANGE = 1000
#: What the Compose spec allows at the top level and in a service (besides ``x-...``).
_TOP_LEVEL = frozenset({"version", "name", "services", "networks", "volumes", "configs",
                        "secrets", "include", "models"})
_SERVICE_KEYS = frozenset({
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus",
    "cpuset", "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules",
    "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "label_file", "labels",
    "links", "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness",
    "memswap_limit", "models", "network_mode", "networks", "oom_kill_disable", "oom_score_adj",
    "pid", "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged",
    "profiles", "provider", "pull_policy", "read_only", "restart", "runtime", "scale",
    "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal",
    "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user",
    "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
})



def services_of(data: Mapping[str, Any]) -> dict[str, Any]:
    services = data.get("services")
    return services if isinstance(services, dict) else {}


# ---------------------------------------------------------------- the built-in reader


def builtin_config(raw: Mapping[str, Any], env: Mapping[str, str], origin: str,
                   folder: Path | None) -> dict[str, Any]:
    """What Compose's ``config`` would print, by the built-in reader: interpolated, checked
    against the spec's keys, ``env_file`` read into ``environment``."""
    for key in raw:
        if key not in _TOP_LEVEL and not str(key).startswith("x-"):
            raise ComposeFileError(origin, f"unknown top-level key {key!r} (not in the Compose "
                                           "spec; extensions start with x-)")
    if "include" in raw:
        raise ComposeFileError(origin, "'include' needs the Compose CLI (none is installed)")
    data: dict[str, Any] = cv.interpolate(raw, env, origin)
    for name, spec in services_of(data).items():
        where = f"services.{name}"
        if not isinstance(spec, dict):
            raise ComposeFileError(origin, f"{where}: expected a mapping, got "
                                           f"{type(spec).__name__}")
        unknown = sorted(k for k in spec if k not in _SERVICE_KEYS and not str(k).startswith("x-"))
        if unknown:
            raise ComposeFileError(origin, f"{where}: unknown key {unknown[0]!r}")
        if "extends" in spec:
            raise ComposeFileError(origin, f"{where}.extends needs the Compose CLI (none is "
                                           "installed)")
        env_files = spec.pop("env_file", None)
        if env_files:
            merged: dict[str, Any] = {}
            for item in env_files if isinstance(env_files, list) else [env_files]:
                path = Path(str(item["path"] if isinstance(item, dict) else item))
                path = path if path.is_absolute() or folder is None else folder / path
                if not path.is_file():
                    if isinstance(item, dict) and item.get("required") is False:
                        continue
                    raise ComposeFileError(origin, f"{where}.env_file: no such file {path}")
                merged.update(cv.read_dotenv(path))
            spec["environment"] = {**merged, **(cv.keyed(spec.get("environment")) or {})}
    return data


# ---------------------------------------------------------------- normalising


def normalize(data: Mapping[str, Any], *, project: str, raw: Mapping[str, Any],
              env: Mapping[str, str], origin: str) -> dict[str, Any]:
    """Either reader's output in the one shape this package reads (see the module doc)."""
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        hint = " (the version 1 format without 'services:' is not supported)" if data else ""
        raise ComposeFileError(origin, f"no 'services:' mapping{hint}")
    out: dict[str, Any] = {"name": project, "services": {}, "networks": {}, "volumes": {}}
    for key, value in data.items():
        if key not in ("version", "name", "services", "networks", "volumes"):
            out[key] = value
    for key, value in raw.items():  # extensions the CLI dropped (v1 drops top-level ones)
        if str(key).startswith("x-") and key not in out:
            out[key] = _interpolated(value, env)
    raw_services = services_of(raw)
    for name, spec in services.items():
        svc = normalize_service(str(name), spec, origin)
        for key, value in (raw_services.get(name) or {}).items():
            if str(key).startswith("x-") and key not in svc:
                svc[key] = _interpolated(value, env)
        out["services"][str(name)] = svc
    out["networks"] = normalize_networks(data.get("networks"), project, origin)
    for name, svc in out["services"].items():
        for key in svc.get("networks") or {}:
            if key in out["networks"]:
                continue
            if key != "default":
                declared = ", ".join(out["networks"]) or "none"
                raise ComposeFileError(
                    origin, f"services.{name}.networks: network {key!r} is not declared under "
                            f"the top-level networks: (declared: {declared})")
            out["networks"]["default"] = {"name": f"{project}_default" if project else "default"}
    volumes = data.get("volumes")
    out["volumes"] = dict(volumes) if isinstance(volumes, dict) else {}
    return out


def _interpolated(value: Any, env: Mapping[str, str]) -> Any:
    try:
        return cv.interpolate(value, env, "")
    except ComposeFileError:
        return value


def normalize_service(name: str, spec: Any, origin: str) -> dict[str, Any]:
    """One service in the normalised shape (labels/environment mappings, long ports, ...)."""
    where = f"services.{name}"
    if not isinstance(spec, dict):
        raise ComposeFileError(origin, f"{where}: expected a mapping, got {type(spec).__name__}")
    out = dict(spec)
    out["labels"] = {str(k): "" if v is None else str(v)
                     for k, v in (cv.keyed(spec.get("labels")) or {}).items()}
    out["environment"] = {str(k): None if v is None else str(v)
                          for k, v in (cv.keyed(spec.get("environment")) or {}).items()}
    profiles = spec.get("profiles") or []
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        raise ComposeFileError(origin, f"{where}.profiles: expected a list of names")
    out["profiles"] = list(profiles)
    ports_spec = spec.get("ports") or []
    if not isinstance(ports_spec, list):
        raise ComposeFileError(origin, f"{where}.ports: expected a list")
    out["ports"] = [p for i, item in enumerate(ports_spec)
                    for p in long_ports(item, f"{where}.ports[{i}]", origin)]
    expose = spec.get("expose") or []
    if not isinstance(expose, list):
        raise ComposeFileError(origin, f"{where}.expose: expected a list")
    out["expose"] = [str(e) for e in expose]
    out["depends_on"] = _depends_on(spec.get("depends_on"), where, origin)
    if spec.get("network_mode"):
        out.pop("networks", None)
    else:
        out["networks"] = _service_networks(spec.get("networks"), where, origin)
    return out


def _depends_on(value: Any, where: str, origin: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(s): {"condition": "service_started"} for s in value}
    if isinstance(value, dict):
        return {str(s): {"condition": "service_started", **(c or {})} for s, c in value.items()}
    raise ComposeFileError(origin, f"{where}.depends_on: expected a list or a mapping")


def _service_networks(data: Any, where: str, origin: str) -> dict[str, Any]:
    if data is None:
        return {"default": None}
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return {n: None for n in data}
    if isinstance(data, dict):
        return {str(k): dict(v) if v else None for k, v in data.items()}
    raise ComposeFileError(origin, f"{where}.networks: expected a list of names or a mapping")


def normalize_networks(data: Any, project: str, origin: str) -> dict[str, dict[str, Any]]:
    """The top-level ``networks:``, each with the ``name`` Compose gives it on the engine."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ComposeFileError(origin, "networks: expected a mapping of network names")
    out: dict[str, dict[str, Any]] = {}
    for key, spec in data.items():
        spec = dict(spec or {})
        if not isinstance(spec, dict):
            raise ComposeFileError(origin, f"networks.{key}: expected a mapping or nothing")
        ext = spec.get("external", False)
        name = spec.get("name") or (ext.get("name") if isinstance(ext, dict) else None)
        if not name:
            name = str(key) if ext or not project else f"{project}_{key}"
        spec["name"] = str(name)
        if isinstance(ext, dict):
            spec["external"] = True
        out[str(key)] = spec
    return out


def long_ports(item: Any, where: str, origin: str) -> list[dict[str, Any]]:
    """One ``ports:`` entry in the long syntax (a short range gives several).

    >>> long_ports("127.0.0.1:8080:80", "p", "f")
    [{'target': 80, 'published': '8080', 'host_ip': '127.0.0.1', 'protocol': 'tcp'}]
    >>> long_ports(9000, "p", "f")
    [{'target': 9000, 'published': '', 'host_ip': '', 'protocol': 'tcp'}]
    """
    if isinstance(item, bool):
        raise ComposeFileError(origin, f"{where}: bad port spec {item!r}")
    if isinstance(item, int):
        _check_port(item, where, origin)
        return [{"target": item, "published": "", "host_ip": "", "protocol": "tcp"}]
    if isinstance(item, dict):
        target = item.get("target")
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        if not isinstance(target, int) or isinstance(target, bool):
            raise ComposeFileError(origin, f"{where}.target: expected a port number, "
                                           f"got {target!r}")
        _check_port(target, where, origin)
        published = item.get("published")
        published = "" if published is None else str(published)
        if published and not re.fullmatch(r"\d+(-\d+)?", published):
            raise ComposeFileError(origin, f"{where}.published: bad port {published!r}")
        ip = item.get("host_ip") or item.get("external_ip") or ""
        return [{**{k: v for k, v in item.items() if k != "external_ip"}, "target": target,
                 "published": published, "host_ip": str(ip),
                 "protocol": str(item.get("protocol") or "tcp")}]
    if not isinstance(item, str):
        raise ComposeFileError(origin, f"{where}: bad port spec {item!r}")
    m = _PORT.match(item.strip())
    if not m:
        raise ComposeFileError(
            origin, f"{where}: bad port spec {item!r}; expected [[IP:]HOST:]CONTAINER[/PROTOCOL]"
        )
    containers = port_range(m["container"], where, origin)
    proto, ip = m["proto"] or "tcp", (m["ip"] or "").strip("[]")
    if not m["host"]:
        return [{"target": c, "published": "", "host_ip": ip, "protocol": proto}
                for c in containers]
    hosts = port_range(m["host"], where, origin, allow_zero=True)
    if len(hosts) != len(containers):
        raise ComposeFileError(origin, f"{where}: port ranges of different sizes in {item!r}")
    return [{"target": c, "published": str(h), "host_ip": ip, "protocol": proto}
            for h, c in zip(hosts, containers, strict=True)]


def port_range(text: str, where: str, origin: str, *, allow_zero: bool = False) -> list[int]:
    lo, _, hi = text.partition("-")
    first, last = int(lo), int(hi or lo)
    if allow_zero and first == last == 0:
        return [0]
    for p in (first, last):
        _check_port(p, where, origin)
    if last < first or last - first >= MAX_PORT_RANGE:
        raise ComposeFileError(origin, f"{where}: bad port range {text!r}")
    return list(range(first, last + 1))


def _check_port(port: int, where: str, origin: str) -> None:
    if not 1 <= port <= 65535:
        raise ComposeFileError(origin, f"{where}: port {port} is outside 1..65535")


# ---------------------------------------------------------------- secrets


def redact_document(data: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """Environment values redacted by key (and URL credentials), and every secret value
    (those and the ones already in ``scrubber``) masked in every other string.

    >>> doc = {"services": {"a": {"environment": {"DB_PASSWORD": "hunter22", "U": "x"},
    ...                           "command": ["run", "--pw=hunter22"]}}}
    >>> redact_document(doc, Scrubber())["services"]["a"]
    {'environment': {'DB_PASSWORD': '***', 'U': 'x'}, 'command': ['run', '--pw=***']}
    """
    for spec in services_of(data).values():
        for key, value in (spec.get("environment") or {}).items():
            if value is not None and is_sensitive_key(str(key)):
                scrubber.add(str(value))
    out: dict[str, Any] = _scrub(data, scrubber)
    return out


def _scrub(data: Any, scrubber: Scrubber) -> Any:
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if key == "environment" and isinstance(value, dict):
                out[key] = {k: v if v is None else scrubber.scrub(redact_env(str(k), str(v))[0])
                            for k, v in value.items()}
            else:
                out[key] = _scrub(value, scrubber)
        return out
    if isinstance(data, list):
        return [_scrub(v, scrubber) for v in data]
    if isinstance(data, str):
        return scrubber.scrub(data)
    return data
