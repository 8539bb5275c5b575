"""The executor: approval gate, steps journalled one by one, automatic rollback, resume.

A run of a plan (:class:`RunPlan`, what the executor needs of mig-plan's ``Plan``):

1. **lock** the project (:mod:`revivadiag.migrate.lock`; a second run is refused);
2. a new run checks the plan is **fresh** (the live fingerprint is the planned one) and
   valid, then journals ``started``; ``--resume ID`` reopens that journal instead (the plan
   file must be the one the run started with: same sha256);
3. the **approval gate**: a run nobody approved stops here, before its first change, with
   :class:`~revivadiag.errors.ApprovalRequired` (the CLI exits :data:`EXIT_NOT_APPROVED`)
   and says how to approve (``revivadiag migrate approve ID``, then ``run PLAN --resume
   ID``); ``--approve`` (or the runbook's ``approve=True``) records the approval and goes on;
4. **steps** in plan order: ``before = capture``, ``undo = inverse(before)``, journal
   ``intent`` (fsync'd), ``ctx.mark(step)``, ``apply``, journal ``result``. A completed step
   is skipped (re-running a completed migration changes nothing). An interrupted step (intent
   without outcome: the process died inside it) is classified from the live engine:
   ``applied`` continues, ``not_applied`` re-applies, ``partial`` is undone, then re-applied;
5. a step that raises is journalled ``failed``; it and every completed step are undone in
   reverse order (``rolled_back`` each) and :class:`~revivadiag.errors.StepFailed` raised;
6. ``finished``; the lock is released (a SIGKILL releases it too: it is a ``flock``).

:func:`rollback` undoes a run step by step in reverse, after checking every completed step's
``drift`` (refused with the drift listed unless ``force``). :func:`dry_run` lists each step's
Docker operations and changes nothing (no journal, no lock).

The prober (mig-probe's :mod:`revivadiag.migrate.prober`) runs through every non-dry run; its
``mark`` is the context's, so each failed request is tagged with the running step.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pandas as pd

from revivadiag.errors import (
    ApprovalRequired,
    JournalError,
    MigrationError,
    MigrationNotFound,
    RevivadiagError,
    RollbackRefused,
    StepFailed,
)
from revivadiag.migrate.journal import (
    Journal,
    PgMirror,
    RunState,
    StepState,
    check_name,
    journal_root,
    list_journals,
    new_migration_id,
    read_state,
)
from revivadiag.migrate.lock import ProjectLock
from revivadiag.migrate.model import Applied, Context, Mode, Step, StepSpec, StepStatus

#: exit code of ``revivadiag migrate run`` when the run is not approved (nothing changed)
EXIT_NOT_APPROVED = 3
#: attempts (and seconds between them) to reconcile the mirror once the run has finished
FINAL_SYNC_TRIES = (0.0, 2.0, 5.0)


@dataclass(frozen=True)
class RunPlan:
    """What the executor needs of a plan."""

    name: str
    project: str
    steps: tuple[StepSpec, ...]
    fingerprint: str = ""
    mode: Mode = Mode.BLUE_GREEN
    path: str = ""
    sha256: str = ""
    target_files: tuple[Path, ...] = ()
    project_directory: Path | None = None
    compose_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    prober: Mapping[str, Any] | None = None
    source: Any = None  # mig-plan's Plan, when there is one


class ProberLike(Protocol):
    def start(self) -> Any: ...
    def mark(self, step_id: str | None) -> None: ...
    def stop(self) -> Any: ...


@dataclass
class Hooks:
    """The parts the executor calls (replaced by test doubles in the tests)."""

    build: Callable[[StepSpec], Step]
    #: raises when the plan is stale or invalid against the live state (changes nothing)
    check: Callable[[RunPlan, Any], None] = lambda plan, client: None
    #: a started prober for (client, plan), or None when none can run
    prober: Callable[[Any, RunPlan], ProberLike | None] = lambda client, plan: None
    #: mirror the journal into PostgreSQL
    mirror: bool = True


def file_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def who_am_i() -> str:
    """``user@host`` of this process (recorded as who started or approved a run)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def spec_record(spec: StepSpec) -> dict[str, Any]:
    return {"id": spec.id, "kind": spec.kind, "params": dict(spec.params)}


