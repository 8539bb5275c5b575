"""A migration plan: the YAML file, its schema, and the checks made before anything runs.

The file (schema version 1; ``MIGRATE.md`` of issue 8 has the full example)::

    revivadiag_plan: 1
    name: lab-current-to-target
    project: rdlab                      # the Compose project (label com.docker.compose.project)
    fingerprint: "sha256:..."           # ProjectState.fingerprint() when planned; null: a template
    planned_at: "2026-11-30T12:00:00Z"
    source: {compose_files: [current.yml]}                 # optional
    target: {compose_files: [target.yml], project_directory: ., env_files: []}
    mode: blue-green                    # or in-place
    prober: {...}                       # optional (read by the prober)
    steps:
      - {id: readiness, kind: readiness}
      - {id: replace-database, kind: service.replace, service: database,
         from: rdlab_new_database, to: rdlab_database, stateful: true}
    fingerprint_parts: {"container rdlab_new_database": "3f0c...", ...}   # optional

``fingerprint_parts`` (:meth:`~revivadiag.migrate.state.ProjectState.fingerprint_parts`)
is what lets a stale plan say *what* changed. Paths in ``target``/``source`` and a ``sql``
step's ``file`` are relative to the plan file's directory (or absolute). Comments in the
file are for people; :func:`dump_plan` writes a plan's ``comments`` above its steps.

- :func:`load_plan` / :func:`parse_plan`: the schema; every problem is a
  :class:`~revivadiag.errors.PlanError` naming the file, the step and the key
  (an unknown kind: ``UnknownStepKindError``; a repeated id: ``DuplicateStepIdError``).
- :func:`validate_plan`: the live checks (unknown project, container or service, a target
  name already taken, duplicate targets, a missing volume, an unhealthy service), each a
  typed ``PlanError``. It only reads the engine: nothing changes.
- :func:`check_fresh`: ``StalePlanError`` when the live fingerprint differs from the plan's.

>>> plan = parse_plan({"revivadiag_plan": 1, "name": "n", "project": "p",
...     "target": {"compose_files": ["t.yml"]},
...     "steps": [{"id": "r", "kind": "readiness"}, {"id": "v", "kind": "verify"}]})
>>> [s.kind for s in plan.steps], plan.mode
(['readiness', 'verify'], 'blue-green')
>>> parse_plan({**plan.to_dict(), "steps": [{"id": "x", "kind": "teleport"}]}, "p.yml")
Traceback (most recent call last):
...
revivadiag.errors.UnknownStepKindError: plan p.yml, step 'x', key 'kind': unknown step kind \
'teleport'; known: readiness, service.replace, network.create, network.connect, \
network.disconnect, network.remove, config.env, proxy.reload, sql, verify, cleanup
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from revivadiag.errors import (
    DuplicateStepIdError,
    DuplicateTargetError,
    MissingVolumeError,
    PlanError,
    StalePlanError,
    TargetNameTakenError,
    UnhealthyServiceError,
    UnknownContainerError,
    UnknownProjectError,
    UnknownServiceError,
    UnknownStepKindError,
)
from revivadiag.migrate.model import Mode, StepSpec
from revivadiag.migrate.state import ProjectState, capture_state, diff_parts

SCHEMA_VERSION = 1

# A parameter's type: "str", "bool", "strs" (list of str), "env" (mapping str -> scalar)
_S, _B, _L, _E = "str", "bool", "strs", "env"
#: kind -> (required params, optional params), each name -> type
KIND_PARAMS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "readiness": ({}, {}),
    "service.replace": ({"service": _S, "from": _S, "to": _S},
                        {"stateful": _B, "volumes": _L}),
    "network.create": ({"network": _S, "compose_key": _S}, {"driver": _S, "internal": _B}),
    "network.connect": ({"container": _S, "network": _S}, {"aliases": _L}),
    "network.disconnect": ({"container": _S, "network": _S}, {}),
    "network.remove": ({"network": _S}, {}),
    "config.env": ({"service": _S}, {"set": _E, "unset": _L}),
    "proxy.reload": ({"service": _S}, {}),
    "sql": ({"file": _S}, {"service": _S}),
    "verify": ({}, {}),
    "cleanup": ({}, {}),
}
KINDS = tuple(KIND_PARAMS)
TOP_KEYS = ("revivadiag_plan", "name", "project", "fingerprint", "planned_at", "source",
            "target", "mode", "prober", "steps", "fingerprint_parts")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class Files:
    """Compose files (relative to the plan's directory, or absolute) and how to read them."""

    compose_files: list[str]
    project_directory: str | None = None
    env_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"compose_files": list(self.compose_files)}
        if self.project_directory is not None:
            out["project_directory"] = self.project_directory
        if self.env_files:
            out["env_files"] = list(self.env_files)
        return out


