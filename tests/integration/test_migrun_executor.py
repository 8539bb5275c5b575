"""The executor, journal and lock against the real engine, with a test-only step kind
(``migrun_netsteps.NetStep``: creates labelled networks). Crashes are real: the executor
runs in a subprocess that SIGKILLs itself inside a step; resume and rollback then run and
the engine is checked."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from revivadiag.errors import ApprovalRequired, MigrationLocked, RollbackRefused, StepFailed
from revivadiag.migrate import run as mr
from revivadiag.migrate.journal import Journal, list_journals
from revivadiag.migrate.model import StepStatus

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
SCRIPT = HERE / "migrun_netsteps.py"
_spec = importlib.util.spec_from_file_location("migrun_netsteps", SCRIPT)
assert _spec is not None and _spec.loader is not None
ns: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ns)

ALL = {"n1", "n2a", "n2b", "n3"}


@pytest.fixture
def project(engine: docker.DockerClient) -> Any:
    name = f"rdt{uuid.uuid4().hex[:8]}"
    yield name
    ns.remove_project_networks(engine, name)


def nets(engine: docker.DockerClient, project: str) -> dict[str, str]:
    return {k[len(project) + 1:]: v for k, v in ns.project_networks(engine, project).items()}


def script(root: Path, project: str, action: str, mid: str | None = None,
           env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    argv = [sys.executable, str(SCRIPT), str(root), project, action, *([mid] if mid else [])]
    full_env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]), **(env or {})}
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=120,
                          check=False)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    return proc.returncode, json.loads(last)


def only_id(root: Path, project: str) -> str:
    entries = list_journals(project, root)
    assert len(entries) == 1
    return entries[0].migration_id


def test_full_run_then_rerun_changes_nothing(engine: docker.DockerClient, project: str,
                                             tmp_path: Path) -> None:
    """A run creates every network and journals each step; re-running it changes nothing."""
    ex = mr.run(ns.test_plan(project), engine, ns.hooks(), approve=True, root=tmp_path)
    assert set(nets(engine, project)) == ALL
    st = ex.state()
    assert st.status is StepStatus.COMPLETED
    assert [s.status for s in st.steps.values()] == [StepStatus.COMPLETED] * 3
    events = [r["event"] for r in ex.journal.records]
    assert events == ["started", "approved", "intent", "result", "intent", "result", "intent",
                      "result", "finished"]
    assert st.steps["two"].undo == {"remove": [f"{project}_n2a", f"{project}_n2b"]}
    before = nets(engine, project)
    again = mr.run(ns.test_plan(project), engine, ns.hooks(), resume=ex.migration_id,
                   root=tmp_path)
    assert nets(engine, project) == before
    assert len(again.journal.records) == len(ex.journal.records)
    frame = mr.runs_frame(project, tmp_path)
    assert frame[["status", "steps_done"]].to_dict("records") == [
        {"status": "completed", "steps_done": "3/3"}]


def test_unapproved_run_stops_before_any_change(engine: docker.DockerClient, project: str,
                                                tmp_path: Path) -> None:
    """No approval: ApprovalRequired naming the approve command, nothing created; approve
    records who; --resume continues from the gate."""
    with pytest.raises(ApprovalRequired) as info:
        mr.run(ns.test_plan(project), engine, ns.hooks(), root=tmp_path)
    mid = info.value.migration_id
    assert f"revivadiag migrate approve {mid}" in str(info.value)
    assert nets(engine, project) == {}
    assert mr.runs_frame(project, tmp_path)["status"].tolist() == ["awaiting approval"]
    st = mr.approve(mid, who="reviewer@example", root=tmp_path)
    assert st.approved_by == "reviewer@example"
    mr.run(ns.test_plan(project), engine, ns.hooks(), resume=mid, root=tmp_path)
    assert set(nets(engine, project)) == ALL


def test_failing_step_rolls_back_everything(engine: docker.DockerClient, project: str,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """Step two fails after creating one network: it and step one are undone, in reverse."""
    monkeypatch.setenv("MIGRUN_FAIL", "two")
    with pytest.raises(StepFailed) as info:
        mr.run(ns.test_plan(project), engine, ns.hooks(), approve=True, root=tmp_path)
    assert info.value.step_id == "two"
    assert info.value.rolled_back == ["two", "one"]
    assert nets(engine, project) == {}
    st = Journal.open(project, only_id(tmp_path, project), tmp_path).state()
    assert st.status is StepStatus.ROLLED_BACK
    assert {k: str(v.status) for k, v in st.steps.items()} == {
        "one": "rolled_back", "two": "rolled_back", "three": "pending"}
    assert "told to fail" in st.steps["two"].error or st.steps["two"].status


@pytest.mark.parametrize("point", ["before", "between", "after"])
def test_sigkill_inside_a_step_then_resume_completes(engine: docker.DockerClient, project: str,
                                                     tmp_path: Path, point: str) -> None:
    """SIGKILL inside step two (nothing / part / all of it applied): the lock dies with the
    process, resume classifies the step from the engine and completes the run."""
    rc, _ = script(tmp_path, project, "run", env={"MIGRUN_KILL": f"two:{point}"})
    assert rc == -9
    mid = only_id(tmp_path, project)
    st = Journal.open(project, mid, tmp_path).state()
    assert st.interrupted() is not None and st.interrupted().id == "two"  # type: ignore[union-attr]
    rc, out = script(tmp_path, project, "resume", mid)
    assert (rc, out.get("ok")) == (0, True)
    assert set(nets(engine, project)) == ALL
    st = Journal.open(project, mid, tmp_path).state()
    assert st.status is StepStatus.COMPLETED
    expected = {"before": "not_applied", "between": "partial", "after": "applied"}[point]
    assert any(f"says {expected}" in n for n in st.notes)


@pytest.mark.parametrize("step", ["one", "three"])
def test_sigkill_between_steps_then_rollback_restores(engine: docker.DockerClient,
                                                      project: str, tmp_path: Path,
                                                      step: str) -> None:
    """SIGKILL at the start of a step, then rollback: every network the run made is gone."""
    rc, _ = script(tmp_path, project, "run", env={"MIGRUN_KILL": f"{step}:before"})
    assert rc == -9
    mid = only_id(tmp_path, project)
    rc, out = script(tmp_path, project, "rollback", mid)
    assert (rc, out.get("ok")) == (0, True), out
    assert nets(engine, project) == {}
    assert Journal.open(project, mid, tmp_path).state().status is StepStatus.ROLLED_BACK


def test_sigkill_mid_step_then_rollback_restores(engine: docker.DockerClient, project: str,
                                                 tmp_path: Path) -> None:
    """SIGKILL with step two half done, then rollback: the partial step is undone too."""
    rc, _ = script(tmp_path, project, "run", env={"MIGRUN_KILL": "two:between"})
    assert rc == -9
    assert set(nets(engine, project)) == {"n1", "n2a"}
    rc, out = script(tmp_path, project, "rollback", only_id(tmp_path, project))
    assert (rc, out.get("ok")) == (0, True), out
    assert nets(engine, project) == {}


def test_rollback_refuses_on_drift_unless_forced(engine: docker.DockerClient, project: str,
                                                 tmp_path: Path) -> None:
    """A network replaced by hand after the run: rollback lists it and changes nothing;
    --force undoes anyway."""
    ex = mr.run(ns.test_plan(project), engine, ns.hooks(), approve=True, root=tmp_path)
    engine.networks.get(f"{project}_n3").remove()
    engine.networks.create(f"{project}_n3", labels={ns.PROJECT_LABEL: project})
    with pytest.raises(RollbackRefused) as info:
        mr.rollback(ex.migration_id, engine, ns.hooks(), root=tmp_path)
    assert info.value.drift == [f"three: network {project}_n3 was replaced "
                                f"({ex.state().steps['three'].result['networks'][f'{project}_n3'][:12]}"  # type: ignore[index]
                                f" -> {engine.networks.get(f'{project}_n3').id[:12]})"]
    assert set(nets(engine, project)) == ALL
    mr.rollback(ex.migration_id, engine, ns.hooks(), root=tmp_path, force=True)
    assert nets(engine, project) == {}


def test_second_concurrent_run_is_refused(engine: docker.DockerClient, project: str,
                                          tmp_path: Path) -> None:
    """While a run holds the project, another is refused, naming the holder's pid and id."""
    argv = [sys.executable, str(SCRIPT), str(tmp_path), project, "run"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]), "MIGRUN_SLEEP": "one:20"}
    holder = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list_journals(project, tmp_path):
            time.sleep(0.1)
        time.sleep(0.5)
        with pytest.raises(MigrationLocked) as info:
            mr.run(ns.test_plan(project), engine, ns.hooks(), approve=True, root=tmp_path)
        mid = only_id(tmp_path, project)
        assert f"pid {holder.pid}" in str(info.value) and mid in str(info.value)
        assert mr.runs_frame(project, tmp_path)["lock_holder"].iloc[0].startswith(
            f"migration {mid}, pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait(10)
    # the lock died with its holder: the run can be resumed at once
    mr.run(ns.test_plan(project), engine, ns.hooks(), resume=only_id(tmp_path, project),
           root=tmp_path)
    assert set(nets(engine, project)) == ALL


def test_dry_run_lists_operations_and_changes_nothing(engine: docker.DockerClient,
                                                      project: str, tmp_path: Path) -> None:
    """Every step with its Docker operations; no network, no journal."""
    steps = mr.dry_run(ns.test_plan(project), engine, ns.hooks())
    frame = mr.dry_run_frame(steps)
    assert frame["step"].tolist() == ["one", "two", "two", "three"]
    assert frame["operation"].iloc[1].endswith(f"{project}_n2a")
    assert nets(engine, project) == {}
    assert list_journals(project, tmp_path) == []


def test_stale_plan_is_refused_with_nothing_written(engine: docker.DockerClient, project: str,
                                                    tmp_path: Path) -> None:
    """The plan check raising (a stale fingerprint) stops the run before the journal."""
    from revivadiag.errors import PlanError

    def stale(plan: Any, client: Any) -> None:
        raise PlanError(plan.path, "the live state changed since the plan was made")

    hooks = ns.hooks()
    hooks.check = stale
    with pytest.raises(PlanError):
        mr.run(ns.test_plan(project), engine, hooks, approve=True, root=tmp_path)
    assert nets(engine, project) == {}
    assert list_journals(project, tmp_path) == []
