"""The cells of ``runbooks/migrate.ipynb`` and ``runbooks/rollback.ipynb``, and their outputs.

Each notebook cell is one call here. ``migrate.ipynb`` holds one *step cell* template
(tagged ``migrate-step``, ``rm.step_cell(session, None)``: every pending step); before
papermill runs it, :func:`prepared_runbook` expands that template into one cell per step of
the plan (``rm.step_cell(session, "<id>")``, under a heading naming the step), so each
step's cell shows the project's state before and after it as a frame diff (mig-plan's
``capture_state`` / ``diff_states``). Run unexpanded (JupyterLab, nbval) the template cell
runs every pending step.

Parameters (``migrate.ipynb``): ``plan`` (path; empty: nothing to run), ``mode``
(``blue-green``/``in-place``; empty: the plan's), ``dry_run``, ``migration_id`` (resume that
run), ``approve`` (record the approval and pass the gate), ``journal_dir``, ``docker_host``.
``rollback.ipynb``: ``migration_id``, ``force``, ``project``, ``journal_dir``, ``docker_host``.

What the executed notebook records (scrapbook): ``migration_id``, ``project``, ``status``,
``steps`` (id, kind, status, duration_s), ``probe`` (the prober's summary: sent, failed,
longest stall, p99).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

STEP_TAG = "migrate-step"
NO_PLAN = "No plan given (parameter `plan`): nothing to run."


@dataclass
class Session:
    """A migration (or rollback) as the runbook drives it."""

    kind: str = "migrate"
    plan: Any = None  # RunPlan
    client: Any = None
    executor: Any = None
    dry: list[Any] | None = None
    diffs: dict[str, pd.DataFrame] = field(default_factory=dict)
    message: str = ""
    #: what rollback.ipynb was asked (migration_id, force, journal_dir)
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return self.executor is None and self.dry is None


def _client(docker_host: str) -> Any:
    from revivadiag.engine.client import connect

    return connect(docker_host or None)


def _log(line: str) -> None:
    print(line, flush=True)


def open_session(*, plan: str = "", mode: str = "", dry_run: bool = False,
                 migration_id: str = "", approve: bool = False, journal_dir: str = "",
                 docker_host: str = "") -> Session:
    """Load the plan; a dry run lists it, a run passes the gate (lock, journal, approval)
    and starts the prober. Raises ApprovalRequired at an unapproved gate."""
    from revivadiag.migrate import run as mr
    from revivadiag.migrate.model import Mode

    if not plan:
        return Session(message=NO_PLAN)
    run_plan = mr.plan_from_file(plan, mode=mode or None)
    client = _client(docker_host)
    hooks = mr.default_hooks()
    session = Session(plan=run_plan, client=client)
    chosen = Mode(mode) if mode else None
    if dry_run:
        session.dry = mr.dry_run(run_plan, client, hooks, mode=chosen)
        session.message = (f"Dry run of {run_plan.name} on {run_plan.project}: "
                           f"{len(session.dry)} steps, nothing changed.")
        return session
    executor = mr.open_run(run_plan, client, hooks, resume=migration_id or None,
                           approve=approve, approve_how="runbook", mode=chosen,
                           root=journal_dir or None, run_dir=Path.cwd(), log=_log)
    executor.start_prober()
    session.executor = executor
    st = executor.state()
    session.message = (f"Migration {executor.migration_id}: plan {run_plan.name} on "
                       f"{run_plan.project}, mode {executor.ctx.mode}, approved by "
                       f"{st.approved_by} at {st.approved_at}; "
                       f"{len(executor.pending())} of {len(executor.order)} steps to run.")
    return session


def overview(session: Session) -> Any:
    """The plan's steps (and the dry run's Docker operations)."""
    from revivadiag.migrate import run as mr

    print(session.message)
    if session.dry is not None:
        return mr.dry_run_frame(session.dry)
    if session.executor is not None:
        return session.executor.steps_frame()[["id", "kind", "status"]]
    return None


def _state(session: Session) -> Any:
    from revivadiag.migrate.state import capture_state

    return capture_state(session.client, session.plan.project)


def step_cell(session: Session, step_id: str | None) -> Any:
    """Run one step (``None``: every pending one); the state diff of what it changed."""
    from revivadiag.migrate import run as mr

    if session.idle:
        print(session.message)
        return None
    if session.dry is not None:
        frame = mr.dry_run_frame(session.dry)
        return frame if step_id is None else frame[frame["step"] == step_id]
    from revivadiag.migrate.state import diff_states

    executor = session.executor
    ids = executor.pending() if step_id is None else [step_id]
    frames = []
    for sid in ids:
        before = _state(session)
        try:
            outcome = executor.run_step(sid)
        except BaseException:  # StepFailed (rolled back already): stop here, lock released
            executor.close()
            raise
        after = _state(session)
        diff = diff_states(before, after)
        session.diffs[sid] = diff
        print(f"step {sid} ({outcome.kind}): {outcome.status}"
              + (f", {outcome.note}" if outcome.note else "")
              + f" in {outcome.duration_s:.1f} s; {len(diff)} changes")
        frames.append(diff.assign(step=sid) if len(ids) > 1 else diff)
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def finish(session: Session) -> Any:
    """Journal the end of the run, stop the prober, release the lock; the steps frame."""
    if session.executor is None:
        return None
    executor = session.executor
    if session.kind == "migrate":
        executor.finish()
    else:
        executor.close()
    st = executor.state()
    print(f"migration {executor.migration_id}: {st.status}")
    summary = probe_summary(session)
    if summary:
        print("prober: " + json.dumps(summary, default=str))
    return executor.steps_frame()


def probe_summary(session: Session) -> dict[str, Any]:
    report = getattr(session.executor, "probe_report", None)
    if report is None:
        return {}
    return dict(report.summary(session.executor.steps_frame()))


def timeline(session: Session) -> Any:
    """The prober's requests over time against the step boundaries (mig-probe's figure)."""
    report = getattr(session.executor, "probe_report", None)
    if report is None:
        return None
    from revivadiag.render.draw import show
    from revivadiag.render.migration import timeline_figure

    return show(timeline_figure(report.requests, session.executor.steps_frame()))


def record(session: Session) -> dict[str, Any]:
    """Record the run's key values (scrapbook) in the executed notebook."""
    from IPython.display import display

    from revivadiag.runbook.record import scrap_output

    executor = session.executor
    scraps: dict[str, Any] = {"runbook": session.kind, "status": "idle", "migration_id": "",
                              "project": "", "steps": [], "probe": {}}
    if session.dry is not None:
        scraps.update(status="dry-run", project=session.plan.project)
    if executor is not None:
        st = executor.state()
        frame = executor.steps_frame()
        scraps.update(
            status=str(st.status), migration_id=executor.migration_id, project=st.project,
            steps=json.loads(frame[["id", "kind", "status", "duration_s"]]
                             .to_json(orient="records")),
            probe=json.loads(json.dumps(probe_summary(session), default=str)))
    for name, value in scraps.items():
        data, metadata = scrap_output(name, value)
        display(data, metadata=metadata, raw=True)  # type: ignore[no-untyped-call]
    return scraps


