"""``revivadiag migrate ...`` and ``revivadiag migrations``.

    revivadiag migrate run PLAN [--dry-run] [--mode blue-green|in-place] [--resume ID]
                                [--approve] [--out DIR] [--direct] [--journal-dir DIR]
    revivadiag migrate approve ID [--project P]
    revivadiag migrate rollback ID [--force] [--project P] [--out DIR] [--direct]
    revivadiag migrate plan ... / revivadiag migrate draft ...   (see ``--help``)
    revivadiag migrations [--project P] [--json]

``migrate run`` executes ``runbooks/migrate.ipynb`` with papermill (one cell per step, each
showing the state before and after) and writes the executed notebook and an HTML report with
the prober's timeline into ``--out`` (default ``reports/migrate-<project>-<id>``), as
``diagnose`` does; ``--direct`` runs the same executor in this process and writes only the
journal. The approval gate is passed before any kernel starts.

Exit codes: **0** the run (or rollback) completed; **2** the tool failed, or a step failed and
the run was rolled back (the message says which step and what was undone), or the plan is
stale/invalid, or another run holds the project; **3** the run is not approved: nothing was
changed, and the message says how to approve (``revivadiag migrate approve ID``, then
``revivadiag migrate run PLAN --resume ID``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revivadiag.errors import ApprovalRequired, RunbookError
from revivadiag.migrate.model import Mode

EXIT_OK, EXIT_TOOL_FAILED = 0, 2


def register(subparsers: Any) -> None:
    """Add ``migrate`` (with its own subcommands)."""
    from revivadiag.migrate.run import EXIT_NOT_APPROVED

    migrate = subparsers.add_parser(
        "migrate", help="run, approve or roll back a migration plan; plan and draft one",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = migrate.add_subparsers(dest="migrate_command", metavar="ACTION", required=True)

    run_p = sub.add_parser("run", help="run a plan (dry run, resume, approve)",
                           description="Run PLAN step by step. Exit 3 when the run is not "
                           f"approved (exit code {EXIT_NOT_APPROVED}: nothing changed).")
    run_p.add_argument("plan", type=Path, metavar="PLAN", help="plan file (YAML)")
    run_p.add_argument("--dry-run", action="store_true",
                       help="list every step's Docker operations; change nothing")
    run_p.add_argument("--mode", choices=[m.value for m in Mode],
                       help="replace containers blue-green (default) or in place")
    run_p.add_argument("--resume", metavar="ID", help="continue the run with this migration id")
    run_p.add_argument("--approve", action="store_true",
                       help="record your approval and go on past the gate")
    _common(run_p)
    run_p.set_defaults(func=cmd_run)

    approve_p = sub.add_parser("approve", help="record the approval of a run")
    approve_p.add_argument("migration_id", metavar="ID")
    approve_p.add_argument("--project", help="the run's project (default: searched)")
    approve_p.add_argument("--journal-dir", type=Path, metavar="DIR",
                           help="journal root (default $REVIVADIAG_MIGRATIONS_DIR or "
                           "$XDG_STATE_HOME/revivadiag/migrations)")
    approve_p.set_defaults(func=cmd_approve)

    rb_p = sub.add_parser("rollback", help="undo a run step by step (refused on drift)")
    rb_p.add_argument("migration_id", metavar="ID")
    rb_p.add_argument("--force", action="store_true",
                      help="undo even where the live state drifted from what a step left")
    rb_p.add_argument("--project", help="the run's project (default: searched)")
    _common(rb_p)
    rb_p.set_defaults(func=cmd_rollback)

    from revivadiag.migrate.plan_cli import register_plan_commands

    register_plan_commands(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output directory (default reports/<runbook>-<project>-<id>)")
    p.add_argument("--direct", action="store_true",
                   help="run in this process (no notebook, no HTML report)")
    p.add_argument("--docker-host", metavar="URL", help="engine address; default $DOCKER_HOST")
    p.add_argument("--journal-dir", type=Path, metavar="DIR",
                   help="journal root (default $REVIVADIAG_MIGRATIONS_DIR or "
                   "$XDG_STATE_HOME/revivadiag/migrations)")
    p.add_argument("--kernel", metavar="NAME", help="Jupyter kernel for the runbook")


def _say(text: str) -> None:
    print(f"revivadiag: {text}", file=sys.stderr)


def _client(args: argparse.Namespace) -> Any:
    from revivadiag.engine.client import connect

    return connect(getattr(args, "docker_host", None))


def cmd_run(args: argparse.Namespace) -> int:
    from revivadiag.errors import PlanError
    from revivadiag.migrate import run as mr

    if not args.plan.is_file():
        raise PlanError(str(args.plan), "no such file")
    if args.out is not None:
        from revivadiag.outpaths import check_output_dir

        check_output_dir(args.out)
    plan = mr.plan_from_file(args.plan, mode=args.mode)
    client = _client(args)
    hooks = mr.default_hooks()
    mode = Mode(args.mode) if args.mode else None
    if args.dry_run:
        steps = mr.dry_run(plan, client, hooks, mode=mode)
        print(f"dry run of {plan.name} ({plan.project}, {mode or plan.mode}): "
              f"{len(steps)} steps, nothing changed")
        for i, step in enumerate(steps, 1):
            print(f"{i:2}. {step.id} [{step.kind}]")
            for op in step.operations or ("(no Docker operation)",):
                print(f"      {op}")
        return EXIT_OK
    try:
        if args.direct:
            executor = mr.open_run(plan, client, hooks, resume=args.resume,
                                   approve=args.approve, mode=mode, root=args.journal_dir,
                                   run_dir=args.out or Path.cwd(), log=_say)
            try:
                executor.start_prober()
                executor.run_all()
            finally:
                executor.close()
                _say(f"migration {executor.migration_id}: {executor.state().status}")
                _print_summary(executor)
            return EXIT_OK
        # the gate, in this process: no kernel starts for a run nobody approved
        gate = mr.open_run(plan, client, hooks, resume=args.resume, approve=args.approve,
                           mode=mode, root=args.journal_dir, log=_say)
        gate.close()
    except ApprovalRequired as exc:
        _say(str(exc))
        print(exc.migration_id)
        return mr.EXIT_NOT_APPROVED
    return _run_notebook(args, "migrate", plan.project, gate.migration_id, {
        "plan": str(args.plan.resolve()), "mode": str(mode or ""), "dry_run": False,
        "migration_id": gate.migration_id, "approve": False,
        "journal_dir": str(args.journal_dir.resolve()) if args.journal_dir else "",
        "docker_host": args.docker_host or ""})


def _print_summary(executor: Any) -> None:
    frame = executor.steps_frame()
    print(frame[["id", "kind", "status", "duration_s"]].to_string(index=False))
    report = executor.probe_report
    if report is not None:
        print(json.dumps(report.summary(frame), default=str))


def cmd_approve(args: argparse.Namespace) -> int:
    from revivadiag.migrate import run as mr

    st = mr.approve(args.migration_id, project=args.project, root=args.journal_dir)
    _say(f"migration {st.migration_id} approved by {st.approved_by} at {st.approved_at}; "
         f"continue with: revivadiag migrate run {st.plan_path or 'PLAN'} "
         f"--resume {st.migration_id}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from revivadiag.migrate import run as mr

    journal = mr.find_journal(args.migration_id, args.project, args.journal_dir)
    if args.direct:
        client = _client(args)
        executor = mr.rollback(args.migration_id, client, _rollback_hooks(), force=args.force,
                               project=journal.project, root=args.journal_dir, log=_say)
        _say(f"migration {executor.migration_id}: {executor.state().status}")
        _print_summary(executor)
        return EXIT_OK
    return _run_notebook(args, "rollback", journal.project, args.migration_id, {
        "migration_id": args.migration_id, "force": bool(args.force),
        "project": journal.project,
        "journal_dir": str(args.journal_dir.resolve()) if args.journal_dir else "",
        "docker_host": args.docker_host or ""})


def _rollback_hooks() -> Any:
    from revivadiag.migrate import run as mr

    hooks = mr.default_hooks()
    hooks.check = lambda plan, client: None  # the state has changed: that is the point
    return hooks


def _run_notebook(args: argparse.Namespace, runbook_name: str, project: str, migration_id: str,
                  values: dict[str, Any]) -> int:
    from revivadiag.collect.inventory import read_project_secrets
    from revivadiag.outpaths import check_output_dir
    from revivadiag.runbook import execute as ex
    from revivadiag.runbook import migrate as rm

    out_dir = check_output_dir(args.out or Path("reports") / f"{runbook_name}-{migration_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    _, secrets = read_project_secrets(project, args.docker_host)
    started = datetime.now(UTC)
    runbook = rm.prepared_runbook(runbook_name, out_dir, values)
    _say(f"{runbook_name} {migration_id} ({project}) with {runbook.name} ...")
    execution = ex.execute(runbook, values, kernel_name=args.kernel, cwd=out_dir)
    written = rm.write_outputs(out_dir, execution, values, secrets, started=started,
                               runbook=runbook, project=project)
    for path in written:
        _say(f"wrote {path}")
    print(written[-1])
    if execution.error is not None:
        _say(f"error: {_describe(execution.error)}")
        return EXIT_TOOL_FAILED
    return EXIT_OK


def _describe(error: RunbookError) -> str:
    return f"cell {error.cell}: {error.reason}" if error.cell is not None else error.reason
