"""The target compose files, read through the user's own Compose CLI, turned into the exact
containers Compose would create: so that after a migration ``docker-compose -p P -f <target
files> up -d`` recreates nothing.

Compose v1 (1.29, checked here) decides "recreate" from one label: a container of the service
whose ``com.docker.compose.config-hash`` differs from the hash of the service's configuration.
Green containers are therefore created through the Engine API with the labels Compose sets
(project, service, container-number, oneoff, version, config-hash from ``config --hash``,
config_files, working_dir), on the target networks with the aliases Compose gives (the
service name plus the declared aliases). Compose v2 compares the same hash label.

The resolved model holds the environment's secrets (Compose substitutes them): it lives in
memory only, in a :class:`Target`, and never reaches a journal, log or frame.

>>> parse_duration("1m30s"), parse_duration("500ms"), parse_duration(2)
(90000000000, 500000000, 2000000000)
>>> parse_port("127.0.0.1:8080:80/tcp")
('80/tcp', {'HostIp': '127.0.0.1', 'HostPort': '8080'})
>>> parse_port({"target": 80, "published": "18080", "host_ip": "127.0.0.1"})
('80/tcp', {'HostIp': '127.0.0.1', 'HostPort': '18080'})
>>> parse_volume("db_data:/var/lib/postgresql/data:rw")
('volume', 'db_data', '/var/lib/postgresql/data', 'rw')
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revivadiag.collect.compose_cli import (
    ComposeCli,
    cli_environment,
    cli_problem,
    compose_config,
    find_compose_cli,
    run_command,
)
from revivadiag.errors import ComposeFileError, StepError
from revivadiag.migrate.model import Context
from revivadiag.migrate.steps.engine import (
    NUMBER_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    STEP_LABEL,
    Spec,
)
from revivadiag.redact import Scrubber

CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
#: service keys that change nothing in the container (or are already resolved by ``config``)
IGNORED_KEYS = frozenset({"depends_on", "profiles", "build", "container_name", "env_file",
                          "scale", "pull_policy", "deploy"})
SUPPORTED_KEYS = frozenset({
    "image", "command", "entrypoint", "environment", "labels", "healthcheck", "restart",
    "logging", "volumes", "ports", "expose", "networks", "working_dir", "user", "hostname",
    "domainname", "stop_signal", "stop_grace_period", "cap_add", "cap_drop", "extra_hosts",
    "tmpfs", "init", "privileged", "read_only", "shm_size", "sysctls", "security_opt", "dns",
    "tty", "stdin_open"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNITS = {"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_duration(value: Any) -> int:
    """A Compose duration (``1m30s``, ``500ms``, or seconds as a number) in nanoseconds."""
    if isinstance(value, int | float):
        return int(value * 1e9)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise StepError("compose target", f"unreadable duration {text!r}")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def parse_port(spec: Any) -> tuple[str, dict[str, str]]:
    """One ``ports`` entry (short or long form) -> (``"80/tcp"``, host binding)."""
    if isinstance(spec, Mapping):
        proto = str(spec.get("protocol") or "tcp")
        return (f"{spec['target']}/{proto}",
                {"HostIp": str(spec.get("host_ip") or ""),
                 "HostPort": str(spec.get("published") or "")})
    text = str(spec)
    text, _, proto = text.partition("/")
    parts = text.rsplit(":", 2)
    container = parts[-1]
    host_port = parts[-2] if len(parts) >= 2 else ""
    host_ip = parts[-3] if len(parts) == 3 else ""
    return f"{container}/{proto or 'tcp'}", {"HostIp": host_ip, "HostPort": host_port}


def parse_volume(spec: Any) -> tuple[str, str, str, str]:
    """One ``volumes`` entry -> (type, source, target, mode)."""
    if isinstance(spec, Mapping):
        kind = str(spec.get("type") or "volume")
        return (kind, str(spec.get("source") or ""), str(spec["target"]),
                "ro" if spec.get("read_only") else "rw")
    parts = str(spec).split(":")
    if len(parts) == 1:
        return "volume", "", parts[0], "rw"
    mode = parts[2] if len(parts) > 2 else "rw"
    kind = "bind" if parts[0].startswith(("/", ".", "~")) else "volume"
    return kind, parts[0], parts[1], mode


def project_name(name: str) -> str:
    """Compose v1's normalisation of a project name."""
    return re.sub(r"[^-_a-z0-9]", "", name.lower())