@dataclass
class Plan:
    """One migration plan (see the module doc for the file)."""

    name: str
    project: str
    target: Files
    steps: list[StepSpec]
    fingerprint: str | None = None
    planned_at: str | None = None
    source: Files | None = None
    mode: str = Mode.BLUE_GREEN.value
    prober: dict[str, Any] | None = None
    fingerprint_parts: dict[str, str] = field(default_factory=dict)
    #: where it was read from (relative paths resolve against its directory)
    path: Path | None = None
    #: step id -> comment lines written above the step (``""``: above ``steps:``)
    comments: dict[str, list[str]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the plan are taken from."""
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve(self, name: str) -> Path:
        """A path named in the plan, made absolute."""
        p = Path(name)
        return Path(os.path.normpath(p if p.is_absolute() else (self.base_dir / p).absolute()))

    def target_files(self) -> list[Path]:
        """The target's compose files, absolute."""
        return [self.resolve(f) for f in self.target.compose_files]

    def target_directory(self) -> Path:
        """The target's project directory (default: the first file's directory)."""
        if self.target.project_directory is not None:
            return self.resolve(self.target.project_directory)
        return self.target_files()[0].parent

    def step(self, step_id: str) -> StepSpec:
        """The step with that id (KeyError otherwise)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_dict(self) -> dict[str, Any]:
        """The file's mapping (what :func:`parse_plan` reads back)."""
        out: dict[str, Any] = {
            "revivadiag_plan": SCHEMA_VERSION, "name": self.name, "project": self.project,
            "fingerprint": self.fingerprint, "planned_at": self.planned_at}
        if self.source is not None:
            out["source"] = self.source.to_dict()
        out["target"] = self.target.to_dict()
        out["mode"] = self.mode
        if self.prober is not None:
            out["prober"] = self.prober
        out["steps"] = [{"id": s.id, "kind": s.kind, **dict(s.params)} for s in self.steps]
        if self.fingerprint_parts:
            out["fingerprint_parts"] = dict(self.fingerprint_parts)
        return out


# ---------------------------------------------------------------- schema


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan file (schema only; :func:`validate_plan` checks the engine)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(str(p), f"cannot read it: {exc.strerror or exc}") from exc
    return loads_plan(text, p)


def loads_plan(text: str, path: str | Path = "<text>") -> Plan:
    """A plan from YAML text (``path``: where it came from, for messages and relative paths)."""
    where = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise PlanError(where, f"not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
    plan = parse_plan(data, where)
    plan.path = None if where == "<text>" else Path(path)
    return plan


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
          what: str, step: str = "") -> Any:
    if key not in data:
        raise PlanError(where, f"missing {what}", step=step, key=key)
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PlanError(where, f"{what} must be {_type_name(kind)}, not {_shown(value)}",
                        step=step, key=key)
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _shown(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _strings(value: Any, where: str, key: str, step: str = "", empty_ok: bool = True
             ) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PlanError(where, f"must be a list of non-empty strings, not {_shown(value)}",
                        step=step, key=key)
    if not empty_ok and not value:
        raise PlanError(where, "must name at least one", step=step, key=key)
    return list(value)


def _files(data: Any, where: str, key: str) -> Files:
    if not isinstance(data, dict):
        raise PlanError(where, f"must be a mapping, not {_shown(data)}", key=key)
    extra = sorted(set(data) - {"compose_files", "project_directory", "env_files"})
    if extra:
        raise PlanError(where, f"unknown key {extra[0]!r} (known: compose_files, "
                               "project_directory, env_files)", key=f"{key}.{extra[0]}")
    if "compose_files" not in data:
        raise PlanError(where, "missing the compose files", key=f"{key}.compose_files")
    files = _strings(data["compose_files"], where, f"{key}.compose_files", empty_ok=False)
    directory = data.get("project_directory")
    if directory is not None and not (isinstance(directory, str) and directory):
        raise PlanError(where, f"must be a path, not {_shown(directory)}",
                        key=f"{key}.project_directory")
    env_files = _strings(data.get("env_files") or [], where, f"{key}.env_files")
    return Files(files, directory, env_files)


def _param(value: Any, kind: str, where: str, step: str, key: str) -> Any:
    if kind == _S:
        if not isinstance(value, str) or not value.strip():
            raise PlanError(where, f"must be a non-empty string, not {_shown(value)}",
                            step=step, key=key)
    elif kind == _B:
        if not isinstance(value, bool):
            raise PlanError(where, f"must be true or false, not {_shown(value)}",
                            step=step, key=key)
    elif kind == _L:
        _strings(value, where, key, step)
    elif kind == _E and (not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, (str, int, float, bool))
            for k, v in value.items())):
        raise PlanError(where, "must map variable names to values, not "
                        f"{_shown(value)}", step=step, key=key)
    return value


