"""Compose files read the way Compose reads them: by the user's own Compose CLI.

:func:`load_compose_dict` runs ``docker compose config --format json`` (the v2 plugin), or
``docker-compose config`` (v1, which prints YAML), with ``-f`` per file, ``--project-name``,
``--project-directory``, ``--env-file`` and ``--profile`` as argv lists under a timeout, and
returns the project in the Compose spec's shape::

    {"name": ..., "services": {name: {...}}, "networks": {...}, "volumes": {...}, "x-...": ...}

Every service there has ``labels`` and ``environment`` as mappings, ``ports`` in the long
syntax (``target``, ``published`` as a string, ``host_ip``, ``protocol``), ``expose`` as
strings, ``depends_on`` as a mapping of conditions and ``networks`` as a mapping (``default``
when none is named); every network has its engine ``name``. Extension fields (``x-...``) that
a CLI drops (v1 drops the top-level ones) are recovered from the files themselves.
Environment values are redacted (``*_PASSWORD``, ``*_SECRET``, URLs with credentials, see
:mod:`revivadiag.redact`), and each such value is masked wherever else it appears.

Where no Compose CLI is installed, the built-in reader of :mod:`revivadiag.collect.compose_vars`
(interpolation, merging, ``.env`` and ``env_file``) produces the same shape; it does not know
``extends`` or ``include`` and says so. Both paths raise
:class:`~revivadiag.errors.ComposeFileError` naming the file and the problem.

:func:`load_compose` builds a :class:`ComposeModel` from that dict (or from a mapping):

>>> m = load_compose({"services": {"db": {"ports": ["127.0.0.1:5435:5432"]}}}, project="p")
>>> m.services["db"].ports
[ComposePort(host_ip='127.0.0.1', host_port=5435, container_port=5432, protocol='tcp')]
>>> m.services["db"].networks, m.networks["default"].name
(['default'], 'p_default')
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from revivadiag.collect import compose_vars as cv
from revivadiag.errors import ComposeFileError
from revivadiag.redact import Scrubber, is_sensitive_key, redact_env

CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):)?(?P<host>\d+(?:-\d+)?)?:)?"
    r"(?P<container>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)
MAX_PORT_RANGE = 1000
#: Seconds one ``config`` (or ``version``) call of the Compose CLI may take.
COMPOSE_TIMEOUT_S = 30.0
#: What a missing ``${VAR:?}`` becomes when reading leniently (a host port of 0: unpublished).
PLACEHOLDER = "0"
#: Variables of the caller's environment kept when an explicit ``env`` replaces it.
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "XDG_RUNTIME_DIR",
             "XDG_CONFIG_HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
             "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")
#: Variables that would make the CLI read other files or another project than the ones given.
_DROPPED_ENV = ("COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR",
                "COMPOSE_ENV_FILES")
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


# ---------------------------------------------------------------- the model


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
    """What a service declares about its place in the topology and its role."""

    name: str
    container_name: str = ""
    image: str = ""
    networks: list[str] = field(default_factory=list)
    ports: list[ComposePort] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    network_mode: str = ""
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    #: the service's ``x-...`` fields, e.g. ``{"x-revivadiag": {"role": "backend"}}``
    extensions: dict[str, Any] = field(default_factory=dict)
    #: network key -> aliases on it
    aliases: dict[str, list[str]] = field(default_factory=dict)
    #: container ports named under ``expose:``
    expose: list[int] = field(default_factory=list)
    #: service -> condition (service_started, service_healthy, ...)
    depends_on: dict[str, str] = field(default_factory=dict)
    has_healthcheck: bool = False

    @property
    def container_ports(self) -> list[int]:
        """Every container port the file names: ``expose`` and ``ports`` targets."""
        return sorted({*self.expose, *(p.container_port for p in self.ports)})


@dataclass
class ComposeModel:
    """Services and networks of one project, from one or more compose files."""

    project: str
    services: dict[str, ComposeService]
    networks: dict[str, ComposeNetwork]
    origin: str = "<mapping>"
    #: what normalised the files: the Compose CLI's argv[0] and version, or "built-in"
    reader: str = "built-in"


# ---------------------------------------------------------------- the Compose CLI


@dataclass(frozen=True)
class ComposeCli:
    """A Compose command line: ``("docker", "compose")`` or ``("docker-compose",)``."""

    argv: tuple[str, ...]
    version: str

    @property
    def json(self) -> bool:
        """v2 prints ``config --format json``; v1 prints only YAML."""
        return not self.version.startswith("1.")

    def __str__(self) -> str:
        """``docker compose 2.24.6`` or ``docker-compose 1.29.2``."""
        return " ".join([Path(self.argv[0]).name, *self.argv[1:], self.version])


#: ``runner(argv, env, cwd, timeout_s)``: how commands run (tests inject their own).
Runner = Callable[[Sequence[str], Mapping[str, str], Path, float],
                  "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run argv (never a shell) with no stdin; output captured as text."""
    return subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
        check=False, stdin=subprocess.DEVNULL,
    )


