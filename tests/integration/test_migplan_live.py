"""Plans against real lab stacks: capture and fingerprint, make_plan on both stacks (and the
shipped plans reproduced by it), every PlanError on a running stack with nothing changed, the
stale-plan refusal, and drafts from the findings.

What a plan should contain is derived from the lab's own configuration (``LabConfig`` of the
target variant) and from the roles, never written out by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

import revivadiag as rd
from revivadiag import errors
from revivadiag.analyze.diagnosis import diagnose
from revivadiag.lab import LabInstance, down, read_secrets, up
from revivadiag.lab.compose import compose_files
from revivadiag.lab.config import LabConfig
from revivadiag.lab.lifecycle import isolated_config
from revivadiag.migrate import labplans
from revivadiag.migrate.draft import draft, write_draft
from revivadiag.migrate.plan import (
    Plan,
    check_fresh,
    dump_plan,
    load_plan,
    loads_plan,
    validate_plan,
)
from revivadiag.migrate.plan_cli import register_plan_commands
from revivadiag.migrate.planner import make_plan
from revivadiag.migrate.state import ProjectState, capture_state, diff_states

pytestmark = pytest.mark.integration

STACKS = {"lab_current": "seed", "lab_shop_current": "shop"}


@pytest.fixture(scope="module")
def plans(engine: docker.DockerClient) -> dict[str, Plan]:
    """make_plan of each session lab, made once when first asked for."""
    return {}


def plan_of(request: pytest.FixtureRequest, plans: dict[str, Plan],
            fixture: str) -> tuple[LabInstance, Plan]:
    lab: LabInstance = request.getfixturevalue(fixture)
    if fixture not in plans:
        plans[fixture] = labplans.plan_lab(request.getfixturevalue("engine"), lab.prefix,
                                           STACKS[fixture])
    return lab, plans[fixture]


def secret_values(prefix: str) -> list[str]:
    return [v for v in read_secrets(prefix).values() if v]


# ---------------------------------------------------------------- capture


def test_capture_state_of_a_running_lab(engine: docker.DockerClient,
                                        lab_current: LabInstance) -> None:
    """Every container, its networks, the data volumes; no secret value; a stable print."""
    a = capture_state(engine, lab_current.prefix)
    assert {c.service: c.name for c in a.containers} == lab_current.containers
    assert {n.name for n in a.networks} == set(lab_current.networks)
    db, cache = a.of_service("database")[0], a.of_service("redis")[0]
    assert sorted(db.volumes + cache.volumes) == sorted(v.name for v in a.volumes)
    assert len(db.volumes) == len(cache.volumes) == 1
    assert all(c.status == "running" and c.health == "healthy" for c in a.containers)
    dumped = json.dumps(a.to_dict()) + "".join(f.to_json() for f in a.frames().values())
    for secret in secret_values(lab_current.prefix):
        assert secret not in dumped
    assert "DATABASE_PASSWORD" in a.of_service("backend")[0].env
    b = capture_state(engine, lab_current.prefix)
    assert a.fingerprint() == b.fingerprint() and diff_states(a, b).empty


# ---------------------------------------------------------------- make_plan


def expected_steps(lab: LabInstance) -> dict[str, Any]:
    """What the plan must hold, from the lab's own configs of both variants."""
    target_variant = labplans.LAB_PLANS[lab.config.stack.name][2]
    target = LabConfig(prefix=lab.prefix, variant=target_variant, profile=lab.profile)
    external = set(target.external_networks)
    return {
        "replace": {s: (lab.containers[s], target.container_name(s)) for s in lab.services},
        "create": set(target.networks) - set(lab.networks) - external,
        "remove": set(lab.networks) - set(target.networks) - external,
    }