def parse_step(data: Any, where: str, index: int) -> StepSpec:
    """One step of ``steps:`` checked against :data:`KIND_PARAMS`."""
    label = f"#{index + 1}"
    if not isinstance(data, dict):
        raise PlanError(where, f"a step must be a mapping, not {_shown(data)}", step=label)
    step_id = data.get("id")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        raise PlanError(where, "each step needs an id of letters, digits, '_', '.', '-' "
                        f"(at most 64), not {_shown(step_id)}", step=label, key="id")
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise PlanError(where, f"each step needs a kind, not {_shown(kind)}", step=step_id,
                        key="kind")
    if kind not in KIND_PARAMS:
        raise UnknownStepKindError(where, f"unknown step kind {kind!r}; known: "
                                   f"{', '.join(KINDS)}", step=step_id, key="kind")
    required, optional = KIND_PARAMS[kind]
    params = {k: v for k, v in data.items() if k not in ("id", "kind")}
    for key in required:
        if key not in params:
            raise PlanError(where, f"a {kind} step needs {key!r}", step=step_id, key=key)
    for key, value in params.items():
        if key not in required and key not in optional:
            known = ", ".join([*required, *optional]) or "none"
            raise PlanError(where, f"unknown parameter for {kind} (its parameters: {known})",
                            step=step_id, key=key)
        _param(value, {**required, **optional}[key], where, step_id, key)
    if kind == "config.env" and not (params.get("set") or params.get("unset")):
        raise PlanError(where, "a config.env step needs 'set' or 'unset'", step=step_id,
                        key="set")
    return StepSpec(id=step_id, kind=kind, params=params)