def specs_of(state_record: Mapping[str, Any]) -> tuple[StepSpec, ...]:
    """The step specs a ``started`` record holds."""
    return tuple(StepSpec(str(s["id"]), str(s["kind"]), dict(s.get("params") or {}))
                 for s in state_record.get("steps") or [])


def started_record(journal: Journal) -> dict[str, Any]:
    rec = next((r for r in journal.records if r.get("event") == "started"), None)
    if rec is None:
        raise JournalError(str(journal.path), "no 'started' record")
    return rec


def find_journal(migration_id: str, project: str | None = None,
                 root: str | Path | None = None) -> Journal:
    """The journal of ``migration_id`` (searched in every project's folder when none given)."""
    check_name("migration id", migration_id)
    if project:
        return Journal.open(project, migration_id, root)
    found = [e for e in list_journals(None, root) if e.migration_id == migration_id]
    if not found:
        raise MigrationNotFound(migration_id, str(journal_root(root)),
                                [e.migration_id for e in list_journals(None, root)])
    return Journal.load(found[0].path)


def approve(migration_id: str, *, who: str | None = None, how: str = "cli",
            project: str | None = None, root: str | Path | None = None) -> RunState:
    """Record that ``who`` approved the run (under the project's lock)."""
    journal = find_journal(migration_id, project, root)
    with ProjectLock(journal.project, f"{migration_id} (approve)", root):
        journal = Journal.load(journal.path)
        st = journal.state()
        if st.finished:
            raise MigrationError(f"migration {migration_id} has finished ({st.status}); "
                                 "nothing to approve")
        if not st.approved:
            journal.append("approved", who=who or who_am_i(), how=how)
    return journal.state()


# ---------------------------------------------------------------- the executor


@dataclass
class StepOutcome:
    """What one step did in this process."""

    id: str
    kind: str
    status: StepStatus
    duration_s: float = 0.0
    note: str = ""