@pytest.mark.parametrize("fixture", sorted(STACKS))
def test_make_plan_derives_the_steps_from_the_stack(
        request: pytest.FixtureRequest, plans: dict[str, Plan], engine: docker.DockerClient,
        fixture: str) -> None:
    """Every service replaced to its target name, the target networks created, the source's
    removed; stores first and marked stateful, the proxy last and reloaded after what it
    forwards to; the plan validates, is fresh, and no secret is in it."""
    lab, plan = plan_of(request, plans, fixture)
    want = expected_steps(lab)
    kinds = [s.kind for s in plan.steps]
    assert kinds[0] == "readiness" and kinds[-2:] == ["verify", "cleanup"]
    replaced = {s.params["service"]: (s.params["from"], s.params["to"])
                for s in plan.steps if s.kind == "service.replace"}
    assert replaced == want["replace"]
    assert {s.params["network"] for s in plan.steps if s.kind == "network.create"} \
        == want["create"]
    assert {s.params["network"] for s in plan.steps if s.kind == "network.remove"} \
        == want["remove"]
    roles = rd.snapshot(project=lab.prefix, samples=1).roles
    role = dict(zip(roles["service"], roles["role"], strict=True))
    order = [s.params["service"] for s in plan.steps if s.kind == "service.replace"]
    stateful = {s.params["service"] for s in plan.steps
                if s.kind == "service.replace" and s.params.get("stateful")}
    assert stateful == {s for s, r in role.items() if r in ("database", "cache")}
    assert order[: len(stateful)] == sorted(stateful)
    proxy = next(s for s, r in role.items() if r == "proxy")
    assert order[-1] == proxy
    backend = next(s for s, r in role.items() if r == "backend")
    ids = [s.id for s in plan.steps]
    reload_after = ids[ids.index(f"replace-{backend}") + 1]
    assert plan.step(reload_after).kind == "proxy.reload"
    assert plan.step(reload_after).params["service"] == proxy
    creates = [i for i, s in enumerate(plan.steps) if s.kind == "network.create"]
    first_replace = kinds.index("service.replace")
    assert all(i < first_replace for i in creates)
    text = dump_plan(plan)
    for secret in secret_values(lab.prefix):
        assert secret not in text
    before = capture_state(engine, lab.prefix)
    validate_plan(plan, engine)
    check_fresh(plan, engine)
    assert capture_state(engine, lab.prefix) == before


@pytest.mark.parametrize("fixture", sorted(STACKS))
def test_shipped_plan_is_what_make_plan_gives(request: pytest.FixtureRequest,
                                              plans: dict[str, Plan], fixture: str) -> None:
    """The shipped template, rendered for this lab, has make_plan's steps and target."""
    lab, plan = plan_of(request, plans, fixture)
    shipped = labplans.lab_plan(lab.prefix, STACKS[fixture])
    assert shipped.steps == plan.steps
    assert shipped.target == plan.target and shipped.name == plan.name
    target_variant = labplans.LAB_PLANS[STACKS[fixture]][2]
    assert shipped.target_files() == compose_files(target_variant, "production")


def test_plan_command_writes_a_fresh_plan(engine: docker.DockerClient,
                                          lab_shop_current: LabInstance, tmp_path: Path) -> None:
    """`migrate plan --project --target` writes a plan that loads, validates and is fresh;
    `--lab --template` gives the shipped file's steps."""
    parser = argparse.ArgumentParser()
    register_plan_commands(parser.add_subparsers(dest="cmd"))
    prefix = lab_shop_current.prefix
    target = labplans.PLANS_DIR / "../compose/shop/target.yml"
    env = labplans.target_env(prefix)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        out = tmp_path / "plan.yml"
        args = parser.parse_args(["plan", "--project", prefix, "--target", str(target),
                                  "-o", str(out)])
        assert args.func(args) == 0
        tpl = tmp_path / "template.yml"
        args = parser.parse_args(["plan", "--lab", prefix, "--template", "-o", str(tpl)])
        assert args.func(args) == 0
    plan = load_plan(out)
    validate_plan(plan, engine)
    check_fresh(plan, engine)
    assert plan.target_files() == [target.resolve()]
    rendered = loads_plan(tpl.read_text().replace(labplans.PLACEHOLDER, prefix),
                          labplans.plan_file("shop"))
    assert rendered.steps == labplans.lab_plan(prefix, "shop").steps
    assert [s.id for s in rendered.steps] == [s.id for s in plan.steps]


# ---------------------------------------------------------------- validation


