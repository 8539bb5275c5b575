"""Compose files read the way Compose reads them: by the user's own Compose CLI.

:func:`load_compose_dict` runs ``docker compose config --format json`` (the v2 plugin), or
``docker-compose config`` (v1, which prints YAML), with ``-f`` per file, ``--project-name``,
``--project-directory``, ``--env-file`` and ``--profile`` as argv lists under a timeout, and
returns the project in the Compose spec's shape::

    {"name": ..., "services": {name: {...}}, "networks": {...}, "volumes": {...}, "x-...": ...}

normalised as :mod:`revivadiag.collect.compose_spec` describes (labels and environment as
mappings, ports in the long syntax, every network with its engine name). Extension fields
(``x-...``) that a CLI drops (v1 drops the top-level ones) are recovered from the files
themselves. Environment values are redacted (``*_PASSWORD``, ``*_SECRET``, URLs with
credentials, see :mod:`revivadiag.redact`), and each such value is masked wherever else it
appears.

Where no Compose CLI is installed, the built-in reader
(:func:`~revivadiag.collect.compose_spec.builtin_config` with
:mod:`revivadiag.collect.compose_vars`: interpolation, merging, ``.env`` and ``env_file``)
produces the same shape; it does not know ``extends`` or ``include`` and says so. Both
paths raise :class:`~revivadiag.errors.ComposeFileError` naming the file and the problem.

:func:`load_compose` builds a :class:`ComposeModel` from that dict (or from a mapping):

>>> m = load_compose({"services": {"db": {"ports": ["127.0.0.1:5435:5432"]}}}, project="p")
>>> m.services["db"].ports
[ComposePort(host_ip='127.0.0.1', host_port=5435, container_port=5432, protocol='tcp')]
>>> m.services["db"].networks, m.networks["default"].name
(['default'], 'p_default')
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revivadiag.collect import compose_vars as cv
from revivadiag.collect.compose_cli import (
    COMPOSE_TIMEOUT_S,
    ComposeCli,
    Runner,
    cli_environment,
    compose_config,
    find_compose_cli,
    run_command,
)
from revivadiag.collect.compose_spec import (
    builtin_config,
    long_ports,
    normalize,
    port_range,
    redact_document,
    services_of,
)
from revivadiag.errors import ComposeFileError
from revivadiag.redact import Scrubber, is_sensitive_key

CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
#: What a missing ``${VAR:?}`` becomes when reading leniently (a host port of 0: unpublished).
PLACEHOLDER = "0"


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
    every_profile = sorted({str(p) for s in services_of(raw).values() if isinstance(s, dict)
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
    for name, spec in services_of(data).items():
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


def compose_answer(snap: Any, files: Sequence[Path] = ()) -> dict[str, Any] | None:
    """:func:`declared_project`'s normalised dict, or None when there is none: ``files``
    (given by the user) must be readable (ComposeFileError), while files the containers'
    labels name that cannot be read give None. ``snap`` needs ``project`` and the API
    frames only."""
    given = list(files)
    try:
        doc = declared_project(snap, given or None)
    except ComposeFileError:
        if given:
            raise
        return None
    return None if doc is None else dict(doc.data)


def normalize_project(name: str) -> str:
    """Compose's project name rule: lowercase, only [a-z0-9_-].

    >>> normalize_project("My App")
    'myapp'
    """
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _text(value: Any, env: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return cv.interpolate_text(value, env, "")
    except ComposeFileError:
        return ""


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


def _ports_of(spec: Iterable[Any], where: str, origin: str) -> list[int]:
    out: list[int] = []
    for item in spec:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/\w+)?", str(item).strip())
        if not m:
            raise ComposeFileError(origin, f"{where}: bad port {item!r}")
        out += port_range(m[1] + (f"-{m[2]}" if m[2] else ""), where, origin)
    return out


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
