"""End to end, destructive: the shipped plans run on private copies of both lab stacks through
the CLI and the runbook, with real crashes (SIGKILL of the running process) and a real failing
step. After each run the engine is checked: diagnose's findings, the data written before
(row checksums, Redis values), and the project's state as mig-plan captures it.

Slow (each migration takes minutes on a loaded machine): ``pytest -m destructive
tests/integration/test_migrun_e2e.py``. The prober's figures of each full run are printed
(``-s``) and written beside the run (``probe_summary.json``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from revivadiag.lab import LabInstance
from revivadiag.migrate import labplans, readiness
from revivadiag.migrate.journal import Journal, list_journals, read_state
from revivadiag.migrate.model import Context, StepSpec, StepStatus
from revivadiag.migrate.plan import load_plan, write_plan
from revivadiag.migrate.state import capture_state, diff_states
from revivadiag.migrate.steps.engine import name_of
from revivadiag.migrate.steps.proxies import project_roles

#: a migration of a lab takes 5-15 minutes on a loaded 2-core machine (more than the suite's
#: default per-test timeout); the kill-at-every-step test runs one resume per step
pytestmark = [pytest.mark.integration, pytest.mark.destructive, pytest.mark.slow,
              pytest.mark.timeout(5400)]

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 1800
#: fields that change on any restart (not part of what a rollback restores)
VOLATILE = ("id", "health", "status", "ip", "started")


@pytest.fixture
def leftovers(engine: docker.DockerClient) -> Any:
    """Prefixes whose networks made by a migration (the target's) are removed after the test,
    once the lab itself is down (requested before ``lab_factory``: torn down after it)."""
    prefixes: list[str] = []
    yield prefixes
    for prefix in prefixes:
        for net in engine.networks.list(names=[f"{prefix}_"]):
            if net.name.startswith(f"{prefix}_") and not net.attrs.get("Containers"):
                net.remove()


class Env:
    """A private journal root and output folder for one test's CLI runs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.journals = tmp / "journals"
        self.vars = {**os.environ, "PYTHONPATH": str(ROOT),
                     "REVIVADIAG_MIGRATIONS_DIR": str(self.journals)}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "revivadiag", *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.vars,
                              timeout=RUN_TIMEOUT_S, check=False, cwd=self.tmp)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), env=self.vars, cwd=self.tmp, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def only_id(self, project: str) -> str:
        found = list_journals(project, self.journals)
        assert len(found) == 1, found
        return found[0].migration_id

    def state(self, project: str, mid: str) -> Any:
        return Journal.open(project, mid, self.journals).state()


def plan_for(engine: docker.DockerClient, lab: LabInstance, folder: Path,
             keep: Callable[[StepSpec], bool] | None = None) -> Path:
    """The shipped plan of the lab's stack, planned against the running instance."""
    plan = labplans.plan_lab(engine, lab.prefix, plan_dir=folder)
    if keep is not None:
        plan.steps = [s for s in plan.steps if keep(s)]
    return write_plan(plan, folder / "plan.yml")


def seed_data(engine: docker.DockerClient, project: str, run_dir: Path) -> dict[str, Any]:
    """Rows and Redis keys written before the migration; the data fingerprint after."""
    roles = project_roles(engine, project)
    db = readiness.role_container(engine, project, "database", roles)
    assert db is not None
    readiness.Psql(engine, db).script(
        b"CREATE TABLE migrun_rows (id serial PRIMARY KEY, body text NOT NULL);"
        b"INSERT INTO migrun_rows (body) SELECT md5(g::text) FROM generate_series(1, 500) g;")
    cache = readiness.role_container(engine, project, "cache", roles)
    assert cache is not None
    password = readiness.redis_password(cache, readiness._env_of_all(engine, project))
    readiness._redis(engine, name_of(cache), password,
                     [f"SET migrun:{i} value-{i}" for i in range(50)])
    return data_of(engine, project, run_dir)


def data_of(engine: docker.DockerClient, project: str, run_dir: Path) -> dict[str, Any]:
    ctx = Context(project=project, client=engine, run_dir=run_dir)
    keys = [f"migrun:{i}" for i in range(50)]
    return readiness.data_fingerprint(ctx, dump=False, redis_keys=keys)


def same_data(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return readiness.compare_fingerprints(before, after)


def lasting_diff(a: Any, b: Any) -> list[dict[str, str]]:
    """diff_states without what any restart changes (ids, health, addresses, start times)."""
    frame = diff_states(a, b)
    keep = ~frame["field"].astype(str).str.contains("|".join(VOLATILE))
    return [dict(r) for r in frame[keep].astype(str).to_dict("records")]


def diagnose_errors(project: str) -> list[str]:
    from revivadiag.migrate.steps.data import diagnose_errors as errors

    ctx = Context(project=project, client=docker.from_env())
    return errors(ctx, "development")


def figures(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "probe_summary.json").read_text())
    keep = ("sent", "failed", "failed_by_step", "longest_stall_ms", "p99_ms",
            "p99_during_switch_ms", "longest_stall_during_switch_ms", "ws_reconnects",
            "ws_unclean_closes", "session")
    return {k: summary.get(k) for k in keep}