class Executor:
    """One run of a plan, step by step (the runbook calls :meth:`run_step` once per cell)."""

    def __init__(self, plan: RunPlan, ctx: Context, journal: Journal, hooks: Hooks,
                 lock: ProjectLock) -> None:
        self.plan = plan
        self.ctx = ctx
        self.journal = journal
        self.hooks = hooks
        self.lock = lock
        self.steps: dict[str, Step] = {s.id: hooks.build(s) for s in plan.steps}
        self.order = [s.id for s in plan.steps]
        self.outcomes: list[StepOutcome] = []
        self.prober: ProberLike | None = None
        self.probe_report: Any = None
        self.mirror: PgMirror | None = None
        self.closed = False
        for sid, step_state in journal.state().steps.items():  # results of earlier attempts
            if step_state.status is StepStatus.COMPLETED and step_state.result is not None:
                ctx.results[sid] = step_state.result

    @property
    def migration_id(self) -> str:
        return self.journal.migration_id

    def state(self) -> RunState:
        return self.journal.state()

    def log(self, line: str) -> None:
        self.ctx.log(line)

    # -- lifecycle

    def start_prober(self) -> None:
        """Start the prober (a stack it cannot probe is noted in the journal, not fatal:
        the prober measures the run, it does not gate it)."""
        if self.prober is not None or self.ctx.dry_run:
            return
        try:
            self.prober = self.hooks.prober(self.ctx.client, self.plan)
        except RevivadiagError as exc:
            self.journal.append("note", text=f"prober not started: {exc}")
            self.log(f"prober not started: {exc}")
            return
        if self.prober is not None:
            self.ctx.mark = self.prober.mark

    def pending(self) -> list[str]:
        """Step ids not completed yet, in plan order."""
        st = self.state()
        return [sid for sid in self.order if st.steps[sid].status is not StepStatus.COMPLETED]

    def run_all(self) -> RunState:
        """Every pending step, then :meth:`finish`."""
        for sid in self.pending():
            self.run_step(sid)
        return self.finish()

    def run_step(self, step_id: str) -> StepOutcome:
        """Run one step (resuming it when it was interrupted). On failure the run is rolled
        back and :class:`StepFailed` raised."""
        if step_id not in self.steps:
            raise MigrationError(f"no step {step_id!r} in plan {self.plan.name!r}")
        st = self.state()
        if st.finished and st.status is not StepStatus.COMPLETED:
            raise MigrationError(f"migration {self.migration_id} has ended {st.status}")
        known = st.steps[step_id]
        step = self.steps[step_id]
        if known.status is StepStatus.COMPLETED:
            return self._record(StepOutcome(step_id, step.spec.kind, StepStatus.COMPLETED,
                                            note="already completed"))
        t0 = time.monotonic()
        note = ""
        if known.status is StepStatus.IN_PROGRESS:  # the process died inside it
            note = self._resume_interrupted(step, known)
            if note.startswith("applied"):
                return self._record(StepOutcome(step_id, step.spec.kind, StepStatus.COMPLETED,
                                                time.monotonic() - t0, note))
        try:
            before = step.capture(self.ctx)
            undo = step.inverse(before)
        except Exception as exc:
            self.journal.append("intent", step=step_id, kind=step.spec.kind,
                                migration_type=step.spec.migration_type, before={}, undo={})
            self._fail(step_id, exc, undo_failed_step=False)
        self.journal.append("intent", step=step_id, kind=step.spec.kind,
                            migration_type=step.spec.migration_type, before=before, undo=undo)
        self.ctx.mark(step_id)
        self.log(f"step {step_id} ({step.spec.kind}) ...")
        try:
            result = step.apply(self.ctx, before)
        except Exception as exc:
            self._fail(step_id, exc, undo_failed_step=True)
        finally:
            self.ctx.mark(None)
        self.journal.append("result", step=step_id, result=result)
        self.ctx.results[step_id] = result
        return self._record(StepOutcome(step_id, step.spec.kind, StepStatus.COMPLETED,
                                        time.monotonic() - t0, note))

    def _record(self, outcome: StepOutcome) -> StepOutcome:
        self.outcomes.append(outcome)
        self.log(f"step {outcome.id}: {outcome.status}"
                 + (f" ({outcome.note})" if outcome.note else "")
                 + (f" in {outcome.duration_s:.1f} s" if outcome.duration_s else ""))
        return outcome

    def _resume_interrupted(self, step: Step, known: StepState) -> str:
        before, undo = known.before or {}, known.undo or {}
        applied = step.classify(self.ctx, before)
        self.journal.append("note", text=f"resume: step {known.id} was interrupted; the live "
                                         f"state says {applied}")
        if applied is Applied.APPLIED:
            self.journal.append("result", step=known.id,
                                result={"resumed_as": str(Applied.APPLIED)})
            self.ctx.results[known.id] = {"resumed_as": str(Applied.APPLIED)}
            return "applied before the crash"
        if applied is Applied.PARTIAL:
            step.undo(self.ctx, before, undo)
            self.journal.append("rolled_back", step=known.id, reason="partly applied")
            return "partly applied: undone, re-applied"
        return "not applied: re-applied"

    def _fail(self, step_id: str, exc: BaseException, *, undo_failed_step: bool) -> NoReturn:
        reason = " ".join(str(exc).split())[:500] or type(exc).__name__
        self.journal.append("failed", step=step_id, error=f"{type(exc).__name__}: {reason}")
        self.log(f"step {step_id} FAILED: {reason}; rolling back")
        to_undo = ([step_id] if undo_failed_step else []) + \
            [s.id for s in reversed(self.state().completed())]
        done, errors = self._undo(to_undo)
        status = StepStatus.ROLLED_BACK if not errors else StepStatus.FAILED
        self.journal.append("finished", status=str(status))
        raise StepFailed(self.migration_id, step_id, reason, done, errors) from exc

    def _undo(self, step_ids: Sequence[str], forced: bool = False) -> tuple[list[str], list[str]]:
        st = self.state()
        done: list[str] = []
        errors: list[str] = []
        for sid in step_ids:
            known = st.steps[sid]
            step = self.steps[sid]
            self.ctx.mark(f"undo:{sid}")
            try:
                step.undo(self.ctx, known.before or {}, known.undo or {})
            except Exception as exc:  # keep undoing the others
                errors.append(f"{sid}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
                continue
            finally:
                self.ctx.mark(None)
            self.journal.append("rolled_back", step=sid, **({"forced": True} if forced else {}))
            self.ctx.results.pop(sid, None)
            done.append(sid)
        return done, errors

    def rollback(self, force: bool = False) -> RunState:
        """Undo every completed (and the interrupted) step in reverse; refuse on drift."""
        st = self.state()
        if st.finished and st.status is StepStatus.ROLLED_BACK:
            return st
        drift: list[str] = []
        for known in st.completed():
            if (known.result or {}).get("resumed_as"):
                continue  # what it left was not journalled (it finished as the process died)
            drift += [f"{known.id}: {line}"
                      for line in self.steps[known.id].drift(self.ctx, known.result or {})]
        if drift and not force:
            raise RollbackRefused(self.migration_id, drift)
        if drift:
            self.journal.append("note", text="rollback forced over drift: " + "; ".join(drift))
        order = [s.id for s in reversed(st.completed())]
        interrupted = st.interrupted()
        if interrupted is not None:
            step = self.steps[interrupted.id]
            applied = step.classify(self.ctx, interrupted.before or {})
            self.journal.append("note", text=f"rollback: step {interrupted.id} was interrupted; "
                                             f"the live state says {applied}")
            if applied is Applied.NOT_APPLIED:
                self.journal.append("rolled_back", step=interrupted.id, reason="not applied")
            else:
                order.insert(0, interrupted.id)
        done, errors = self._undo(order, forced=bool(drift))
        if errors:
            self.journal.append("finished", status=str(StepStatus.FAILED))
            raise MigrationError(f"migration {self.migration_id}: rollback incomplete; "
                                 f"undone: {', '.join(done) or 'none'}; failed: "
                                 + "; ".join(errors))
        self.journal.append("finished", status=str(StepStatus.ROLLED_BACK))
        return self.state()

    def finish(self) -> RunState:
        """Journal ``finished`` (completed) when every step is; stop the prober."""
        st = self.state()
        if not st.finished and not self.pending():
            self.journal.append("finished", status=str(StepStatus.COMPLETED))
        return self.close()

    def close(self) -> RunState:
        """Stop the prober, reconcile the mirror (bounded), release the lock."""
        if self.closed:
            return self.state()
        self.closed = True
        try:
            if self.prober is not None:
                self.probe_report = self.prober.stop()
                self.write_probe_report()
            if self.mirror is not None:
                tries = FINAL_SYNC_TRIES if self.state().finished else (0.0,)
                if not self.mirror.flush(self.journal, tries):
                    self.log(f"mirror not reconciled: {self.mirror.status.last_error} "
                             "(the local journal is complete; the next run reconciles it)")
                self.mirror.close()
        finally:
            self.lock.release()
        return self.state()

    def write_probe_report(self) -> list[Path]:
        """``probe_requests.csv`` (every request: t, kind, path, status, ok, latency_ms, step,
        error_type) and ``probe_summary.json`` into the run directory."""
        import json

        report = self.probe_report
        if report is None:
            return []
        folder = Path(self.ctx.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / "probe_requests.csv"
        report.requests.to_csv(csv, index=False)
        summary = folder / "probe_summary.json"
        summary.write_text(json.dumps(report.summary(self.steps_frame()), indent=1,
                                      default=str) + "\n", encoding="utf-8")
        return [csv, summary]

    def steps_frame(self) -> pd.DataFrame:
        """One row per step: id, kind, status, started, ended, duration_s (from the journal)."""
        return steps_frame(self.state())


def steps_frame(st: RunState) -> pd.DataFrame:
    """The journal's steps as a frame (what the timeline draws its boundaries from):
    ``ended`` is when its result (or failure) was journalled, ``duration_s`` how long its
    last attempt took; a later undo does not move them."""
    rows = []
    for s in st.steps.values():
        started = pd.to_datetime(s.started, utc=True) if s.started else pd.NaT
        end_text = s.applied or (s.ended if s.status is not StepStatus.ROLLED_BACK else "")
        ended = pd.to_datetime(end_text, utc=True) if end_text else pd.NaT
        duration = (ended - started).total_seconds() if s.started and end_text else float("nan")
        rows.append({"id": s.id, "kind": s.kind, "status": str(s.status), "started": started,
                     "ended": ended, "duration_s": duration, "attempts": s.attempts,
                     "error": s.error})
    return pd.DataFrame(rows, columns=["id", "kind", "status", "started", "ended",
                                       "duration_s", "attempts", "error"])


# ---------------------------------------------------------------- opening a run


def make_context(plan: RunPlan, client: Any, *, mode: Mode | None = None,
                 run_dir: Path | None = None, log: Callable[[str], None] | None = None,
                 dry_run: bool = False) -> Context:
    return Context(project=plan.project, client=client, mode=mode or plan.mode,
                   dry_run=dry_run, run_dir=run_dir or Path("."),
                   target_files=plan.target_files, project_directory=plan.project_directory,
                   compose_env=dict(plan.compose_env), log=log or (lambda line: None))


def open_run(plan: RunPlan, client: Any, hooks: Hooks, *, resume: str | None = None,
             approve: bool = False, approve_how: str = "--approve", who: str | None = None,
             mode: Mode | None = None, root: str | Path | None = None,
             run_dir: Path | None = None, log: Callable[[str], None] | None = None) -> Executor:
    """Lock, journal (new or resumed), approval gate, prober: an :class:`Executor` ready to
    run its steps. Raises :class:`ApprovalRequired` (lock released) at the gate."""
    who = who or who_am_i()
    migration_id = resume or new_migration_id(plan.name)
    lock = ProjectLock(plan.project, migration_id, root).acquire()
    try:
        if resume:
            journal = Journal.open(plan.project, resume, root)
            rec = started_record(journal)
            if plan.sha256 and rec.get("plan_sha256") and rec["plan_sha256"] != plan.sha256:
                raise MigrationError(
                    f"migration {resume} started with another plan file "
                    f"({rec['plan_sha256']}); {plan.path or 'this plan'} is {plan.sha256}")
            st = journal.state()
            if st.finished and st.status is not StepStatus.COMPLETED:
                raise MigrationError(f"migration {resume} has ended {st.status}; start a new run")
            failed = [s.id for s in st.steps.values() if s.status is StepStatus.FAILED]
            if failed and not st.finished:
                raise MigrationError(
                    f"migration {resume}: step {failed[0]} failed and the process died while "
                    f"rolling back; finish that with `revivadiag migrate rollback {resume}`")
            mode = Mode(st.mode) if st.mode else mode
            if not any(s.started for s in st.steps.values()) and not st.finished:
                hooks.check(plan, client)  # nothing changed yet: the plan must still be fresh
        else:
            hooks.check(plan, client)  # stale or invalid: refused, nothing written
            journal = Journal.create(plan.project, migration_id, root)
            journal.append("started", plan=plan.name, plan_path=plan.path,
                           plan_sha256=plan.sha256, fingerprint=plan.fingerprint,
                           mode=str(mode or plan.mode), who=who, project=plan.project,
                           steps=[spec_record(s) for s in plan.steps])
        ctx = make_context(plan, client, mode=mode, run_dir=run_dir, log=log)
        executor = Executor(plan, ctx, journal, hooks, lock)
        if hooks.mirror:
            executor.mirror = PgMirror(client, plan.project)
            journal.listeners.append(executor.mirror)
            executor.mirror(journal)  # reconcile what an earlier process left unmirrored
        st = journal.state()
        if approve and not st.approved and not st.finished:
            journal.append("approved", who=who, how=approve_how)
        elif not journal.state().approved:
            raise ApprovalRequired(migration_id, approval_hint(migration_id, plan.path))
    except BaseException:
        lock.release()
        raise
    return executor


def approval_hint(migration_id: str, plan_path: str) -> str:
    """How to approve a run (printed at the gate)."""
    plan = plan_path or "PLAN"
    return (f"To approve: `revivadiag migrate approve {migration_id}`, then continue with "
            f"`revivadiag migrate run {plan} --resume {migration_id}` (or pass --approve).")


def run(plan: RunPlan, client: Any, hooks: Hooks, **kwargs: Any) -> Executor:
    """Open the run and execute every pending step; the closed :class:`Executor`."""
    executor = open_run(plan, client, hooks, **kwargs)
    try:
        executor.start_prober()
        executor.run_all()
    finally:
        executor.close()
    return executor


def rollback(migration_id: str, client: Any, hooks: Hooks, *, force: bool = False,
             project: str | None = None, root: str | Path | None = None,
             plan: RunPlan | None = None, log: Callable[[str], None] | None = None) -> Executor:
    """Undo a run (see :meth:`Executor.rollback`), steps rebuilt from its journal."""
    journal = find_journal(migration_id, project, root)
    lock = ProjectLock(journal.project, migration_id, root).acquire()
    try:
        journal = Journal.load(journal.path)
        rec = started_record(journal)
        specs = specs_of(rec)
        base = plan or RunPlan(name=str(rec.get("plan", "")), project=journal.project,
                               steps=specs)
        base = replace(base, steps=specs, project=journal.project)
        ctx = make_context(base, client, mode=Mode(str(rec.get("mode") or base.mode)), log=log)
        executor = Executor(base, ctx, journal, hooks, lock)
    except BaseException:
        lock.release()
        raise
    try:
        if hooks.mirror:
            executor.mirror = PgMirror(client, base.project)
            journal.listeners.append(executor.mirror)
        executor.start_prober()
        executor.rollback(force=force)
    finally:
        executor.close()
    return executor


@dataclass(frozen=True)
class DryRunStep:
    id: str
    kind: str
    operations: tuple[str, ...]


def dry_run(plan: RunPlan, client: Any, hooks: Hooks, *, mode: Mode | None = None
            ) -> list[DryRunStep]:
    """Every step with the Docker operations it would do; nothing is changed or written."""
    hooks.check(plan, client)
    ctx = make_context(plan, client, mode=mode, dry_run=True)
    return [DryRunStep(s.id, s.kind, tuple(hooks.build(s).describe(ctx))) for s in plan.steps]


def dry_run_frame(steps: Sequence[DryRunStep]) -> pd.DataFrame:
    """One row per (step, operation)."""
    rows = [{"step": s.id, "kind": s.kind, "operation": op}
            for s in steps for op in (s.operations or ("(no Docker operation)",))]
    return pd.DataFrame(rows, columns=["step", "kind", "operation"])


# ---------------------------------------------------------------- listing runs


def runs_frame(project: str | None = None, root: str | Path | None = None) -> pd.DataFrame:
    """``revivadiag migrations``: one row per journal: id, project, plan, status, steps done,
    started, finished, approved by, lock holder."""
    from revivadiag.migrate.lock import describe_holder, holder, lock_path

    rows = []
    holders: dict[str, str] = {}
    for entry in list_journals(project, root):
        try:
            st = read_state(entry.path)
        except JournalError as exc:
            rows.append({"id": entry.migration_id, "project": entry.project,
                         "status": f"unreadable: {exc.reason}"})
            continue
        if entry.project not in holders:
            info = holder(lock_path(entry.project, root))
            holders[entry.project] = "" if info is None else describe_holder(info)
        lock_text = holders[entry.project]
        done = sum(1 for s in st.steps.values() if s.status is StepStatus.COMPLETED)
        status = str(st.status)
        if not st.finished and not st.approved:
            status = "awaiting approval"
        elif not st.finished and entry.migration_id not in lock_text:
            status = f"{st.status} (interrupted)" if st.status is StepStatus.IN_PROGRESS \
                else status
        rows.append({"id": entry.migration_id, "project": entry.project, "plan": st.plan,
                     "status": status, "steps_done": f"{done}/{len(st.steps)}",
                     "started": st.started, "finished": st.finished,
                     "approved_by": st.approved_by,
                     "lock_holder": lock_text if entry.migration_id in lock_text else ""})
    return pd.DataFrame(rows, columns=["id", "project", "plan", "status", "steps_done",
                                       "started", "finished", "approved_by", "lock_holder"])


# ---------------------------------------------------------------- the real parts


def plan_from_file(path: str | Path, *, mode: Mode | str | None = None) -> RunPlan:
    """A :class:`RunPlan` from a plan file (mig-plan's :func:`~revivadiag.migrate.plan.load_plan`):
    its target files resolved, the variables Compose substitutes read from its env files, then
    this process's environment, then, for a lab instance, the lab's own (ports, secrets:
    :func:`revivadiag.migrate.labplans.target_env`). Memory only, never written."""
    from revivadiag.migrate import plan as plan_mod

    path = Path(path)
    plan = plan_mod.load_plan(path)
    env: dict[str, str] = {}
    for env_file in plan.target.env_files:
        env.update(read_env_file(plan.resolve(env_file)))
    env.update(os.environ)
    env.update(lab_env(plan.project))
    plan_mode = Mode(str(mode or plan.mode or Mode.BLUE_GREEN))
    return RunPlan(
        name=plan.name, project=plan.project, steps=tuple(plan.steps),
        fingerprint=plan.fingerprint or "", mode=plan_mode, path=str(path),
        sha256=file_sha256(path), target_files=tuple(plan.target_files()),
        project_directory=plan.target_directory(), compose_env=env, prober=plan.prober,
        source=plan)


def lab_env(project: str) -> dict[str, str]:
    """The target variables of a lab instance named ``project`` ({} for any other project)."""
    from revivadiag.lab.state import load_config

    if load_config(project) is None:
        return {}
    from revivadiag.migrate.labplans import target_env

    return target_env(project)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments and blank lines skipped, one pair of quotes off).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.env"
    >>> _ = p.write_text("# c\\nA=1\\nB='two words'\\n")
    >>> read_env_file(p)
    {'A': '1', 'B': 'two words'}
    """
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip().removeprefix("export ").strip()] = value
    return out


def check_plan(plan: RunPlan, client: Any) -> None:
    """mig-plan's live validation and freshness check (typed ``PlanError``; changes nothing)."""
    from revivadiag.migrate import plan as plan_mod

    source = plan.source
    if source is None:
        return
    plan_mod.check_fresh(source, client)
    plan_mod.validate_plan(source, client)


#: the prober's bound (it stops by itself after this long)
PROBER_MAX_S = 3600.0


def start_prober(client: Any, plan: RunPlan) -> ProberLike | None:
    """mig-probe's prober against the project's proxy, started."""
    from revivadiag.migrate.prober import Prober, probe_target

    target = probe_target(client, plan.project, plan.prober, environ=plan.compose_env or None)
    prober = Prober(target, max_duration_s=PROBER_MAX_S)
    prober.start()
    return prober


def default_hooks(*, mirror: bool = True, probe: bool = True) -> Hooks:
    """The real steps (mig-steps), plan checks (mig-plan) and prober (mig-probe)."""
    from revivadiag.migrate.steps import build

    return Hooks(build=build, check=check_plan,
                 prober=start_prober if probe else (lambda client, plan: None), mirror=mirror)