def with_steps(plan: Plan, edit: Callable[[list[dict[str, Any]]], None]) -> str:
    """The plan's YAML with its steps edited."""
    data = plan.to_dict()
    edit(data["steps"])
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def _replace(steps: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return next(s for s in steps if s.get("service") == service and s["kind"] ==
                "service.replace")


def _case(name: str) -> Callable[[list[dict[str, Any]], LabInstance], None]:
    def unknown_service(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        _replace(steps, "backend")["service"] = "payments"

    def unknown_container(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        _replace(steps, "backend")["from"] = f"{lab.prefix}_old_backend"

    def name_taken(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        # the plan would give the backend the name of a container it does not replace
        steps[:] = [s for s in steps if s.get("service") != "redis"]
        _replace(steps, "backend")["to"] = lab.containers["redis"]

    def duplicate_target(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        _replace(steps, "backend")["to"] = _replace(steps, "frontend")["to"]

    def missing_volume(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        _replace(steps, "database")["volumes"] = [f"{lab.prefix}_db_data_gone"]

    def unknown_kind(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        steps.insert(1, {"id": "warp", "kind": "service.teleport", "service": "backend"})

    def duplicate_id(steps: list[dict[str, Any]], lab: LabInstance) -> None:
        steps[2]["id"] = steps[1]["id"]

    return {"unknown_service": unknown_service, "unknown_container": unknown_container,
            "name_taken": name_taken, "duplicate_target": duplicate_target,
            "missing_volume": missing_volume, "unknown_kind": unknown_kind,
            "duplicate_id": duplicate_id}[name]


CASES = [("unknown_service", errors.UnknownServiceError, "'payments'"),
         ("unknown_container", errors.UnknownContainerError, "_old_backend"),
         ("name_taken", errors.TargetNameTakenError, "exists already"),
         ("duplicate_target", errors.DuplicateTargetError, "is created by steps"),
         ("missing_volume", errors.MissingVolumeError, "_db_data_gone"),
         ("unknown_kind", errors.UnknownStepKindError, "service.teleport"),
         ("duplicate_id", errors.DuplicateStepIdError, "used by steps")]


@pytest.mark.parametrize(("case", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_plan_is_refused_on_a_real_stack(
        request: pytest.FixtureRequest, plans: dict[str, Plan], engine: docker.DockerClient,
        tmp_path: Path, case: str, error: type[errors.PlanError], words: str) -> None:
    """Each kind of bad plan: its typed PlanError naming the problem; the stack unchanged."""
    lab, plan = plan_of(request, plans, "lab_current")
    path = tmp_path / "bad.yml"
    path.write_text(with_steps(plan, lambda steps: _case(case)(steps, lab)))
    before = capture_state(engine, lab.prefix)
    with pytest.raises(error) as info:
        validate_plan(load_plan(path), engine)
    assert type(info.value) is error
    assert words in str(info.value) and str(path) in str(info.value)
    after = capture_state(engine, lab.prefix)
    assert diff_states(before, after).empty and before == after


def test_unknown_project_is_refused(engine: docker.DockerClient,
                                    request: pytest.FixtureRequest,
                                    plans: dict[str, Plan]) -> None:
    """A plan for a project that runs nothing: UnknownProjectError."""
    _lab, plan = plan_of(request, plans, "lab_current")
    text = dump_plan(plan).replace(f"project: {plan.project}\n", "project: rdtnosuchproject\n")
    with pytest.raises(errors.UnknownProjectError, match="rdtnosuchproject"):
        validate_plan(loads_plan(text), engine)


# ---------------------------------------------------------------- a private lab to change


@pytest.fixture(scope="module")
def own_lab(engine: docker.DockerClient, lab_images: Any) -> Iterator[LabInstance]:
    """A private `current` lab this module may stop and reconnect (removed at the end)."""
    lab = up(isolated_config("current", "development"), timeout_s=120, client=engine)
    try:
        yield lab
    finally:
        down(lab.prefix, volumes=True, client=engine)


def wait_healthy(engine: docker.DockerClient, prefix: str, timeout_s: float = 60) -> ProjectState:
    deadline = time.monotonic() + timeout_s
    while True:
        s = capture_state(engine, prefix)
        if all(c.health == "healthy" for c in s.containers) or time.monotonic() > deadline:
            return s
        time.sleep(0.5)


@pytest.mark.destructive
def test_fingerprint_survives_a_restart(engine: docker.DockerClient,
                                        own_lab: LabInstance) -> None:
    """A restarted container (health starting then healthy, maybe a new address) keeps the
    fingerprint: nothing a plan depends on changed."""
    before = capture_state(engine, own_lab.prefix)
    engine.containers.get(own_lab.containers["redis"]).restart(timeout=5)
    after = wait_healthy(engine, own_lab.prefix)
    assert after.fingerprint() == before.fingerprint()


@pytest.mark.destructive
def test_stale_plan_is_refused_saying_what_changed(engine: docker.DockerClient,
                                                   own_lab: LabInstance) -> None:
    """A container attached to one more network after planning: StalePlanError naming it
    and the new network; once detached again the plan is fresh again."""
    plan = labplans.plan_lab(engine, own_lab.prefix, "seed")
    check_fresh(plan, engine)
    extra = engine.networks.create(f"{own_lab.prefix}_extra", driver="bridge",
                                   labels={"com.docker.compose.project": own_lab.prefix})
    backend = engine.containers.get(own_lab.containers["backend"])
    try:
        extra.connect(backend)
        with pytest.raises(errors.StalePlanError) as info:
            check_fresh(plan, engine)
        assert f"container {backend.name} changed" in info.value.changes
        assert f"network {own_lab.prefix}_extra is new" in info.value.changes
        assert "re-plan" in str(info.value)
    finally:
        extra.disconnect(backend)
        extra.remove()
    check_fresh(plan, engine)


@pytest.mark.destructive
def test_unhealthy_service_is_refused(engine: docker.DockerClient,
                                      own_lab: LabInstance) -> None:
    """A stopped service: UnhealthyServiceError naming it; the validation changed nothing."""
    plan = labplans.plan_lab(engine, own_lab.prefix, "seed")
    validate_plan(plan, engine)
    engine.containers.get(own_lab.containers["redis"]).stop(timeout=5)
    before = capture_state(engine, own_lab.prefix)
    stopped = f"redis \\({own_lab.containers['redis']}\\) is exited"
    with pytest.raises(errors.UnhealthyServiceError, match=stopped):
        validate_plan(plan, engine)
    after = capture_state(engine, own_lab.prefix)  # health of the others may move by itself
    assert after.fingerprint() == before.fingerprint()
    assert [c.status for c in after.containers] == [c.status for c in before.containers]


# ---------------------------------------------------------------- drafts


@pytest.mark.parametrize("fixture", sorted(STACKS))
def test_draft_from_the_findings(request: pytest.FixtureRequest, engine: docker.DockerClient,
                                 tmp_path: Path, fixture: str) -> None:
    """The draft renames what breaks <project>_<service>, splits the networks by role,
    empties the browser URLs that point at localhost, keeps every secret a variable; its
    target reads with Compose and make_plan against it replaces the same services."""
    lab: LabInstance = request.getfixturevalue(fixture)
    snap = rd.snapshot(project=lab.prefix, samples=1)
    found = diagnose(snap, requests=5, burst=5)
    result = draft(snap, found)
    plan_path, target_path = write_draft(result, tmp_path)
    texts = plan_path.read_text() + target_path.read_text()
    for secret in secret_values(lab.prefix):
        assert secret not in texts
    assert "${" in target_path.read_text()  # variables kept as written
    roles = dict(zip(snap.roles["service"], snap.roles["role"], strict=True))
    replaced = {s.params["service"]: s.params["to"] for s in result.plan.steps
                if s.kind == "service.replace"}
    assert set(replaced) == set(lab.services)
    compose_default = lab.config.stack.name == "shop"
    for svc, name in replaced.items():
        assert name == (lab.containers[svc] if compose_default else f"{lab.prefix}_{svc}")
    nets = result.target["services"]
    proxy = next(s for s, r in roles.items() if r == "proxy")
    stores = [s for s, r in roles.items() if r in ("database", "cache")]
    for store in stores:
        assert not set(nets[proxy]["networks"]) & set(nets[store]["networks"])
    browser_urls = [(c, k) for c, k, v in zip(snap.env["container"], snap.env["key"],
                                              snap.env["value"], strict=True)
                    if "localhost" in str(v) and k.split("_")[0] in ("NEXT", "VITE")]
    assert browser_urls
    service_of = dict(zip(snap.containers["name"], snap.containers["service"], strict=True))
    for container, key in browser_urls:
        assert nets[service_of[container]]["environment"][key] == ""
    if found.findings["id"].isin(["RD-PRX-001", "RD-PRX-002"]).any():
        assert any("RD-PRX-00" in line for line in result.plan.comments[f"replace-{proxy}"])
    again = make_plan(engine, lab.prefix, [target_path],
                      project_directory=result.plan.target.project_directory,
                      compose_env=labplans.target_env(lab.prefix))
    assert {s.params["service"]: s.params["to"] for s in again.steps
            if s.kind == "service.replace"} == replaced
    assert load_plan(plan_path).fingerprint is None
