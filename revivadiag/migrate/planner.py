"""Plans computed from the running project and a target given as compose files.

:func:`make_plan` reads the target the way Compose reads it (the user's own ``docker compose
config`` / ``docker-compose config``, through :mod:`revivadiag.collect.compose`), captures the
live state (:mod:`revivadiag.migrate.state`) and the roles (:mod:`revivadiag.collect.roles`:
learned from the stack, never from the lab's names), and emits:

1. ``readiness`` (every service healthy, the data fingerprinted);
2. ``network.create`` for each target network no container of the project is on yet and the
   engine lacks (external networks must exist: the plan never creates them);
3. ``service.replace`` for every service whose container would not survive
   ``compose up -d`` of the target: another container name, image, environment (keys, and
   values where they are not secret), networks or aliases, volumes, or Compose's own
   config hash. Databases and caches are marked ``stateful: true`` (they cannot run twice on
   one volume: they are stop-started, the backend's retries cover the gap);
4. ``proxy.reload`` after each replaced service the proxy forwards to, when the proxy is not
   that service: a proxy that resolved its upstream once at start would keep the old
   address until it reloads;
5. ``sql`` for each given SQL file, after the last stateful service is in place;
6. ``network.remove`` for each Compose network of the project the target no longer uses;
7. ``verify`` (the diagnose checks and the data fingerprint again) and ``cleanup``.

**Order of the replacements, and why.** Services are replaced in the order the target's
``depends_on`` gives (a service after what it depends on); where it says nothing, databases
and caches first, then the backends, workers and other apps, the proxy last. A green
container is started with the *target* configuration, which names the services it uses by
their target names: those must already answer, so what is depended on goes first. The proxy
goes last because it is the only thing clients reach: while the services behind it move, it
keeps serving on its published port and is pointed at each new backend by a reload; when it
is itself replaced, everything it forwards to already runs in its target form.

:func:`draft_plan` (``revivadiag migrate draft``) writes a plan for a person to review from a
diagnosis instead of from target files: see :mod:`revivadiag.migrate.draft`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors

from revivadiag.collect import compose_vars as cv
from revivadiag.collect.compose import (
    ComposeDocument,
    files_from_labels,
    model_from_dict,
    read_compose,
)
from revivadiag.collect.compose_cli import (
    ComposeCli,
    cli_environment,
    config_hashes,
    find_compose_cli,
)
from revivadiag.collect.containers import parse_containers
from revivadiag.collect.inventory import gather
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.errors import ComposeFileError, PlanError, ProjectNotFound
from revivadiag.migrate.model import Mode, StepSpec
from revivadiag.migrate.plan import Files, Plan
from revivadiag.migrate.state import ContainerState, ProjectState, capture_state
from revivadiag.redact import Scrubber, is_sensitive_key, raw_env, redact_env

#: roles whose data lives in the container's volume: never two at once
STATEFUL_ROLES = ("database", "cache")
#: replacement order where ``depends_on`` says nothing (lower first)
ROLE_RANK = {"database": 0, "cache": 0, "backend": 1, "worker": 1, "other": 1, "proxy": 2}
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")
_STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class ServiceChange:
    """Why one service's container must be replaced (empty ``reasons``: it need not be)."""

    service: str
    role: str
    current: str
    target: str
    stateful: bool
    volumes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading the target


def read_target(
    files: Sequence[str | Path], project: str, *, project_directory: str | Path | None = None,
    compose_env: Mapping[str, str] | None = None, env_files: Sequence[str | Path] = (),
    cli: ComposeCli | bool | None = True,
) -> tuple[ComposeDocument, dict[str, str]]:
    """The target project read by Compose (no profile active), and Compose's config hash of
    each service (empty when no Compose CLI is installed)."""
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise ComposeFileError(str(p), "no such file")
    env = dict(os.environ if compose_env is None else compose_env)
    for ef in env_files:
        if not Path(ef).is_file():
            raise ComposeFileError(str(ef), "no such env file")
        env = {**cv.read_dotenv(Path(ef)), **env}
    directory = Path(project_directory).resolve() if project_directory is not None else \
        paths[0].resolve().parent
    doc = read_compose(paths, project=project, env=env, profiles=(),
                       project_directory=directory, cli=cli)
    chosen = find_compose_cli() if cli is True else (cli or None)
    hashes: dict[str, str] = {}
    if chosen is not None:
        scrubber = Scrubber(v for k, v in env.items() if is_sensitive_key(k))
        hashes = config_hashes(chosen, paths, project=project, project_directory=directory,
                               environ=cli_environment(env), scrubber=scrubber)
    return doc, hashes


