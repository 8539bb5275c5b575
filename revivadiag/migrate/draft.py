"""``revivadiag migrate draft``: a plan drafted from what the diagnosis found, for a person.

A draft needs no target files: it writes one. The simplest honest form of "what the
findings ask for" is a compose file, so :func:`draft` takes the project's *own* compose
files (those its containers' labels name), raw — every ``${VARIABLE}`` kept as written, so
no secret value is read or written — and changes only what a finding is about:

- **names**: a ``container_name`` that is not ``<project>_<service>`` becomes it (written
  with the variable the file used for the project, e.g. ``${LAB_PREFIX:?}_backend``); other
  services' variables that named the old container name the new one. Services without
  ``container_name`` keep Compose's default names;
- **networks split by role**, when the proxy shares a network with a database or cache:
  ``front`` (the proxy, the backend and the other apps it serves), ``data`` (the backend,
  workers and databases) and ``cache`` (the backend, workers and caches); external networks
  stay; aliases move with their service; the old networks go;
- **URL variables pointing at localhost** (client-visible ``*_URL`` variables a browser
  would call directly, bypassing the proxy) become empty: relative URLs through the proxy;
- **proxy keep-alive and re-resolution** live in the proxy's own configuration, which a
  compose file does not hold: the draft says so above the proxy's step, with the finding's
  remedy, and reloads the proxy after each service it forwards to.

The plan (``plan.draft.yml``) has no fingerprint: after review, ``revivadiag migrate plan
--project P --target target.draft.yml`` makes the runnable plan against the live project.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from revivadiag import seed
from revivadiag.analyze.config_audit import client_env_urls, internal_names, internal_ports
from revivadiag.analyze.urls import client_url_problems
from revivadiag.collect import compose_vars as cv
from revivadiag.collect.compose import files_from_labels, live_facts, normalize_project
from revivadiag.collect.compose_spec import _interpolated as interpolated_or_raw
from revivadiag.collect.roles import Roles
from revivadiag.errors import ComposeFileError, PlanError
from revivadiag.migrate.model import StepSpec
from revivadiag.migrate.plan import Files, Plan, dump_plan
from revivadiag.migrate.planner import STATEFUL_ROLES, ServiceChange, replacement_order

TARGET_FILE = "target.draft.yml"
PLAN_FILE = "plan.draft.yml"
#: finding ids about the proxy's own configuration -> what to say
PROXY_FINDINGS = ("RD-PRX-001", "RD-PRX-002")
_VAR = re.compile(r"\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Draft:
    """A drafted plan, the target compose file it runs to, and what the draft changed."""

    plan: Plan
    target: dict[str, Any]
    source_files: list[Path]
    project_directory: Path | None
    notes: list[str] = field(default_factory=list)


def _env_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return {}


def _networks_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    nets = spec.get("networks")
    if isinstance(nets, list):
        return {str(n): None for n in nets}
    if isinstance(nets, Mapping):
        return dict(nets)
    return {"default": None}


def _project_expr(text: str, project: str, env: Mapping[str, str]) -> str:
    """The part of ``text`` (a raw compose string) that gives the project name: a variable
    expression whose value is ``project``, else ``project`` itself.

    >>> _project_expr("${PREFIX:?}_new_db", "demo", {"PREFIX": "demo"})
    '${PREFIX:?}'
    >>> _project_expr("demo_new_db", "demo", {})
    'demo'
    """
    for m in _VAR.finditer(text):
        try:
            if cv.interpolate_text(m.group(0), env, "") == project:
                return m.group(0)
        except ComposeFileError:
            continue
    return project


def draft(snapshot: Any, diagnosis: Any = None, *,
          files: Sequence[str | Path] | None = None) -> Draft:
    """The draft of ``snapshot``'s project (``diagnosis``: its :func:`diagnose` result, whose
    findings the comments quote; ``files``: the source compose files, default those the
    containers' labels name). Pure apart from reading the compose files."""
    project = str(snapshot.project)
    workdir: Path | None = None
    if files:
        paths = [Path(f) for f in files]
    else:
        paths, workdir = files_from_labels(snapshot.containers["labels"])
    if not paths:
        raise PlanError(project, "its containers name no compose file (label "
                        "com.docker.compose.project.config_files); give the files")
    raw = cv.merge_files(cv.read_files(paths))
    facts = live_facts(snapshot)
    env_guess = cv.infer_env(raw, **facts)
    roles = Roles.from_snapshot(snapshot)
    role_of = {s: r for s, r in roles.as_mapping().items()}
    target = copy.deepcopy(raw)
    services: dict[str, Any] = target.get("services") or {}
    live_names: dict[str, str] = dict(zip(snapshot.containers["service"],
                                          snapshot.containers["name"], strict=True))
    why: dict[str, list[str]] = {s: [] for s in services}
    notes: list[str] = []
    finding_ids = set() if diagnosis is None else set(diagnosis.findings["id"])
    new_names: dict[str, str] = {}

    # -- names
    renames: list[tuple[str, str, str, str]] = []  # (raw old, raw new, live old, live new)
    for svc, spec in services.items():
        old_raw = str((spec or {}).get("container_name") or "")
        if not old_raw or svc not in live_names:
            continue
        expected = seed.NAMING.format(project=project, service=svc)
        if live_names[svc] == expected:
            continue
        expr = _project_expr(old_raw, project, env_guess)
        new_raw = f"{expr}_{svc}"
        spec["container_name"] = new_raw
        renames.append((old_raw, new_raw, live_names[svc], expected))
        new_names[svc] = expected
        why[svc].append(f"container name {live_names[svc]} -> {expected} "
                        "(<project>_<service>" + (", RD-NAME-001" if "RD-NAME-001" in
                                                   finding_ids else "") + ")")
    for svc, spec in services.items():
        env = _env_mapping((spec or {}).get("environment"))
        changed = []
        for key, value in env.items():
            if not isinstance(value, str):
                continue
            new = value
            for old_raw, new_raw, old_live, new_live in renames:
                new = new.replace(old_raw, new_raw).replace(old_live, new_live)
            if new != value:
                env[key] = new
                changed.append(key)
        if changed:
            spec["environment"] = env
            why[svc].append(f"{', '.join(sorted(changed))} named a renamed container")

    # -- URL variables a browser would call directly
    names = internal_names(snapshot.frames())
    ports = internal_ports(snapshot.frames(), role_of)
    service_of = dict(zip(snapshot.containers["name"], snapshot.containers["service"],
                          strict=True))
    for container, key, value in client_env_urls(snapshot.env):
        problems = client_url_problems(value, names, ports)
        svc = service_of.get(container, "")
        if not problems or svc not in services:
            continue
        env = _env_mapping(services[svc].get("environment"))
        env[key] = ""
        services[svc]["environment"] = env
        why[svc].append(f"{key}={value}: {'; '.join(problems)} -> empty (relative URLs "
                        "through the proxy" + (", RD-CFG-001" if "RD-CFG-001" in finding_ids
                                               else "") + ")")

    # -- networks by role
    declared = dict(target.get("networks") or {})
    external = {k for k, v in declared.items() if isinstance(v, Mapping) and v.get("external")}
    proxy = roles.service("proxy")
    stores = {s for s, r in role_of.items() if r in STATEFUL_ROLES}
    shared = False
    if proxy is not None:
        proxy_nets = set(snapshot.endpoints[snapshot.endpoints["service"] == proxy]["network"])
        store_nets = set(snapshot.endpoints[snapshot.endpoints["service"].isin(stores)]
                         ["network"])
        shared = bool(proxy_nets & store_nets)
    removed_keys: set[str] = set()
    created: dict[str, list[str]] = {}
    if shared:
        keys = {"front": "front", "data": "data", "cache": "cache"}
        for k in list(keys):
            while keys[k] in declared and keys[k] not in external:
                keys[k] += "_net"
        has_db = any(r == "database" for r in role_of.values())
        has_cache = any(r == "cache" for r in role_of.values())
        for svc, spec in services.items():
            if spec.get("network_mode") or svc not in role_of:
                continue
            role = role_of[svc]
            want: list[str] = []
            if role in ("proxy", "backend", "other"):
                want.append(keys["front"])
            if (role in ("backend", "worker") and has_db) or role == "database":
                want.append(keys["data"])
            if (role in ("backend", "worker") and has_cache) or role == "cache":
                want.append(keys["cache"])
            old = _networks_of(spec)
            aliases = sorted({str(a) for k, v in old.items() if k not in external
                              and isinstance(v, Mapping) for a in v.get("aliases") or []})
            nets: dict[str, Any] = {k: v for k, v in old.items() if k in external}
            for k in want:
                nets[k] = {"aliases": aliases} if aliases else None
                created.setdefault(k, []).append(svc)
            removed_keys |= {k for k in old if k not in external}
            spec["networks"] = nets
            why[svc].append(f"networks {', '.join(sorted(old))} -> {', '.join(sorted(nets))} "
                            f"(split by role: {role}"
                            + (", RD-POL-001" if "RD-POL-001" in finding_ids else "") + ")")
        removed_keys -= set(created)
        for k in removed_keys:
            declared.pop(k, None)
        for k in created:
            declared.setdefault(k, {})
        target["networks"] = declared
        notes.append(f"networks split by role: {', '.join(sorted(created))}; the proxy "
                     f"({proxy}) no longer shares a network with {', '.join(sorted(stores))}")

    # -- the plan
    comments: dict[str, list[str]] = {}
    steps = [StepSpec("readiness", "readiness")]
    comments["readiness"] = ["every service healthy, the data fingerprinted (verify compares)"]
    for k in sorted(created):
        sid = f"create-network-{k}"
        steps.append(StepSpec(sid, "network.create",
                              {"network": f"{project}_{k}", "compose_key": k}))
        comments[sid] = [f"new network {k} for {', '.join(sorted(created[k]))}"]
    depends = {s: list(_depends_on(spec)) for s, spec in services.items()}
    changes = [ServiceChange(service=s, role=role_of.get(s, "other"),
                             current=live_names.get(s, ""),
                             target=new_names.get(s) or str(live_names.get(s, "")),
                             stateful=role_of.get(s) in STATEFUL_ROLES, reasons=why[s])
               for s in services if why[s] and s in live_names]
    proxy_notes = []
    if diagnosis is not None:
        for rec in diagnosis.findings.to_dict("records"):
            if rec["id"] in PROXY_FINDINGS:
                proxy_notes.append(f"{rec['id']} {rec['title']}: {rec['remediation']}")
    for ch in replacement_order(changes, depends):
        sid = f"replace-{ch.service}"
        params: dict[str, Any] = {"service": ch.service, "from": ch.current, "to": ch.target}
        if ch.stateful:
            params["stateful"] = True
        steps.append(StepSpec(sid, "service.replace", params))
        comments[sid] = [f"{ch.service} ({ch.role}): " + "; ".join(ch.reasons)]
        if ch.stateful:
            comments[sid].append("stateful: stopped, then started in its target form; the "
                                 "backend's retries cover the gap")
        if ch.service == proxy:
            comments[sid] += proxy_notes or [
                "its keep-alive and re-resolution are in its own configuration (not in the "
                "compose file): check them with revivadiag diagnose before running"]
        elif proxy is not None and (roles.route(ch.service) or ch.role == "backend"):
            rid = f"reload-{proxy}-after-{ch.service}"
            steps.append(StepSpec(rid, "proxy.reload", {"service": proxy}))
            comments[rid] = [f"{proxy} forwards to {ch.service}: reload so it resolves the new "
                             "container"]
    for k in sorted(removed_keys):
        spec = (raw.get("networks") or {}).get(k) or {}
        named = isinstance(spec, Mapping) and spec.get("name")
        engine = str(interpolated_or_raw(str(spec.get("name")), env_guess)) if named else \
            f"{project}_{k}"
        sid = f"remove-network-{k}"
        steps.append(StepSpec(sid, "network.remove", {"network": engine}))
        comments[sid] = [f"{engine}: no service is on it in the target"]
    steps += [StepSpec("verify", "verify"), StepSpec("cleanup", "cleanup")]
    comments["verify"] = ["the diagnose checks again, and the data fingerprint"]
    comments["cleanup"] = ["remove the blue containers kept for rollback"]
    if not changes:
        notes.append("nothing to change: no finding the draft knows how to fix")
    plan = Plan(name=f"{normalize_project(project)}-draft", project=project,
                target=Files([TARGET_FILE], str(workdir or paths[0].resolve().parent)),
                steps=steps, fingerprint=None, planned_at=None,
                source=Files([str(p) for p in paths]), comments=comments)
    plan.comments[""] = [
        f"DRAFT for project {project}, from its findings: review it and {TARGET_FILE}, then",
        f"  revivadiag migrate plan --project {project} --target {TARGET_FILE} "
        f"--project-directory {workdir or paths[0].resolve().parent} -o plan.yml",
        "(the runnable plan, fingerprinted against the live project). Roles: "
        + ", ".join(f"{s}={r}" for s, r in sorted(role_of.items())),
        *notes]
    return Draft(plan=plan, target=target, source_files=paths,
                 project_directory=workdir, notes=notes)


