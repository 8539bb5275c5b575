"""``revivadiag migrate plan`` and ``revivadiag migrate draft``.

:func:`register_plan_commands` adds both to the ``migrate`` command's subparsers (the
``migrate`` command itself, with ``run``, ``approve`` and ``rollback``, lives in
:mod:`revivadiag.migrate.cli`, which calls it)::

    revivadiag migrate plan --project P --target target.yml [--target more.yml]
        [--project-directory D] [--env-file F] [--sql 001.sql] [--mode in-place] [-o plan.yml]
    revivadiag migrate plan --lab PREFIX [-o plan.yml] [--template]
    revivadiag migrate draft --project P [-o DIR] [--compose current.yml] [--no-live]

``plan`` reads the target with the user's own Compose CLI (variables from the environment
and ``--env-file``), captures the live project, writes the plan (stdout without ``-o``) and
validates it against the project. ``--lab PREFIX`` plans a lab instance to its stack's
target (variables and secrets from the lab's state); with ``--template`` it writes the form
shipped in ``revivadiag/lab/plans/`` (prefix as ``${LAB_PREFIX}``, no fingerprint).
``draft`` takes a snapshot, diagnoses it and writes ``plan.draft.yml`` and
``target.draft.yml`` for a person to review.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from revivadiag.errors import OutputPathError, ParameterError


def register_plan_commands(sub: Any) -> None:
    """Add ``plan`` and ``draft`` to the ``migrate`` command's subparsers."""
    p = sub.add_parser("plan", help="plan a migration of a running project to target compose "
                       "files (a fingerprinted plan.yml)",
                       description="Plan the migration of a running Compose project to the "
                       "target given as compose files. Nothing is changed.")
    p.add_argument("--project", help="the Compose project (label com.docker.compose.project)")
    p.add_argument("--target", action="append", default=[], metavar="FILE",
                   help="a target compose file (repeat for several, in Compose's order)")
    p.add_argument("--project-directory", metavar="DIR",
                   help="the target's project directory (default: the first file's)")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="variables Compose substitutes in the target (repeatable; the "
                   "environment wins)")
    p.add_argument("--sql", action="append", default=[], metavar="FILE",
                   help="a SQL migration to run once the database is in its target form")
    p.add_argument("--mode", choices=("blue-green", "in-place"), default="blue-green")
    p.add_argument("--name", help="the plan's name (default <project>-to-<target>)")
    p.add_argument("--lab", metavar="PREFIX",
                   help="plan the lab instance PREFIX to its stack's target")
    p.add_argument("--template", action="store_true",
                   help="with --lab: write the shipped template form (no fingerprint)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the plan here (default: stdout)")
    p.add_argument("--docker-host", help="the engine (default DOCKER_HOST or the local socket)")
    p.set_defaults(func=run_plan)

    d = sub.add_parser("draft", help="draft a plan from the project's findings, for review",
                       description="Diagnose the project and draft a plan and a target compose "
                       "file from its findings. Nothing is changed.")
    d.add_argument("--project", required=True, help="the Compose project")
    d.add_argument("-o", "--output", metavar="DIR",
                   help="directory for plan.draft.yml and target.draft.yml "
                   "(default migrate-draft-<project>)")
    d.add_argument("--compose", action="append", default=[], metavar="FILE",
                   help="the project's compose files (default: those its labels name)")
    d.add_argument("--environment", choices=("development", "production"),
                   default="development")
    d.add_argument("--no-live", action="store_true",
                   help="skip the live checks (no requests to the proxy)")
    d.add_argument("--docker-host", help="the engine (default DOCKER_HOST or the local socket)")
    d.set_defaults(func=run_draft)


def _output_file(path: str | None) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise OutputPathError(str(out), "is a directory; give a file name")
    if not out.parent.exists():
        raise OutputPathError(str(out), f"{out.parent} does not exist")
    return out


def run_plan(args: argparse.Namespace) -> int:
    """``migrate plan``."""
    from revivadiag.engine.client import connect
    from revivadiag.migrate import labplans
    from revivadiag.migrate.plan import dump_plan, validate_plan, write_plan
    from revivadiag.migrate.planner import make_plan

    out = _output_file(args.output)
    if args.lab is None and (not args.project or not args.target):
        raise ParameterError("arguments", "", "give --project and --target FILE "
                             "(or --lab PREFIX)")
    if args.template and args.lab is None:
        raise ParameterError("--template", True, "only with --lab PREFIX")
    client = connect(args.docker_host)
    plan_dir = out.resolve().parent if out is not None else None
    if args.lab is not None:
        where = labplans.PLANS_DIR if args.template else (plan_dir or Path.cwd())
        plan = labplans.plan_lab(client, args.lab, plan_dir=where)
        if args.template:
            text = labplans.as_template(plan, args.lab)
            _emit(text, out)
            return 0
    else:
        plan = make_plan(client, args.project, args.target,
                         project_directory=args.project_directory, env_files=args.env_file,
                         sql_files=args.sql, mode=args.mode, name=args.name,
                         plan_dir=plan_dir)
    if out is not None:
        write_plan(plan, out)
        plan.path = out
    validate_plan(plan, client)
    if out is None:
        sys.stdout.write(dump_plan(plan))
    kinds = [s.kind for s in plan.steps]
    print(f"plan {plan.name}: {len(kinds)} steps ({kinds.count('service.replace')} service "
          f"replacements), fingerprint {plan.fingerprint}"
          + (f", written to {out}" if out is not None else ""), file=sys.stderr)
    return 0


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(str(out), exc.strerror or str(exc)) from exc
    print(f"written to {out}", file=sys.stderr)


def run_draft(args: argparse.Namespace) -> int:
    """``migrate draft``."""
    from revivadiag.analyze.diagnosis import diagnose
    from revivadiag.collect.pipeline import snapshot
    from revivadiag.migrate.draft import draft, write_draft

    out = Path(args.output or f"migrate-draft-{args.project}")
    if out.exists() and not out.is_dir():
        raise OutputPathError(str(out), "is a file; give a directory")
    snap = snapshot(project=args.project, docker_host=args.docker_host)
    diagnosis = diagnose(snap, environment=args.environment, live=not args.no_live,
                         docker_host=args.docker_host)
    result = draft(snap, diagnosis, files=args.compose or None)
    plan_path, target_path = write_draft(result, out)
    changes = sum(1 for s in result.plan.steps if s.kind == "service.replace")
    directory = result.plan.target.project_directory
    print(f"draft for {args.project}: {plan_path} ({len(result.plan.steps)} steps, {changes} "
          f"service replacements) and {target_path}; review both, then (with the variables "
          f"the files use in the environment): revivadiag migrate plan --project "
          f"{args.project} --target {target_path} --project-directory {directory} -o plan.yml")
    return 0