def project_roles(client: Any, project: str, compose: Mapping[str, Any] | None) -> Roles:
    """The project's roles from every fact the engine gives (sockets, processes, the
    proxy's routes), or from its API frames alone when those cannot be read."""
    from revivadiag.collect.stack import collect_roles
    from revivadiag.engine.client import describe

    inv = gather(client, project)
    frames = {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
              "endpoints": parse_endpoints(inv.containers, inv.project)}
    try:
        roles, _facts = collect_roles(client, inv, frames, local=describe(client).is_local,
                                      compose=compose)
    except (docker.errors.DockerException, OSError):
        roles = infer_roles(frames["containers"], endpoints=frames["endpoints"],
                            compose=compose)
    return Roles(roles)


# ---------------------------------------------------------------- comparing


def default_name(project: str, service: str, cli: str, number: int = 1) -> str:
    """Compose's own container name: ``p_svc_1`` (v1) or ``p-svc-1`` (v2).

    >>> default_name("shop", "api", "docker-compose 1.29.2")
    'shop_api_1'
    >>> default_name("shop", "api", "docker compose 2.24.6")
    'shop-api-1'

    """
    sep = "_" if cli.startswith("docker-compose 1.") or cli == "built-in" else "-"
    return f"{project}{sep}{service}{sep}{number}"


