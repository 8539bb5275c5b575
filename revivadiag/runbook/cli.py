"""``revivadiag diagnose``: run the diagnose runbook and write what a reviewer reads.

Writes into ``--out`` (default ``reports/diagnose-<project>-<UTC time>``): the executed
notebook ``diagnose.ipynb``, the report ``report.html`` and ``findings.json`` (plus
``--junit FILE``), all scrubbed of the project's secret values. Exit 0 without an ``error``
finding, 1 with one, 2 when the tool failed (the notebook and report are still written
when a cell failed, and the cell is named).

Bad input fails before the runbook starts, with exit 2 and nothing written: ``--out`` naming
a file or a place that cannot be written, a ``--junit`` file that cannot be written, and a
``-p compose_file`` that is missing, malformed, or rejected by Compose. Relative paths given
as parameters are taken relative to the current directory (the notebook runs in ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revivadiag.engine.options import SSH_CONFIG_ENV, add_engine_options, engines_from_args
from revivadiag.errors import RevivadiagError, RunbookError

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
        help="runbook parameter, e.g. -p project shop -p environment "
        "production (repeatable; see runbooks/diagnose.ipynb)",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument(
        "--runbook",
        default="diagnose",
        metavar="NAME_OR_PATH",
        help="runbook to execute (default: runbooks/diagnose.ipynb)",
    )
    parser.add_argument(
        "--kernel", metavar="NAME", help="Jupyter kernel (default: one running this interpreter)"
    )
    add_engine_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute the runbook and write its outputs; returns the exit code."""
    from revivadiag.outpaths import check_output_dir, check_output_file
    from revivadiag.runbook.params import DiagnoseParams, defaults, parse_pairs

    values = {**defaults(), **parse_pairs(args.parameter)}
    specs = engines_from_args(args)  # contexts resolved, addresses checked: exit 2 when bad
    if specs:  # several engines travel as one comma-separated parameter (contexts by name)
        values["docker_host"] = ",".join(s.name or s.address for s in specs)
    if args.ssh_config is not None:  # the runbook's kernel inherits it
        os.environ[SSH_CONFIG_ENV] = str(args.ssh_config.resolve())
    values.update(absolute_paths(values))
    params = DiagnoseParams.resolve(**values)
    # input checks first, before the heavier imports and before the engine is asked anything
    if args.out is not None:
        check_output_dir(args.out)
    if args.junit is not None:
        check_output_file(args.junit)
    check_compose_files(params.compose_files)

    from revivadiag.runbook import execute as ex
    from revivadiag.runbook.prefetch import ComposePrefetch

    runbook = ex.runbook_path(args.runbook)
    secrets: set[str] = set()
    prefetch = ComposePrefetch()

    def read_secrets() -> str:
        """The project and its secrets (docker loaded: ~0.3 s); with one engine, Compose is
        asked about the project meanwhile, for the kernel (:mod:`~.prefetch`)."""
        from revivadiag.collect.inventory import read_project, read_project_secrets
        from revivadiag.redact import secret_values

        try:
            if params.engines:
                project, found = read_project_secrets(params.project_or_none,
                                                      engines=params.engines)
                prefetch.skip()
            else:
                inventory = read_project(params.project_or_none, params.docker_host_or_none)
                project, found = inventory.project, secret_values(inventory.containers)
                prefetch.start(inventory, params.compose_files)
        except BaseException:
            prefetch.skip()
            raise
        values["project"] = project
        secrets.update(found)
        return project

    try:
        started = datetime.now(UTC)
        if params.project_or_none is None:  # the project names the output directory: ask first
            project = read_secrets()
            prepare = None
        else:  # the engine is asked (and the docker package loaded) while the kernel boots
            project, prepare = params.project_or_none, read_secrets
        out_dir = check_output_dir(args.out or default_out_dir(project))
        created = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"revivadiag: diagnosing {project} with {runbook.name} ...", file=sys.stderr)
        try:
            execution = ex.execute(runbook, values, kernel_name=args.kernel, cwd=out_dir,
                                   prepare=prepare, kernel_env=prefetch.kernel_env())
        except RevivadiagError:
            if created and not any(out_dir.iterdir()):
                out_dir.rmdir()  # made by this run and still empty: nothing is left behind
            raise
    finally:
        prefetch.close()

    from revivadiag.runbook import output  # pandas and nbconvert: loaded while the kernel ran

    written = output.write_outputs(
        out_dir, execution, values, secrets, started=started, runbook=runbook, junit=args.junit
    )
    ex.finish_kernels()
    for path in written.paths:
        print(f"revivadiag: wrote {path}", file=sys.stderr)
    print(f"revivadiag: {written.summary} in {execution.duration_s:.1f} s", file=sys.stderr)
    print(written.html)
    if execution.error is not None:
        print(f"revivadiag: error: {describe(execution.error, runbook)}", file=sys.stderr)
        return EXIT_TOOL_FAILED
    return EXIT_ERRORS if written.error_count else EXIT_OK


def check_compose_files(files: list[str]) -> None:
    """Files given as ``-p compose_file`` must be compose files Compose accepts: a
    :class:`~revivadiag.errors.ComposeFileError` naming the file and problem otherwise.

    Read leniently (the variables the project was started with are not known here) and with
    every profile, as the runbook's declared topology reads them later.
    """
    if files:
        from revivadiag.collect.compose import load_compose

        load_compose([Path(f) for f in files], strict=False, profiles=None)


#: parameters that name files or folders (the notebook runs with ``--out`` as its directory)
PATH_PARAMETERS = ("policy_file", "source_path")


def absolute_paths(values: dict[str, Any]) -> dict[str, str]:
    """Path parameters made absolute against the current directory (comma-separated
    ``compose_file`` each on its own); empty values stay empty.

    >>> absolute_paths({"policy_file": "/p.yml", "compose_file": "/a.yml, /b.yml", "x": 1})
    {'policy_file': '/p.yml', 'compose_file': '/a.yml,/b.yml'}
    """
    out = {k: str(Path(v).absolute()) for k in PATH_PARAMETERS if (v := values.get(k))}
    files = [f.strip() for f in str(values.get("compose_file") or "").split(",") if f.strip()]
    if files:
        out["compose_file"] = ",".join(str(Path(f).absolute()) for f in files)
    return out


def describe(error: RunbookError, runbook: Path) -> str:
    """``cell 4 of runbooks/diagnose.ipynb failed: EngineUnreachable: ...``."""
    where = f"cell {error.cell} of {runbook}" if error.cell is not None else str(runbook)
    return f"{where} failed: {error.reason}"


def default_out_dir(project: str) -> Path:
    """``reports/diagnose-<project>-<YYYYmmddTHHMMSSZ>`` under the current directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"diagnose-{project}-{stamp}"