def kill_when(env: Env, proc: subprocess.Popen[str], project: str, step: str,
              after_s: float = 0.0, timeout_s: float = 900) -> None:
    """SIGKILL ``proc`` ``after_s`` seconds after the journal shows ``step``'s intent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = list_journals(project, env.journals)
        if found:
            st = read_state(found[0].path)
            if step in st.steps and st.steps[step].status in (
                    StepStatus.IN_PROGRESS, StepStatus.COMPLETED):
                time.sleep(after_s)
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"step {step} never started (rc {proc.poll()}): "
                         f"{proc.stderr.read()[-2000:] if proc.stderr else ''}")


# ---------------------------------------------------------------- the full runs


@pytest.mark.parametrize("variant", [
    "current",
    "shop-current",
])
def test_full_migration_through_the_runbook(
        engine: docker.DockerClient, leftovers: list[str],
        lab_factory: Callable[..., LabInstance], tmp_path: Path, variant: str) -> None:
    """Gate (exit 3, nothing changed), approve, the runbook runs every step: no error
    finding, the data written before is there with equal checksums, Compose owns the end
    state; a second run of the same plan is refused while one holds the lock; a stale plan
    is refused; re-running the completed migration changes nothing."""
    lab = lab_factory(variant)
    leftovers.append(lab.prefix)
    env = Env(tmp_path)
    data_before = seed_data(engine, lab.prefix, tmp_path)
    errors_before = diagnose_errors(lab.prefix)
    plan = plan_for(engine, lab, tmp_path)
    state_before = capture_state(engine, lab.prefix)

    gate = env.cli("migrate", "run", str(plan))
    assert gate.returncode == 3, gate.stderr
    mid = gate.stdout.strip().splitlines()[-1]
    assert f"revivadiag migrate approve {mid}" in gate.stderr
    assert lasting_diff(state_before, capture_state(engine, lab.prefix)) == []

    # a second run while the lock is held is refused, naming the holder
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from revivadiag.migrate.lock import "
         "ProjectLock; ProjectLock(sys.argv[1], 'm-held', sys.argv[2]).acquire(); "
         "print('held', flush=True); time.sleep(120)", lab.prefix, str(env.journals)],
        env=env.vars, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        locked = env.cli("migrate", "run", str(plan), "--resume", mid, "--approve")
        assert locked.returncode == 2
        assert f"locked by another migration run: migration m-held, pid {holder.pid}" \
            in locked.stderr
    finally:
        holder.kill()
        holder.wait(10)

    assert env.cli("migrate", "approve", mid).returncode == 0
    out = tmp_path / "out"
    run = env.cli("migrate", "run", str(plan), "--resume", mid, "--out", str(out))
    assert run.returncode == 0, run.stderr[-4000:]
    assert (out / "migrate.ipynb").is_file() and (out / "report.html").is_file()
    assert env.state(lab.prefix, mid).status is StepStatus.COMPLETED
    got = figures(out)
    print(f"\n{variant} blue-green figures: {json.dumps(got)}")
    # every blue-green switch, the edge's port move (through the redirect), the network
    # steps and verify lose nothing; a stateful stop-start (PostgreSQL, Redis on their
    # volume) may only where its gap outlasts the prober's 2 s deadline (a heavily loaded
    # machine: the apps retry for 1.8 s), and WebSockets are always closed cleanly
    stateful = {s.id for s in load_plan(plan).steps if s.params.get("stateful")}
    assert set(got["failed_by_step"]) <= stateful, got
    assert got["ws_unclean_closes"] == 0, got
    errors_after = diagnose_errors(lab.prefix)
    # no error the migration brought; the seed's target fixes every one the current had
    # (the shop's target keeps one trade-off by design: its /api/ location re-resolves the
    # api through a variable, which nginx 1.22 cannot pool, so reuse stays low)
    assert [e for e in errors_after if e not in errors_before] == []
    if variant == "current":
        assert errors_after == []
    assert same_data(data_before, data_of(engine, lab.prefix, tmp_path)) == []

    # re-running the completed migration changes nothing
    done = capture_state(engine, lab.prefix)
    again = env.cli("migrate", "run", str(plan), "--resume", mid, "--direct")
    assert again.returncode == 0, again.stderr[-2000:]
    assert lasting_diff(done, capture_state(engine, lab.prefix)) == []

    # the plan was made against the state before: it is stale now
    stale = env.cli("migrate", "run", str(plan), "--approve", "--direct")
    assert stale.returncode == 2 and "changed since the plan was made" in stale.stderr
    assert len(list_journals(lab.prefix, env.journals)) == 1
    assert lasting_diff(done, capture_state(engine, lab.prefix)) == []


# ---------------------------------------------------------------- faults


def test_failing_step_rolls_back_to_the_exact_before_state(
        engine: docker.DockerClient, leftovers: list[str],
        lab_factory: Callable[..., LabInstance], tmp_path: Path) -> None:
    """The backend replaced before its database: the green backend cannot reach the
    database under its target name, never gets healthy, the step fails, and every step is
    undone: names, networks, aliases, environment, volumes and data as before."""
    lab = lab_factory("current")
    leftovers.append(lab.prefix)
    env = Env(tmp_path)
    data_before = seed_data(engine, lab.prefix, tmp_path)
    plan = plan_for(engine, lab, tmp_path, keep=lambda s: s.kind in (
        "readiness", "network.create") or s.params.get("service") == "backend")
    assert [s.kind for s in load_plan(plan).steps][-1] == "service.replace"
    before = capture_state(engine, lab.prefix)
    run = env.cli("migrate", "run", str(plan), "--approve", "--direct")
    assert run.returncode == 2
    assert "failed" in run.stderr and "rolled back" in run.stderr
    st = env.state(lab.prefix, env.only_id(lab.prefix))
    assert st.status is StepStatus.ROLLED_BACK
    assert lasting_diff(before, capture_state(engine, lab.prefix)) == []
    assert same_data(data_before, data_of(engine, lab.prefix, tmp_path)) == []


def test_sigkill_at_every_step_then_resume_completes(
        engine: docker.DockerClient, leftovers: list[str],
        lab_factory: Callable[..., LabInstance], tmp_path: Path) -> None:
    """The run is SIGKILLed a moment into each step in turn; each time the next process
    resumes it (classifying the interrupted step from the engine) until it completes."""
    lab = lab_factory("current")
    leftovers.append(lab.prefix)
    env = Env(tmp_path)
    data_before = seed_data(engine, lab.prefix, tmp_path)
    plan = plan_for(engine, lab, tmp_path)
    steps = [s.id for s in load_plan(plan).steps]
    proc = env.popen("migrate", "run", str(plan), "--approve", "--direct")
    kill_when(env, proc, lab.prefix, steps[0], after_s=1.0)
    mid = env.only_id(lab.prefix)
    for step in steps[1:]:
        proc = env.popen("migrate", "run", str(plan), "--resume", mid, "--direct")
        kill_when(env, proc, lab.prefix, step, after_s=2.0)
    final = env.cli("migrate", "run", str(plan), "--resume", mid, "--direct")
    assert final.returncode == 0, final.stderr[-4000:]
    st = env.state(lab.prefix, mid)
    assert st.status is StepStatus.COMPLETED
    # a kill lands inside every step that lasts (a fast one may be over before it lands:
    # then the kill is between steps, and the resume simply goes on)
    switches = [s.id for s in load_plan(plan).steps if s.kind == "service.replace"]
    interrupted = [n for n in st.notes if "was interrupted" in n]
    assert all(any(sid in n for n in interrupted) for sid in switches), (switches, interrupted)
    assert diagnose_errors(lab.prefix) == []
    assert same_data(data_before, data_of(engine, lab.prefix, tmp_path)) == []


def test_sigkill_then_rollback_restores(engine: docker.DockerClient, leftovers: list[str],
                                        lab_factory: Callable[..., LabInstance],
                                        tmp_path: Path) -> None:
    """SIGKILL inside the backend's switch, then `migrate rollback ID` (the runbook): the
    project is as it was before the run."""
    lab = lab_factory("current")
    leftovers.append(lab.prefix)
    env = Env(tmp_path)
    data_before = seed_data(engine, lab.prefix, tmp_path)
    plan = plan_for(engine, lab, tmp_path)
    backend = next(s.id for s in load_plan(plan).steps if s.params.get("service") == "backend")
    before = capture_state(engine, lab.prefix)
    proc = env.popen("migrate", "run", str(plan), "--approve", "--direct")
    kill_when(env, proc, lab.prefix, backend, after_s=5.0)
    mid = env.only_id(lab.prefix)
    out = tmp_path / "rollback"
    rb = env.cli("migrate", "rollback", mid, "--out", str(out))
    assert rb.returncode == 0, rb.stderr[-4000:]
    assert (out / "rollback.ipynb").is_file() and (out / "report.html").is_file()
    assert env.state(lab.prefix, mid).status is StepStatus.ROLLED_BACK
    assert lasting_diff(before, capture_state(engine, lab.prefix)) == []
    assert same_data(data_before, data_of(engine, lab.prefix, tmp_path)) == []