def parse_plan(data: Any, where: str = "<plan>") -> Plan:
    """A :class:`Plan` from the file's mapping; PlanError (or a subclass) naming the problem."""
    if not isinstance(data, dict):
        raise PlanError(where, f"a plan is a mapping of keys, not {_shown(data)}")
    extra = sorted(set(data) - set(TOP_KEYS))
    if extra:
        raise PlanError(where, f"unknown key (known: {', '.join(TOP_KEYS)})", key=extra[0])
    version = _need(data, "revivadiag_plan", int, where, "the schema version")
    if version != SCHEMA_VERSION:
        raise PlanError(where, f"schema version {version} is not supported (this revivadiag "
                        f"reads {SCHEMA_VERSION})", key="revivadiag_plan")
    name = _need(data, "name", str, where, "the plan's name")
    project = _need(data, "project", str, where, "the compose project")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project):
        raise PlanError(where, f"{project!r} is not a Compose project name (lowercase letters, "
                        "digits, '_' and '-')", key="project")
    fingerprint = data.get("fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str)
                                        and _FINGERPRINT.match(fingerprint)):
        raise PlanError(where, "must be 'sha256:' and 64 hex digits, or null (a template "
                        f"not yet planned against a project), not {_shown(fingerprint)}",
                        key="fingerprint")
    planned_at = data.get("planned_at")
    if planned_at is not None and not isinstance(planned_at, str):
        planned_at = str(planned_at)  # YAML may read an unquoted timestamp as a datetime
    source = _files(data["source"], where, "source") if data.get("source") is not None else None
    if "target" not in data:
        raise PlanError(where, "missing the target (its compose files)", key="target")
    target = _files(data["target"], where, "target")
    mode = data.get("mode", Mode.BLUE_GREEN.value)
    if mode not in {m.value for m in Mode}:
        raise PlanError(where, f"unknown mode {mode!r}; known: "
                        f"{', '.join(m.value for m in Mode)}", key="mode")
    prober = data.get("prober")
    if prober is not None and not isinstance(prober, dict):
        raise PlanError(where, f"must be a mapping, not {_shown(prober)}", key="prober")
    raw_steps = _need(data, "steps", list, where, "the steps")
    if not raw_steps:
        raise PlanError(where, "a plan needs at least one step", key="steps")
    steps: list[StepSpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_steps):
        spec = parse_step(raw, where, i)
        if spec.id in seen:
            raise DuplicateStepIdError(where, f"id used by steps #{seen[spec.id] + 1} and "
                                       f"#{i + 1}", step=spec.id, key="id")
        seen[spec.id] = i
        steps.append(spec)
    parts = data.get("fingerprint_parts") or {}
    if not isinstance(parts, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in parts.items()):
        raise PlanError(where, "must map objects to hashes", key="fingerprint_parts")
    return Plan(name=name, project=project, target=target, steps=steps,
                fingerprint=fingerprint, planned_at=planned_at, source=source, mode=mode,
                prober=prober, fingerprint_parts=dict(parts))


# ---------------------------------------------------------------- writing


def _flow(value: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(value), default_flow_style=True, sort_keys=False,
                          width=10_000).strip()


def dump_plan(plan: Plan) -> str:
    """The plan as YAML, one line per step, ``plan.comments`` written above the steps
    (``loads_plan(dump_plan(p))`` gives ``p`` back, comments aside)."""
    data = plan.to_dict()
    steps = data.pop("steps")
    parts = data.pop("fingerprint_parts", None)
    out = [f"# {line}".rstrip() for line in plan.comments.get("", [])]
    out.append(yaml.safe_dump(data, sort_keys=False, width=100).rstrip())
    out.append("steps:")
    for step in steps:
        for line in plan.comments.get(step["id"], []):
            out.append(f"  # {line}".rstrip())
        out.append(f"  - {_flow(step)}")
    if parts:
        out.append("# what the fingerprint covers, per object (a stale plan names what changed)")
        out.append(yaml.safe_dump({"fingerprint_parts": parts}, sort_keys=False).rstrip())
    return "\n".join(out) + "\n"