def find_compose_cli(search_path: str | None = None,
                     runner: Runner = run_command) -> ComposeCli | None:
    """The Compose CLI on ``search_path`` (default ``$PATH``): the ``docker compose`` plugin,
    else ``docker-compose``; None when neither answers."""
    env = {**os.environ, **({"PATH": search_path} if search_path is not None else {})}
    candidates: list[tuple[str, ...]] = []
    if docker := shutil.which("docker", path=search_path):
        candidates.append((docker, "compose"))
    if legacy := shutil.which("docker-compose", path=search_path):
        candidates.append((legacy,))
    key = tuple(candidates)
    if runner is run_command and key in _FOUND:
        return _FOUND[key]
    found = _probe(candidates, env, runner)
    if runner is run_command:
        _FOUND[key] = found
    return found


#: executables found -> the CLI they gave (asking a CLI its version costs ~0.5 s)
_FOUND: dict[tuple[tuple[str, ...], ...], ComposeCli | None] = {}


def _probe(candidates: list[tuple[str, ...]], env: Mapping[str, str],
           runner: Runner) -> ComposeCli | None:
    for argv in candidates:
        try:
            proc = runner([*argv, "version", "--short"], env, Path.cwd(), COMPOSE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = proc.stdout.strip().removeprefix("v")
        if proc.returncode == 0 and re.match(r"^\d+\.", version):
            return ComposeCli(argv, version)
    return None


def cli_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The CLI's environment: the caller's (``env`` None) or the basics plus ``env``."""
    base = dict(os.environ) if env is None else {
        k: v for k, v in os.environ.items() if k in _BASE_ENV}
    base.update(env or {})
    for key in _DROPPED_ENV:
        if env is None or key not in env:
            base.pop(key, None)
    return base


def compose_config(
    cli: ComposeCli,
    files: Sequence[Path],
    *,
    project: str,
    project_directory: Path,
    profiles: Iterable[str],
    environ: Mapping[str, str],
    env_file: Path | None = None,
    timeout_s: float = COMPOSE_TIMEOUT_S,
    runner: Runner = run_command,
    scrubber: Scrubber | None = None,
) -> dict[str, Any]:
    """What ``<cli> config`` prints for these files, parsed; ComposeFileError otherwise."""
    argv = [*cli.argv]
    for f in files:
        argv += ["-f", str(f.absolute())]  # the CLI runs in the project directory
    argv += ["--project-name", project, "--project-directory", str(project_directory)]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    for p in profiles:
        argv += ["--profile", p]
    argv += ["config", *(["--format", "json"] if cli.json else [])]
    origin = ",".join(str(f) for f in files)
    scrub = scrubber or Scrubber()
    try:
        proc = runner(argv, environ, project_directory, timeout_s)
    except subprocess.TimeoutExpired:
        raise ComposeFileError(origin, f"{cli} config gave no answer in {timeout_s:g} s") from None
    except OSError as exc:
        raise ComposeFileError(origin, f"cannot run {cli}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        problem = scrub.scrub(cli_problem(proc.stderr or proc.stdout))
        raise ComposeFileError(file_named(problem, files) or origin,
                               f"{cli} rejects it: {problem}")
    try:
        data = json.loads(proc.stdout) if cli.json else yaml.safe_load(proc.stdout)
    except (ValueError, yaml.YAMLError) as exc:
        raise ComposeFileError(origin, f"{cli} config printed something unreadable") from exc
    if not isinstance(data, dict):
        raise ComposeFileError(origin, f"{cli} config printed no project")
    return data


def cli_problem(text: str) -> str:
    """The Compose CLI's complaint on one line, without its generic advice.

    >>> cli_problem("The Compose file './a.yml' is invalid because:\\n'foo' does not match\\n"
    ...             "\\nYou might be seeing this error because ...\\nFor more on ...")
    "The Compose file './a.yml' is invalid because: 'foo' does not match"
    """
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("You might be seeing this error", "For more on the Compose file")):
            break
        if line and not line.lower().startswith("warn"):
            lines.append(line)
    joined = " ".join(lines) or text.strip() or "no error message"
    return joined[:600]


def file_named(message: str, files: Sequence[Path]) -> str:
    """The given file a message names (its path or its name), or ""."""
    for f in files:
        names = (str(f), str(f.absolute()), f"'./{f.name}'", f'"./{f.name}"')
        if any(n in message for n in names):
            return str(f)
    return ""


# ---------------------------------------------------------------- reading


ComposeSource = str | Path | Mapping[str, Any] | Sequence[str | Path]


@dataclass(frozen=True)
class ComposeDocument:
    """A normalised project (:func:`load_compose_dict`) and what read it."""

    data: dict[str, Any]
    origin: str
    #: the Compose CLI and its version, or "built-in"
    reader: str


def load_compose_dict(
    source: ComposeSource,
    *,
    project: str = "",
    profiles: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    env_file: str | Path | None = None,
    project_directory: str | Path | None = None,
    strict: bool = True,
    cli: ComposeCli | bool | None = True,
    runner: Runner = run_command,
    timeout_s: float = COMPOSE_TIMEOUT_S,
) -> dict[str, Any]:
    """The project of compose file(s), normalised to the Compose spec's shape (see above).

    ``env``: the variables to interpolate (default: the process environment) over the
    ``.env`` of the project directory (or ``env_file``). ``profiles``: the active profiles
    (None: every service, whatever its profiles). ``strict=False`` turns a missing required
    variable into ``0`` instead of an error (a host port then counts as unpublished).
    ``cli``: True finds the Compose CLI on ``$PATH``, False/None uses the built-in reader,
    a :class:`ComposeCli` uses that one. A mapping source is always read by the built-in
    reader (there is no file to give a CLI).
    """
    return read_compose(
        source, project=project, profiles=profiles, env=env, env_file=env_file,
        project_directory=project_directory, strict=strict, cli=cli, runner=runner,
        timeout_s=timeout_s).data


def read_compose(
    source: ComposeSource,
    *,
    project: str = "",
    profiles: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    env_file: str | Path | None = None,
    project_directory: str | Path | None = None,
    strict: bool = True,
    cli: ComposeCli | bool | None = True,
    runner: Runner = run_command,
    timeout_s: float = COMPOSE_TIMEOUT_S,
) -> ComposeDocument:
    """:func:`load_compose_dict` with the name of what read the files."""
    if isinstance(source, Mapping):
        files: list[Path] = []
        docs = [dict(source)]
        origin = "<mapping>"
        folder = Path(project_directory) if project_directory is not None else None
    else:
        files = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
        docs = cv.read_files(files)
        origin = ",".join(str(f) for f in files)
        folder = Path(project_directory) if project_directory is not None else (
            files[0].resolve().parent)
    raw = cv.merge_files(docs)
    dotenv_path = Path(env_file) if env_file is not None else (
        folder / ".env" if folder is not None else None)
    dotenv = cv.read_dotenv(dotenv_path) if dotenv_path is not None else {}
    environ = cli_environment(env)
    effective = {**dotenv, **environ}
    if not strict:
        missing = {v: PLACEHOLDER for d in docs for v in cv.required_variables(d)
                   if not effective.get(v)}
        environ.update(missing)
        effective.update(missing)
    name = normalize_project(
        project or _text(raw.get("name"), effective) or effective.get("COMPOSE_PROJECT_NAME", "")
        or (folder.name if folder is not None else ""))
    every_profile = sorted({str(p) for s in _services(raw).values() if isinstance(s, dict)
                            for p in s.get("profiles") or []})
    active = every_profile if profiles is None else list(profiles)
    scrubber = Scrubber(v for k, v in effective.items() if is_sensitive_key(k))
    chosen = find_compose_cli(runner=runner) if cli is True else (cli or None)
    if chosen is not None and files and folder is not None:
        data = compose_config(
            chosen, files, project=name, project_directory=folder, profiles=active,
            environ=environ, env_file=Path(env_file).resolve() if env_file is not None else None,
            timeout_s=timeout_s, runner=runner, scrubber=scrubber)
        reader = str(chosen)
    else:
        data = builtin_config(raw, effective, origin, folder)
        reader = "built-in"
    out = normalize(data, project=name, raw=raw, env=effective, origin=origin)
    if profiles is not None:
        chosen_profiles = set(profiles)
        out["services"] = {
            n: s for n, s in out["services"].items()
            if not s.get("profiles") or chosen_profiles.intersection(s["profiles"])}
    return ComposeDocument(redact_document(out, scrubber), origin, reader)


def load_compose(
    source: ComposeSource,
    *,
    project: str = "",
    profiles: Iterable[str] | None = (),
    env: Mapping[str, str] | None = None,
    env_file: str | Path | None = None,
    project_directory: str | Path | None = None,
    strict: bool = True,
    cli: ComposeCli | bool | None = True,
    runner: Runner = run_command,
    timeout_s: float = COMPOSE_TIMEOUT_S,
) -> ComposeModel:
    """:func:`load_compose_dict` as a :class:`ComposeModel` (default: no profile active)."""
    doc = read_compose(
        source, project=project, profiles=profiles, env=env, env_file=env_file,
        project_directory=project_directory, strict=strict, cli=cli, runner=runner,
        timeout_s=timeout_s)
    return model_from_dict(doc.data, origin=doc.origin, reader=doc.reader)


# ---------------------------------------------------------------- the project that runs


def files_from_labels(labels: Iterable[str | None]) -> tuple[list[Path], Path | None]:
    """(compose files, working directory) named by Compose's labels on the containers (JSON
    label objects, as the ``containers`` frame holds them); ``([], None)`` when none does.

    >>> files_from_labels(['{"com.docker.compose.project.config_files": "a.yml,/b.yml", '
    ...                    '"com.docker.compose.project.working_dir": "/srv/app"}'])
    ([PosixPath('/srv/app/a.yml'), PosixPath('/b.yml')], PosixPath('/srv/app'))
    """
    for text in labels:
        try:
            found = json.loads(text or "{}")
        except (ValueError, TypeError):
            continue
        if not isinstance(found, dict):
            continue
        files = [f for f in str(found.get(CONFIG_FILES_LABEL, "")).split(",") if f]
        if files:
            workdir = str(found.get(WORKING_DIR_LABEL, "") or "")
            base = Path(workdir or ".")
            paths = [p if p.is_absolute() else base / p for p in map(Path, files)]
            return paths, Path(workdir) if workdir else None
    return [], None


def live_facts(snap: Any) -> dict[str, Any]:
    """What :func:`~revivadiag.collect.compose_vars.infer_env` matches a file's templates
    against: container names, published ports and network names of a snapshot."""
    return {
        "container_names": dict(
            zip(snap.containers["service"], snap.containers["name"], strict=True)
        ),
        "ports": [
            (str(r["service"]), int(r["container_port"]), str(r["host_ip"]), int(r["host_port"]))
            for r in snap.ports.dropna(subset=["host_port", "container_port"]).to_dict("records")
        ],
        "networks": list(snap.networks["name"]),
    }


def active_profiles(data: Mapping[str, Any], running: set[str]) -> list[str]:
    """Compose profiles of the services that run (Compose records no profile label).

    >>> active_profiles({"services": {"a": {"profiles": ["dev"]}, "b": {}}}, {"a"})
    ['dev']
    """
    out: set[str] = set()
    for name, spec in _services(data).items():
        if name in running and isinstance(spec, dict):
            out.update(str(p) for p in spec.get("profiles") or [])
    return sorted(out)


def declared_project(snap: Any, files: Sequence[Path] | None = None, *,
                     cli: ComposeCli | bool | None = True) -> ComposeDocument | None:
    """The compose project a snapshot's containers were started from, read as Compose reads
    it: ``files`` (default: those the containers' labels name, in their working directory),
    the variables the project was started with read off the live names and ports
    (:func:`~revivadiag.collect.compose_vars.infer_env`; a required one still unknown, such
    as a password, reads as a placeholder), the profiles of the services that run. None when
    no file is given or named; ComposeFileError when one cannot be read.
    """
    workdir: Path | None = None
    if not files:
        files, workdir = files_from_labels(snap.containers["labels"])
    if not files:
        return None
    raw = cv.merge_files(cv.read_files(files))
    env = cv.infer_env(raw, **live_facts(snap))
    profiles = active_profiles(raw, {str(s) for s in snap.containers["service"]})
    return read_compose(files, project=snap.project, env=env, profiles=profiles, strict=False,
                        project_directory=workdir, cli=cli)


def normalize_project(name: str) -> str:
    """Compose's project name rule: lowercase, only [a-z0-9_-].

    >>> normalize_project("My App")
    'myapp'
    """
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _services(data: Mapping[str, Any]) -> dict[str, Any]:
    services = data.get("services")
    return services if isinstance(services, dict) else {}


def _text(value: Any, env: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return cv.interpolate_text(value, env, "")
    except ComposeFileError:
        return ""


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
    for name, spec in _services(data).items():
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
    raw_services = _services(raw)
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
    containers = _range(m["container"], where, origin)
    proto, ip = m["proto"] or "tcp", (m["ip"] or "").strip("[]")
    if not m["host"]:
        return [{"target": c, "published": "", "host_ip": ip, "protocol": proto}
                for c in containers]
    hosts = _range(m["host"], where, origin, allow_zero=True)
    if len(hosts) != len(containers):
        raise ComposeFileError(origin, f"{where}: port ranges of different sizes in {item!r}")
    return [{"target": c, "published": str(h), "host_ip": ip, "protocol": proto}
            for h, c in zip(hosts, containers, strict=True)]


def parse_port(item: Any, where: str, origin: str) -> list[ComposePort]:
    """Published ports of one ``ports:`` entry (short or long syntax; none when ephemeral).

    >>> parse_port("127.0.0.1:3010-3011:80-81/tcp", "p", "f")[1]
    ComposePort(host_ip='127.0.0.1', host_port=3011, container_port=81, protocol='tcp')
    >>> parse_port(8080, "p", "f"), parse_port("127.0.0.1:0:80", "p", "f")
    ([], [])
    """
    out = []
    for p in long_ports(item, where, origin):
        host = int(str(p["published"]).split("-")[0] or 0)
        if host:
            out.append(ComposePort(p["host_ip"], host, p["target"], p["protocol"]))
    return out


def _range(text: str, where: str, origin: str, *, allow_zero: bool = False) -> list[int]:
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


def _ports_of(spec: Iterable[Any], where: str, origin: str) -> list[int]:
    out: list[int] = []
    for item in spec:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/\w+)?", str(item).strip())
        if not m:
            raise ComposeFileError(origin, f"{where}: bad port {item!r}")
        out += _range(m[1] + (f"-{m[2]}" if m[2] else ""), where, origin)
    return out


# ---------------------------------------------------------------- secrets


def redact_document(data: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """Environment values redacted by key (and URL credentials), and every secret value
    (those and the ones already in ``scrubber``) masked in every other string.

    >>> doc = {"services": {"a": {"environment": {"DB_PASSWORD": "hunter22", "U": "x"},
    ...                           "command": ["run", "--pw=hunter22"]}}}
    >>> redact_document(doc, Scrubber())["services"]["a"]
    {'environment': {'DB_PASSWORD': '***', 'U': 'x'}, 'command': ['run', '--pw=***']}
    """
    for spec in _services(data).values():
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


# ---------------------------------------------------------------- the model from the dict


def model_from_dict(data: Mapping[str, Any], *, origin: str = "<mapping>",
                    reader: str = "built-in") -> ComposeModel:
    """A :class:`ComposeModel` of a normalised project (see :func:`load_compose_dict`)."""
    project = str(data.get("name") or "")
    networks = {
        key: ComposeNetwork(
            key=key, name=str(spec.get("name") or key),
            driver=str(spec.get("driver") or "bridge"),
            internal=bool(spec.get("internal", False)), external=bool(spec.get("external")))
        for key, spec in (data.get("networks") or {}).items()
    }
    model = ComposeModel(project=project, services={}, networks=networks, origin=origin,
                         reader=reader)
    for name, spec in (data.get("services") or {}).items():
        where = f"services.{name}"
        nets = spec.get("networks") or {}
        health = spec.get("healthcheck") or {}
        test = health.get("test") if isinstance(health, dict) else None
        disabled = isinstance(health, dict) and (
            health.get("disable") is True or test in (["NONE"], "NONE"))
        model.services[name] = ComposeService(
            name=name,
            container_name=str(spec.get("container_name") or ""),
            image=str(spec.get("image") or ""),
            networks=sorted(nets),
            ports=[p for i, item in enumerate(spec.get("ports") or [])
                   for p in parse_port(item, f"{where}.ports[{i}]", origin)],
            profiles=list(spec.get("profiles") or []),
            network_mode=str(spec.get("network_mode") or ""),
            command=_argv(spec.get("command")),
            entrypoint=_argv(spec.get("entrypoint")),
            labels=dict(spec.get("labels") or {}),
            extensions={k: v for k, v in spec.items() if str(k).startswith("x-")},
            aliases={k: [str(a) for a in (v or {}).get("aliases") or []] for k, v in nets.items()},
            expose=_ports_of(spec.get("expose") or [], f"{where}.expose", origin),
            depends_on={s: str((c or {}).get("condition") or "service_started")
                        for s, c in (spec.get("depends_on") or {}).items()},
            has_healthcheck=bool(health) and not disabled,
        )
    return model


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return value.split()
    return [str(v) for v in value]