@dataclass
class Target:
    """The resolved target model (secrets inside: memory only) and each service's hash."""

    project: str
    files: tuple[Path, ...]
    project_directory: Path
    cli: ComposeCli
    model: dict[str, Any] = field(repr=False)
    hashes: dict[str, str] = field(default_factory=dict)

    def service(self, name: str) -> dict[str, Any]:
        services = self.model.get("services") or {}
        if name not in services:
            raise StepError("compose target", f"the target files have no service {name!r} "
                            f"(they have {', '.join(sorted(services))})")
        return dict(services[name])

    def network_name(self, key: str) -> str:
        """The engine's name of the target network ``key``."""
        return self._engine_name("networks", key)

    def volume_name(self, key: str) -> str:
        """The engine's name of the target volume ``key``."""
        return self._engine_name("volumes", key)

    def _engine_name(self, section: str, key: str) -> str:
        spec = (self.model.get(section) or {}).get(key) or {}
        if spec.get("name"):
            return str(spec["name"])
        ext = spec.get("external")
        if ext:
            return str(ext["name"]) if isinstance(ext, Mapping) and ext.get("name") else key
        return f"{project_name(self.project)}_{key}"

    def service_networks(self, name: str) -> dict[str, list[str]]:
        """Engine network name -> aliases Compose gives the service there."""
        svc = self.service(name)
        nets = svc.get("networks") or {"default": None}
        if isinstance(nets, list):
            nets = {n: None for n in nets}
        out = {}
        for key in sorted(nets, key=lambda k: (-int((nets[k] or {}).get("priority") or 0), k)):
            declared = list((nets[key] or {}).get("aliases") or [])
            out[self.network_name(key)] = list(dict.fromkeys([name, *declared]))
        return out

    def compose_labels(self, name: str, number: int) -> dict[str, str]:
        if name not in self.hashes:
            raise StepError("compose target", f"{self.cli} gave no config hash for {name!r}")
        return {
            PROJECT_LABEL: self.project,
            SERVICE_LABEL: name,
            NUMBER_LABEL: str(number),
            "com.docker.compose.oneoff": "False",
            CONFIG_HASH_LABEL: self.hashes[name],
            "com.docker.compose.version": self.cli.version,
            "com.docker.compose.project.config_files": ",".join(str(f) for f in self.files),
            "com.docker.compose.project.working_dir": str(self.project_directory),
        }

    def container_name(self, name: str, number: int = 1) -> str:
        """The name Compose gives the service's container."""
        svc = self.service(name)
        if svc.get("container_name"):
            return str(svc["container_name"])
        sep = "_" if self.cli.version.startswith("1.") else "-"
        return f"{project_name(self.project)}{sep}{name}{sep}{number}"

    def spec(self, name: str, container: str, *, number: int = 1, step_id: str = "") -> Spec:
        """The create spec of the service's container as Compose would make it."""
        svc = self.service(name)
        if svc.get("network_mode"):
            raise StepError(f"service {name}", f"network_mode {svc['network_mode']!r} is not "
                            "supported by a container switch")
        unknown = sorted(k for k in svc if k not in SUPPORTED_KEYS | IGNORED_KEYS
                         and not k.startswith("x-"))
        if unknown:
            raise StepError(f"service {name}", "the switch cannot reproduce these compose keys: "
                            + ", ".join(unknown))
        if not svc.get("image"):
            raise StepError(f"service {name}", "no image: build it first (the switch never "
                            "builds)")
        body: dict[str, Any] = {"Image": str(svc["image"])}
        for key, api_key in (("command", "Cmd"), ("entrypoint", "Entrypoint")):
            if key in svc and svc[key] is not None:
                value = svc[key]
                body[api_key] = shlex.split(value) if isinstance(value, str) else list(value)
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        body["Env"] = [f"{k}={v}" for k, v in env.items() if v is not None]
        labels = svc.get("labels") or {}
        if isinstance(labels, list):
            labels = dict(x.split("=", 1) for x in labels)
        body["Labels"] = {**{str(k): str(v) for k, v in labels.items()},
                          **self.compose_labels(name, number),
                          **({STEP_LABEL: step_id} if step_id else {})}
        if svc.get("healthcheck"):
            body["Healthcheck"] = healthcheck(svc["healthcheck"])
        for key, api_key in (("working_dir", "WorkingDir"), ("user", "User"),
                             ("hostname", "Hostname"), ("domainname", "Domainname"),
                             ("stop_signal", "StopSignal"), ("tty", "Tty"),
                             ("stdin_open", "OpenStdin")):
            if svc.get(key) not in (None, ""):
                body[api_key] = svc[key]
        if svc.get("stop_grace_period") is not None:
            body["StopTimeout"] = parse_duration(svc["stop_grace_period"]) // 1_000_000_000
        host: dict[str, Any] = {}
        exposed: dict[str, dict[str, Any]] = {}
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in svc.get("ports") or []:
            cport, binding = parse_port(port)
            exposed[cport] = {}
            bindings.setdefault(cport, []).append(binding)
        for port in svc.get("expose") or []:
            text = str(port)
            exposed[text if "/" in text else f"{text}/tcp"] = {}
        if exposed:
            body["ExposedPorts"] = exposed
        if bindings:
            host["PortBindings"] = bindings
        binds = []
        for vol in svc.get("volumes") or []:
            kind, source, target, mode = parse_volume(vol)
            if kind == "volume" and source:
                source = self.volume_name(source)
            elif kind == "bind":
                source = str((self.project_directory / source).resolve()) \
                    if not source.startswith("/") else source
            elif kind != "volume":
                raise StepError(f"service {name}", f"volume type {kind!r} is not supported")
            binds.append(f"{source}:{target}:{mode}" if source else target)
        if binds:
            host["Binds"] = binds
        restart = str(svc.get("restart") or "")
        if restart and restart != "no":
            rname, _, count = restart.partition(":")
            host["RestartPolicy"] = {"Name": rname, "MaximumRetryCount": int(count or 0)}
        if svc.get("logging"):
            log = svc["logging"]
            host["LogConfig"] = {"Type": str(log.get("driver") or "json-file"),
                                 "Config": {str(k): str(v) for k, v in
                                            (log.get("options") or {}).items()}}
        for key, api_key in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop"),
                             ("extra_hosts", "ExtraHosts"), ("security_opt", "SecurityOpt"),
                             ("dns", "Dns"), ("init", "Init"), ("privileged", "Privileged"),
                             ("read_only", "ReadonlyRootfs"), ("sysctls", "Sysctls")):
            if svc.get(key) not in (None, "", [], {}):
                host[api_key] = svc[key]
        if svc.get("tmpfs"):
            tmpfs = svc["tmpfs"]
            host["Tmpfs"] = {t: "" for t in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)}
        if svc.get("shm_size"):
            host["ShmSize"] = parse_size(svc["shm_size"])
        body["HostConfig"] = host
        return Spec(container, body, self.service_networks(name))