# ---------------------------------------------------------------- rollback.ipynb


def open_rollback(*, migration_id: str = "", force: bool = False, project: str = "",
                  journal_dir: str = "", docker_host: str = "") -> Session:
    """Reopen a run's journal for :func:`rollback_cell` (nothing is undone yet)."""
    if not migration_id:
        return Session(kind="rollback", message="No migration id given (parameter "
                                                "`migration_id`): nothing to roll back.")
    from revivadiag.migrate import run as mr

    journal = mr.find_journal(migration_id, project or None, journal_dir or None)
    st = journal.state()
    session = Session(kind="rollback", client=_client(docker_host))
    session.plan = mr.RunPlan(name=st.plan, project=journal.project, steps=())
    session.message = (f"Rolling back {migration_id} (plan {st.plan} on {journal.project}, "
                       f"{st.status}){' with --force' if force else ''}.")
    session.request = {"migration_id": migration_id, "force": bool(force),
                       "journal_dir": journal_dir}
    return session


def rollback_cell(session: Session) -> Any:
    """Undo the run (refused with the drift listed unless forced); the state diff."""
    print(session.message)
    req = session.request
    if not req:
        return None
    from revivadiag.migrate import run as mr
    from revivadiag.migrate.state import diff_states

    hooks = mr.default_hooks()
    hooks.check = lambda plan, client: None
    before = _state(session)
    session.executor = mr.rollback(str(req["migration_id"]), session.client, hooks,
                                   force=bool(req["force"]), project=session.plan.project,
                                   root=str(req["journal_dir"]) or None, log=_log)
    after = _state(session)
    return diff_states(before, after)