def _volume_specs(spec: Mapping[str, Any], project: str,
                  declared: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """(type, volume name or bind source, destination) of a normalised service's volumes."""
    out: set[tuple[str, str, str]] = set()
    for item in spec.get("volumes") or []:
        if isinstance(item, Mapping):
            kind = str(item.get("type") or "volume")
            source, target = str(item.get("source") or ""), str(item.get("target") or "")
        else:
            bits = str(item).split(":")
            if len(bits) == 1:
                kind, source, target = "volume", "", bits[0]
            else:
                source, target = bits[0], bits[1]
                kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        if kind == "volume" and source:
            vol = declared.get(source) or {}
            source = str(vol.get("name") or f"{project}_{source}") if isinstance(vol, Mapping) \
                else f"{project}_{source}"
        if kind in ("volume", "bind"):
            out.add((kind, source, target))
    return out


def _env_changes(live_raw: Mapping[str, str], image_env: Mapping[str, str],
                 target: Mapping[str, Any]) -> list[str]:
    """What differs between a container's environment and the target's (secret values are
    compared only as present/absent: neither side shows them)."""
    wanted = {str(k): "" if v is None else str(v) for k, v in target.items()}
    declared_live = {k: v for k, v in live_raw.items()
                     if k in wanted or image_env.get(k) != v}
    added = sorted(set(wanted) - set(declared_live))
    removed = sorted(set(declared_live) - set(wanted))
    changed = sorted(k for k in set(wanted) & set(declared_live)
                     if redact_env(k, declared_live[k])[0] != wanted[k])
    out = []
    if added:
        out.append("environment: sets " + ", ".join(added))
    if removed:
        out.append("environment: drops " + ", ".join(removed))
    if changed:
        out.append("environment: changes " + ", ".join(changed))
    return out


def compare_service(
    service: str, container: ContainerState, inspect: Mapping[str, Any],
    spec: Mapping[str, Any], data: Mapping[str, Any], *, project: str, target_name: str,
    image_id: str | None, image_env: Mapping[str, str], target_hash: str | None,
) -> list[str]:
    """Why ``container`` is not what the target declares for ``service`` (one line each)."""
    reasons: list[str] = []
    if container.name != target_name:
        reasons.append(f"container name {container.name} -> {target_name}")
    ref = str(spec.get("image") or "")
    if image_id is None:
        reasons.append(f"image {ref} is not on the engine (build or pull it first)")
    elif image_id != container.image_id:
        reasons.append(f"image {ref} is another image than the container runs")
    reasons += _env_changes(raw_env(inspect), image_env, spec.get("environment") or {})
    declared_nets = data.get("networks") or {}
    wanted_nets: dict[str, list[str]] = {}
    for key, opts in (spec.get("networks") or {}).items():
        net = declared_nets.get(key) or {}
        name = str(net.get("name") or f"{project}_{key}")
        wanted_nets[name] = [str(a) for a in ((opts or {}).get("aliases") or [])]
    if set(wanted_nets) != set(container.networks):
        reasons.append(f"networks {', '.join(sorted(container.networks)) or 'none'} -> "
                       f"{', '.join(sorted(wanted_nets)) or 'none'}")
    else:
        for net, aliases in sorted(wanted_nets.items()):
            missing = sorted(set(aliases) - set(container.networks[net].aliases))
            if missing:
                reasons.append(f"aliases on {net}: adds {', '.join(missing)}")
    live_vols = {(m.type, m.name or m.source, m.destination) for m in container.mounts
                 if m.type == "bind" or (m.type == "volume" and not _ANONYMOUS.match(m.name))}
    wanted_vols = {w for w in _volume_specs(spec, project, data.get("volumes") or {}) if w[1]}
    if live_vols != wanted_vols:
        reasons.append(f"volumes {_mounts_text(live_vols)} -> {_mounts_text(wanted_vols)}")
    live_hash = container.labels.get(CONFIG_HASH_LABEL)
    if target_hash and live_hash and target_hash != live_hash and not reasons:
        reasons.append("Compose's config hash differs (a setting `up` would recreate it for: "
                       "labels, command, healthcheck, ports, ...)")
    return reasons


def _mounts_text(mounts: set[tuple[str, str, str]]) -> str:
    """``source:destination, ...`` (a bind's source by its file name: paths are the host's).

    >>> _mounts_text({("bind", "/srv/app/nginx/site.conf", "/etc/nginx/conf.d/default.conf")})
    'site.conf:/etc/nginx/conf.d/default.conf'
    """
    return ", ".join(sorted(f"{Path(s).name if k == 'bind' else s}:{d}"
                            for k, s, d in mounts)) or "none"


def _image_facts(client: Any, ref: str) -> tuple[str | None, dict[str, str]]:
    if not ref:
        return None, {}
    try:
        attrs = client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None, {}
    except docker.errors.NotFound:
        return None, {}
    env = dict(str(e).partition("=")[::2] for e in (attrs.get("Config") or {}).get("Env") or [])
    return str(attrs.get("Id") or ""), env


def replacement_order(changes: Sequence[ServiceChange],
                      depends_on: Mapping[str, Sequence[str]]) -> list[ServiceChange]:
    """``changes`` in replacement order: what a service depends on first, then by role rank
    (databases and caches, apps, the proxy), then by name.

    >>> c = [ServiceChange(s, r, s, s, False) for s, r in
    ...      [("web", "proxy"), ("api", "backend"), ("db", "database"), ("job", "worker")]]
    >>> [x.service for x in replacement_order(c, {"api": ["db"], "web": ["api"]})]
    ['db', 'api', 'job', 'web']
    """
    by = {c.service: c for c in changes}
    deps = {c.service: {d for d in depends_on.get(c.service, ()) if d in by} for c in changes}
    done: list[ServiceChange] = []
    left = dict(deps)
    while left:
        ready = [s for s, d in left.items() if not d - {x.service for x in done}]
        if not ready:  # a cycle (Compose refuses those): fall back to the rank
            ready = list(left)
        pick = min(ready, key=lambda s: (ROLE_RANK.get(by[s].role, 1), s))
        done.append(by[pick])
        del left[pick]
    return done


# ---------------------------------------------------------------- the plan


def _rel(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path.resolve())
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return str(path.resolve())


def make_plan(
    client: Any,
    project: str,
    target_files: Sequence[str | Path],
    *,
    project_directory: str | Path | None = None,
    compose_env: Mapping[str, str] | None = None,
    name: str | None = None,
    env_files: Sequence[str | Path] = (),
    sql_files: Sequence[str | Path] = (),
    mode: str = Mode.BLUE_GREEN.value,
    plan_dir: str | Path | None = None,
    cli: ComposeCli | bool | None = True,
) -> Plan:
    """The plan from the running ``project`` to ``target_files`` (see the module doc).

    ``compose_env``: the variables Compose substitutes in the target (default: the process
    environment), over ``env_files``. Secrets among them are used only to read the target;
    the plan keeps none. ``plan_dir``: where the plan will be written (paths in it are made
    relative to it; default: absolute paths). Read-only: nothing on the engine changes.
    """
    state = capture_state(client, project)
    if not state.containers:
        raise ProjectNotFound(project)
    doc, hashes = read_target(target_files, project, project_directory=project_directory,
                              compose_env=compose_env, env_files=env_files, cli=cli)
    data = doc.data
    model = model_from_dict(data, origin=doc.origin, reader=doc.reader)
    roles = project_roles(client, project, data)
    changes = service_changes(client, state, data, roles, hashes, reader=doc.reader)
    base = Path(plan_dir) if plan_dir is not None else None
    steps: list[StepSpec] = [StepSpec("readiness", "readiness")]
    comments: dict[str, list[str]] = {
        "readiness": ["every service healthy; pg_dump, row counts and checksums of every "
                      "table, Redis key count and sampled values (verify compares them)"]}
    live_nets = {n for c in state.containers for n in c.networks}
    used_keys = {k for s in model.services.values() for k in s.networks}
    for key in sorted(used_keys):
        net = model.networks.get(key)
        if net is None:
            continue
        exists = state.network(net.name) is not None or _network_exists(client, net.name)
        if net.external:
            if not exists:
                raise PlanError(doc.origin, f"external network {net.name!r} does not exist; "
                                "create it before planning", key=f"networks.{key}")
            continue
        if net.name in live_nets or exists:
            continue
        params: dict[str, Any] = {"network": net.name, "compose_key": key}
        if net.driver != "bridge":
            params["driver"] = net.driver
        if net.internal:
            params["internal"] = True
        sid = f"create-network-{key}"
        steps.append(StepSpec(sid, "network.create", params))
        users = sorted(s.name for s in model.services.values() if key in s.networks)
        comments[sid] = [f"target network {key} ({', '.join(users)}) does not exist yet"]
    depends = {s: list(svc.depends_on) for s, svc in model.services.items()}
    proxy = roles.service("proxy")
    proxy_targets = set(depends.get(proxy or "", [])) | {
        s for s in roles.as_mapping() if s != proxy and (roles.route(s)
                                                         or roles.role(s) == "backend")}
    ordered = replacement_order([c for c in changes if c.reasons], depends)
    last_stateful = max((i for i, c in enumerate(ordered) if c.stateful), default=-1)
    for i, ch in enumerate(ordered):
        sid = f"replace-{ch.service}"
        params = {"service": ch.service, "from": ch.current, "to": ch.target}
        if ch.stateful:
            params["stateful"] = True
        if ch.volumes:
            params["volumes"] = ch.volumes
        steps.append(StepSpec(sid, "service.replace", params))
        why = [f"{ch.service} ({ch.role}): " + "; ".join(ch.reasons)]
        if ch.stateful:
            why.append("stateful (its data is in a volume): stopped, then started under the "
                       "target configuration; the backend's retries cover the gap")
        comments[sid] = why
        if proxy and ch.service != proxy and ch.service in proxy_targets:
            rid = f"reload-{proxy}-after-{ch.service}"
            steps.append(StepSpec(rid, "proxy.reload", {"service": proxy}))
            comments[rid] = [f"{proxy} forwards to {ch.service}: reload it so it resolves the "
                             "new container (a proxy that resolves once keeps the old address)"]
        if i == last_stateful:
            steps += _sql_steps(sql_files, base, comments)
    if last_stateful < 0:
        steps += _sql_steps(sql_files, base, comments)
    target_net_names = {model.networks[k].name for k in used_keys if k in model.networks}
    for live_net in state.networks:
        if live_net.labels.get("com.docker.compose.project") != project:
            continue  # external, or not made by Compose for this project: never removed
        if live_net.name in target_net_names:
            continue
        key = (live_net.compose_key or live_net.name).removeprefix(f"{project}_")
        sid = f"remove-network-{key}"
        if not _STEP_ID.match(sid):
            sid = f"remove-network-{len(steps)}"
        steps.append(StepSpec(sid, "network.remove", {"network": live_net.name}))
        comments[sid] = [f"{live_net.name} is used by the source only"]
    steps.append(StepSpec("verify", "verify"))
    comments["verify"] = ["the diagnose checks, and the data fingerprint equal to readiness's"]
    steps.append(StepSpec("cleanup", "cleanup"))
    comments["cleanup"] = ["remove the blue containers kept for rollback"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    source_files, workdir = files_from_labels(
        [_labels_json(c) for c in state.containers[:1]])
    target_paths = [Path(f) for f in target_files]
    plan = Plan(
        name=name or f"{project}-to-{target_paths[0].stem}",
        project=project,
        target=Files([_rel(p, base) for p in target_paths],
                     _rel(Path(project_directory), base) if project_directory is not None
                     else None,
                     [_rel(Path(e), base) for e in env_files]),
        steps=steps, fingerprint=state.fingerprint(), planned_at=now,
        source=Files([str(p) for p in source_files],
                     str(workdir) if workdir is not None else None) if source_files else None,
        mode=mode, fingerprint_parts=state.fingerprint_parts(), comments=comments)
    plan.comments[""] = [
        f"Planned by revivadiag against project {project} at {now}: the running project "
        f"-> {', '.join(p.name for p in target_paths)} (read by {doc.reader}).",
        "Review it, then: revivadiag migrate run PLAN --dry-run",
        "Roles: " + ", ".join(f"{s}={r}" for s, r in sorted(roles.as_mapping().items())),
    ]
    return plan


def _labels_json(c: ContainerState) -> str:
    import json

    return json.dumps(c.labels)


def _sql_steps(files: Sequence[str | Path], base: Path | None,
               comments: dict[str, list[str]]) -> list[StepSpec]:
    out = []
    for i, f in enumerate(files):
        p = Path(f)
        if not p.is_file():
            raise PlanError(str(p), "no such SQL file")
        sid = f"sql-{i + 1}-{p.stem}"[:64]
        out.append(StepSpec(sid, "sql", {"file": _rel(p, base)}))
        comments[sid] = ["a database migration, once the database runs in its target form"]
    return out


def _network_exists(client: Any, name: str) -> bool:
    return any(n.get("Name") == name for n in client.api.networks(names=[name]))


def service_changes(client: Any, state: ProjectState, data: Mapping[str, Any], roles: Roles,
                    hashes: Mapping[str, str], *, reader: str) -> list[ServiceChange]:
    """One :class:`ServiceChange` per service of the target (``reasons`` empty when its
    container can stay). PlanError for a service only one side has."""
    services = data.get("services") or {}
    live = set(state.services())
    only_target = sorted(set(services) - live)
    only_live = sorted(live - set(services))
    if only_target or only_live:
        what = "; ".join(
            ([f"only the target has {', '.join(only_target)}"] if only_target else [])
            + ([f"only the running project has {', '.join(only_live)}"] if only_live else []))
        raise PlanError(str(data.get("name") or state.project), f"{what}: a plan replaces "
                        "services, it does not add or remove them (start or stop those with "
                        "Compose first)", key="services")
    out = []
    for svc in sorted(services):
        spec = services[svc]
        containers = state.of_service(svc)
        if len(containers) != 1:
            raise PlanError(state.project, f"service {svc!r} runs {len(containers)} "
                            "containers; a plan replaces one container per service",
                            key=f"services.{svc}")
        c = containers[0]
        number = int(c.labels.get("com.docker.compose.container-number") or 1)
        target_name = str(spec.get("container_name") or "") or default_name(
            state.project, svc, reader, number)
        image_id, image_env = _image_facts(client, str(spec.get("image") or ""))
        inspect = client.api.inspect_container(c.id)
        role = roles.role(svc) or "other"
        reasons = compare_service(svc, c, inspect, spec, data, project=state.project,
                                  target_name=target_name, image_id=image_id,
                                  image_env=image_env, target_hash=hashes.get(svc))
        out.append(ServiceChange(service=svc, role=role, current=c.name, target=target_name,
                                 stateful=role in STATEFUL_ROLES, volumes=c.volumes,
                                 reasons=reasons))
    return out


def draft_plan(snapshot: Any, diagnosis: Any = None, **kwargs: Any) -> Plan:
    """See :func:`revivadiag.migrate.draft.draft_plan`."""
    from revivadiag.migrate.draft import draft_plan as draft

    return draft(snapshot, diagnosis, **kwargs)