def _depends_on(spec: Mapping[str, Any]) -> list[str]:
    deps = (spec or {}).get("depends_on") or []
    return [str(d) for d in deps]  # a list, or a mapping of service -> condition


def draft_plan(snapshot: Any, diagnosis: Any = None, **kwargs: Any) -> Plan:
    """The plan of :func:`draft` (its target compose file is written by :func:`write_draft`)."""
    return draft(snapshot, diagnosis, **kwargs).plan


def write_draft(d: Draft, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``plan.draft.yml`` and ``target.draft.yml`` into ``out_dir``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        target = out / TARGET_FILE
        head = [f"# DRAFT target of project {d.plan.project}, made by revivadiag migrate draft "
                "from", f"# {', '.join(str(p) for p in d.source_files)}: variables are kept "
                "as written (no value read).",
                "# Relative paths are relative to the project directory given in "
                f"{PLAN_FILE}.", *[f"# {n}" for n in d.notes]]
        target.write_text("\n".join(head) + "\n" + yaml.safe_dump(d.target, sort_keys=False,
                                                                   width=100), encoding="utf-8")
        plan_path = out / PLAN_FILE
        plan_path.write_text(dump_plan(d.plan), encoding="utf-8")
    except OSError as exc:
        raise PlanError(str(out), f"cannot write the draft: {exc.strerror or exc}") from exc
    return plan_path, target