# ---------------------------------------------------------------- running and writing


def expand_steps(notebook: Mapping[str, Any], steps: list[tuple[str, str]]) -> dict[str, Any]:
    """``notebook`` with its ``migrate-step`` cell replaced by one cell per step.

    >>> nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["migrate-step"]},
    ...                  "source": "rm.step_cell(session, None)", "outputs": []}]}
    >>> [c["source"] for c in expand_steps(nb, [("db", "service.replace")])["cells"]]
    ['### Step `db` (service.replace)', 'rm.step_cell(session, "db")']
    """
    out = copy.deepcopy(dict(notebook))
    cells: list[dict[str, Any]] = []
    for cell in out["cells"]:
        if STEP_TAG not in (cell.get("metadata") or {}).get("tags", []):
            cells.append(cell)
            continue
        for n, (sid, kind) in enumerate(steps, 1):
            cells.append({"cell_type": "markdown", "id": f"step-{n}-title", "metadata": {},
                          "source": f"### Step `{sid}` ({kind})"})
            code = copy.deepcopy(cell)
            code["source"] = f"rm.step_cell(session, {json.dumps(sid)})"
            code["id"], code["outputs"], code["execution_count"] = f"step-{n}", [], None
            cells.append(code)
    out["cells"] = cells
    return out


def prepared_runbook(name: str, folder: Path, values: Mapping[str, Any]) -> Path:
    """The runbook to execute: ``migrate`` expanded to the plan's steps, in a hidden
    scratch file under ``folder``; ``rollback`` as shipped."""
    import nbformat

    from revivadiag.runbook.execute import runbook_path

    source = runbook_path(name)
    if name != "migrate" or not values.get("plan"):
        return source
    from revivadiag.migrate.plan import load_plan

    plan = load_plan(Path(str(values["plan"])))
    nb = nbformat.read(str(source), as_version=4)  # type: ignore[no-untyped-call]
    expanded = expand_steps(nb, [(s.id, s.kind) for s in plan.steps])
    scratch = folder / ".runbook"
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / source.name
    nbformat.write(nbformat.from_dict(expanded), str(path))  # type: ignore[no-untyped-call]
    return path


def write_outputs(out_dir: Path, execution: Any, values: Mapping[str, Any], secrets: set[str],
                  *, started: datetime, runbook: Path, project: str) -> list[Path]:
    """The scrubbed executed notebook and its HTML report; the paths (report last)."""
    import nbformat

    from revivadiag.redact import mask_parameters, secret_scrubber
    from revivadiag.render.report import RunInfo, scrub_notebook, write_html
    from revivadiag.runbook.output import tool_versions
    from revivadiag.runbook.record import scraps_of

    scrubber = secret_scrubber(secrets)
    notebook = scrub_notebook(execution.notebook, scrubber)
    nb_path = out_dir / runbook.name
    nbformat.write(notebook, str(nb_path))  # type: ignore[no-untyped-call]
    scraps = scraps_of(notebook)
    status = str(scraps.get("status", "unknown"))
    failed = execution.error is not None
    outcome = "error" if failed else "passed"
    summary = (f"{runbook.stem} {scraps.get('migration_id', '')}: "
               + ("FAILED (see the failed cell)" if failed else status))
    probe = scraps.get("probe") or {}
    if probe:
        summary += (f"; prober: {probe.get('sent')} sent, {probe.get('failed')} failed, "
                    f"longest stall {probe.get('longest_stall_ms')} ms")
    info = RunInfo(runbook=runbook.stem, project=project, started_at=started,
                   finished_at=datetime.now(UTC), tool_version=tool_versions(),
                   parameters=mask_parameters(dict(values), scrubber), outcome=outcome,
                   summary=summary, extra={"Kernel": execution.kernel_name})
    html = write_html(out_dir / "report.html", notebook, info, scrubber)
    scratch = out_dir / ".runbook"
    if scratch.is_dir():
        for f in scratch.iterdir():
            f.unlink()
        scratch.rmdir()
    return [nb_path, html]