def write_plan(plan: Plan, path: str | Path) -> Path:
    """Write :func:`dump_plan` to ``path`` (PlanError when it cannot be written)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(dump_plan(plan), encoding="utf-8")
    except OSError as exc:
        raise PlanError(str(p), f"cannot write it: {exc.strerror or exc}") from exc
    return p


# ---------------------------------------------------------------- live checks


def _where(plan: Plan) -> str:
    return str(plan.path) if plan.path is not None else f"<plan {plan.name}>"


def check_targets(plan: Plan) -> None:
    """DuplicateTargetError when two steps create the same container or network name."""
    made: dict[str, str] = {}
    for s in plan.steps:
        name = s.params.get("to") if s.kind == "service.replace" else (
            s.params.get("network") if s.kind == "network.create" else None)
        if name is None:
            continue
        if name in made:
            raise DuplicateTargetError(_where(plan), f"{name!r} is created by steps "
                                       f"{made[name]!r} and {s.id!r}", step=s.id,
                                       key="to" if s.kind == "service.replace" else "network")
        made[str(name)] = s.id
    replaced: dict[str, str] = {}
    for s in plan.steps:
        if s.kind == "service.replace":
            svc = str(s.params["service"])
            if svc in replaced:
                raise DuplicateTargetError(_where(plan), f"service {svc!r} is replaced by "
                                           f"steps {replaced[svc]!r} and {s.id!r}", step=s.id,
                                           key="service")
            replaced[svc] = s.id


def validate_plan(plan: Plan, client: Any, state: ProjectState | None = None) -> ProjectState:
    """Check the plan against the running project; raise the first problem found as a typed
    :class:`~revivadiag.errors.PlanError`. Only reads the engine. Returns the state it
    checked against (``state``: one captured already)."""
    where = _where(plan)
    check_targets(plan)
    live = state if state is not None else capture_state(client, plan.project)
    if not live.containers:
        raise UnknownProjectError(where, f"no container carries the compose project label "
                                  f"{plan.project!r}", key="project")
    services = set(live.services())
    replaced = {str(s.params["from"]) for s in plan.steps if s.kind == "service.replace"}
    creates = {str(s.params["to"]): str(s.params["service"]) for s in plan.steps
               if s.kind == "service.replace"}
    created_nets = {str(s.params["network"]) for s in plan.steps if s.kind == "network.create"}
    for s in plan.steps:
        p = s.params
        if s.kind == "service.replace":
            _check_replace(where, s, live, services, replaced, client)
        elif s.kind == "network.create":
            _check_network_create(where, s, live, client)
        elif s.kind in ("network.connect", "network.disconnect"):
            name = str(p["container"])
            if live.container(name) is None and name not in creates:
                raise UnknownContainerError(where, f"no container {name!r} in project "
                                            f"{plan.project!r} (nor made by the plan)",
                                            step=s.id, key="container")
            net = str(p["network"])
            if net not in created_nets and not _network_exists(client, net):
                raise PlanError(where, f"no network {net!r} (nor made by the plan)",
                                step=s.id, key="network")
        elif s.kind in ("config.env", "proxy.reload") or (s.kind == "sql" and "service" in p):
            svc = str(p["service"])
            if svc not in services:
                raise UnknownServiceError(where, f"project {plan.project!r} has no service "
                                          f"{svc!r}; its services: {', '.join(sorted(services))}",
                                          step=s.id, key="service")
        if s.kind == "sql" and not plan.resolve(str(p["file"])).is_file():
            raise PlanError(where, f"no SQL file {plan.resolve(str(p['file']))}", step=s.id,
                            key="file")
    _check_health(where, live)
    return live


def _check_replace(where: str, s: StepSpec, live: ProjectState, services: set[str],
                   replaced: set[str], client: Any) -> None:
    p = s.params
    svc, old, new = str(p["service"]), str(p["from"]), str(p["to"])
    if svc not in services:
        raise UnknownServiceError(where, f"project {live.project!r} has no service {svc!r}; "
                                  f"its services: {', '.join(sorted(services))}", step=s.id,
                                  key="service")
    source = live.container(old)
    done = live.container(new)
    if source is None and not (done is not None and done.service == svc):
        names = ", ".join(c.name for c in live.of_service(svc))
        raise UnknownContainerError(where, f"no container {old!r} in project {live.project!r} "
                                    f"(service {svc!r} runs {names})", step=s.id, key="from")
    if source is not None and source.service != svc:
        raise UnknownContainerError(where, f"{old!r} is a container of service "
                                    f"{source.service!r}, not {svc!r}", step=s.id, key="from")
    if new != old and new not in replaced:
        holder = _container_named(client, new)
        if holder is not None and not (holder.get("project") == live.project
                                       and holder.get("service") == svc and source is None):
            owner = (f"service {holder['service']!r} of project {holder['project']!r}"
                     if holder.get("project") else "no compose project")
            raise TargetNameTakenError(where, f"a container named {new!r} exists already "
                                       f"({owner}) and the plan does not replace it",
                                       step=s.id, key="to")
    for vol in p.get("volumes") or []:
        if not _volume_exists(client, str(vol)):
            raise MissingVolumeError(where, f"volume {vol!r}, which service {svc!r} keeps, does "
                                     "not exist on the engine", step=s.id, key="volumes")
    if source is not None:
        for vol in source.volumes:
            if not _volume_exists(client, vol):
                raise MissingVolumeError(where, f"volume {vol!r} mounted by {old!r} does not "
                                         "exist on the engine", step=s.id, key="from")


def _check_network_create(where: str, s: StepSpec, live: ProjectState, client: Any) -> None:
    name = str(s.params["network"])
    found = _network_labels(client, name)
    if found is None:
        return
    if found.get("com.docker.compose.project") == live.project:
        return  # made by an earlier run of this plan, or by Compose for this project
    raise TargetNameTakenError(where, f"a network named {name!r} exists already and does not "
                               f"belong to project {live.project!r}", step=s.id, key="network")


def _check_health(where: str, live: ProjectState) -> None:
    bad = []
    for c in live.containers:
        if c.status != "running":
            bad.append(f"{c.service} ({c.name}) is {c.status}")
        elif c.has_healthcheck and c.health != "healthy":
            bad.append(f"{c.service} ({c.name}) is {c.health}")
    if bad:
        raise UnhealthyServiceError(where, "every service must be healthy (running, without a "
                                    "healthcheck) before a migration: " + "; ".join(bad))


def _container_named(client: Any, name: str) -> dict[str, str] | None:
    import docker.errors

    try:
        attrs = client.api.inspect_container(name)
    except docker.errors.NotFound:
        return None
    if str(attrs.get("Name", "")).lstrip("/") != name:
        return None  # inspect also matches an id prefix
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return {"project": str(labels.get("com.docker.compose.project", "")),
            "service": str(labels.get("com.docker.compose.service", ""))}


def _network_labels(client: Any, name: str) -> dict[str, str] | None:
    for net in client.api.networks(names=[name]):
        if net.get("Name") == name:
            return {str(k): str(v) for k, v in (net.get("Labels") or {}).items()}
    return None


def _network_exists(client: Any, name: str) -> bool:
    return _network_labels(client, name) is not None


def _volume_exists(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_volume(name)
    except docker.errors.NotFound:
        return False
    return True


def check_fresh(plan: Plan, client: Any, state: ProjectState | None = None) -> ProjectState:
    """StalePlanError when the live fingerprint is not the plan's (saying what changed, from
    ``fingerprint_parts``); a plan without a fingerprint (a template) is refused too.
    Returns the live state."""
    where = _where(plan)
    live = state if state is not None else capture_state(client, plan.project)
    again = (f"re-plan it: revivadiag migrate plan --project {plan.project} --target "
             f"{' '.join(plan.target.compose_files)}")
    if plan.fingerprint is None:
        raise StalePlanError(where, "the plan has no fingerprint (a template, never planned "
                             f"against project {plan.project!r}); {again}")
    now = live.fingerprint()
    if now == plan.fingerprint:
        return live
    changes = diff_parts(plan.fingerprint_parts, live.fingerprint_parts()) \
        if plan.fingerprint_parts else []
    what = "; ".join(changes[:8]) + (f" (+{len(changes) - 8} more)" if len(changes) > 8 else "")
    raise StalePlanError(where, f"the project changed since the plan was made "
                         f"({plan.fingerprint[:19]}… then, {now[:19]}… now)"
                         + (f": {what}" if what else "") + f"; {again}", changes)


def step_ids(steps: Sequence[StepSpec]) -> list[str]:
    """The ids of ``steps``, in order."""
    return [s.id for s in steps]
