"""``revivadiag diagnose``: run the diagnose runbook and write what a reviewer reads.

Writes into ``--out`` (default ``reports/diagnose-<project>-<UTC time>``): the executed
notebook ``diagnose.ipynb``, the report ``report.html`` and ``findings.json`` (plus
``--junit FILE``), all scrubbed of the project's secret values. Exit 0 without an ``error``
finding, 1 with one, 2 when the tool failed (the notebook and report are still written
when a cell failed, and the cell is named).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revivadiag.errors import RunbookError

EXIT_OK, EXIT_ERRORS, EXIT_TOOL_FAILED = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the ``diagnose`` subcommand."""
    parser = subparsers.add_parser(
        "diagnose",
        help="run the diagnose runbook: executed notebook, HTML report, findings.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default reports/diagnose-<project>-<time>)",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="runbook parameter, e.g. -p project revivatech -p environment "
        "production (repeatable; see runbooks/diagnose.ipynb)",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        help="engine address (unix://, tcp://, ssh://); default $DOCKER_HOST",
    )
    parser.add_argument(
        "--runbook",
        default="diagnose",
        metavar="NAME_OR_PATH",
        help="runbook to execute (default: runbooks/diagnose.ipynb)",
    )
    parser.add_argument(
        "--kernel", metavar="NAME", help="Jupyter kernel (default: one running this interpreter)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute the runbook and write its outputs; returns the exit code."""
    from revivadiag.runbook import execute as ex
    from revivadiag.runbook.params import DiagnoseParams, defaults, parse_pairs
    from revivadiag.runbook.secrets import project_secrets

    values = {**defaults(), **parse_pairs(args.parameter)}
    if args.docker_host:
        values["docker_host"] = args.docker_host
    params = DiagnoseParams.resolve(**values)
    runbook = ex.runbook_path(args.runbook)
    project, secrets = project_secrets(params.project_or_none, params.docker_host_or_none)
    values["project"] = project
    out_dir = args.out or default_out_dir(project)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    print(f"revivadiag: diagnosing {project} with {runbook.name} ...", file=sys.stderr)
    execution = ex.execute(runbook, values, kernel_name=args.kernel, cwd=out_dir)
    from revivadiag.runbook import output  # pandas and nbconvert: loaded while the kernel ran

    written = output.write_outputs(
        out_dir, execution, values, secrets, started=started, runbook=runbook, junit=args.junit
    )
    for path in written.paths:
        print(f"revivadiag: wrote {path}", file=sys.stderr)
    print(f"revivadiag: {written.summary} in {execution.duration_s:.1f} s", file=sys.stderr)
    print(written.html)
    if execution.error is not None:
        print(f"revivadiag: error: {describe(execution.error, runbook)}", file=sys.stderr)
        return EXIT_TOOL_FAILED
    return EXIT_ERRORS if written.error_count else EXIT_OK


def describe(error: RunbookError, runbook: Path) -> str:
    """``cell 4 of runbooks/diagnose.ipynb failed: EngineUnreachable: ...``."""
    where = f"cell {error.cell} of {runbook}" if error.cell is not None else str(runbook)
    return f"{where} failed: {error.reason}"


def default_out_dir(project: str) -> Path:
    """``reports/diagnose-<project>-<YYYYmmddTHHMMSSZ>`` under the current directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"diagnose-{project}-{stamp}"