def healthcheck(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A compose ``healthcheck`` as the Engine API's ``Healthcheck``."""
    if spec.get("disable"):
        return {"Test": ["NONE"]}
    test = spec.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    out: dict[str, Any] = {"Test": list(test or [])}
    for key, api_key in (("interval", "Interval"), ("timeout", "Timeout"),
                         ("start_period", "StartPeriod")):
        if spec.get(key) is not None:
            out[api_key] = parse_duration(spec[key])
    if spec.get("retries") is not None:
        out["Retries"] = int(spec["retries"])
    return out


def parse_size(value: Any) -> int:
    """``64m`` -> bytes.

    >>> parse_size("64m"), parse_size(1024)
    (67108864, 1024)
    """
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)([bkmg]?)b?", str(value).strip().lower())
    if not m:
        raise StepError("compose target", f"unreadable size {value!r}")
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


_CACHE: dict[int, tuple[Context, Target]] = {}


def load_target(ctx: Context) -> Target:
    """The target model of ``ctx`` (its files, project directory and Compose environment),
    read once per context; StepError when the context names no target files."""
    cached = _CACHE.get(id(ctx))
    if cached is not None and cached[0] is ctx:
        return cached[1]
    if not ctx.target_files:
        raise StepError("compose target", "the migration context names no target compose files")
    cli = find_compose_cli()
    if cli is None:
        raise StepError("compose target", "neither `docker compose` nor `docker-compose` is "
                        "installed")
    files = tuple(Path(f).absolute() for f in ctx.target_files)
    directory = (ctx.project_directory or files[0].parent).absolute()
    env = cli_environment(dict(ctx.compose_env))
    scrub = Scrubber(v for v in ctx.compose_env.values() if v)
    model = compose_config(cli, files, project=ctx.project, project_directory=directory,
                           profiles=(), environ=env, scrubber=scrub)
    hashes = config_hashes(cli, files, ctx.project, directory, env, scrub)
    target = Target(ctx.project, files, directory, cli, model, hashes)
    _CACHE[id(ctx)] = (ctx, target)
    return target


def config_hashes(cli: ComposeCli, files: tuple[Path, ...], project: str, directory: Path,
                  env: Mapping[str, str], scrub: Scrubber) -> dict[str, str]:
    """``<cli> config --hash=*``: service -> the config-hash label Compose would set."""
    argv = [*cli.argv]
    for f in files:
        argv += ["-f", str(f)]
    argv += ["--project-name", project, "--project-directory", str(directory),
             "config", "--hash=*"]
    try:
        proc = run_command(argv, env, directory, 60.0)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComposeFileError(str(files[0]), f"{cli} config --hash: {exc}") from exc
    if proc.returncode != 0:
        raise ComposeFileError(str(files[0]),
                               scrub.scrub(cli_problem(proc.stderr or proc.stdout)))
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out
