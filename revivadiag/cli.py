"""The `revivadiag` command: parses options and calls one function of the package.

Each subcommand lives with its layer and exposes ``register(subparsers)``; this module
only wires them together and maps revivadiag's errors to exit codes:
0 success, 1 the check found a problem (e.g. an ``error`` finding), 2 the tool failed.

Start-up stays fast: only the module of the subcommand being run is imported (pandas,
docker and papermill load with it); ``revivadiag --help`` and ``--version`` import none of
them, the others are listed from :data:`COMMANDS`. A subcommand whose module is missing is
an error, never silently dropped.

>>> command_of(["--version"]), command_of(["lab", "up"]), command_of(["-h", "snapshot"])
(None, 'lab', 'snapshot')
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from revivadiag import __version__
from revivadiag.errors import RevivadiagError

#: subcommand -> (module that registers it, its one-line help as that module gives it)
COMMANDS = {
    "lab": ("revivadiag.lab.cli", "build, start, stop and list the reference lab"),
    "snapshot": ("revivadiag.collect.cli",
                 "collect containers, networks, DNS, reachability, latency and health frames"),
    "audit-source": ("revivadiag.analyze.source_cli",
                     "find hard-coded service URLs, ports and container names in a source tree"),
    "monitor": ("revivadiag.render.monitor_cli",
                "watch the services' health live, then sum the run up"),
    "diagnose": ("revivadiag.runbook.cli",
                 "run the diagnose runbook: executed notebook, HTML report, findings.json"),
    "migrate": ("revivadiag.migrate.cli",
                "run, approve or roll back a migration plan; plan and draft one"),
    "migrations": ("revivadiag.migrate.migrations_cli", "the migration journal as a table"),
}

EXIT_TOOL_FAILED = 2


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first known word), None when it names none."""
    return next((arg for arg in argv if arg in COMMANDS), None)


def build_parser(only: str | None = None, lazy: bool = False) -> argparse.ArgumentParser:
    """The parser. Every subcommand's module is imported and registered, or with ``lazy``
    only ``only``'s (the others get a stub carrying their help line)."""
    parser = argparse.ArgumentParser(
        prog="revivadiag",
        description="Diagnostics and runbooks for the networking layer of Docker Compose stacks.",
    )
    parser.add_argument("--version", action="version", version=f"revivadiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        if lazy and name != only:
            sub.add_parser(name, help=summary)
            continue
        importlib.import_module(module_name).register(sub)  # ModuleNotFoundError: a bug
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(args_in), lazy=True)
    args = parser.parse_args(args_in)
    try:
        rc = args.func(args)
    except RevivadiagError as exc:
        print(f"revivadiag: error: {exc}", file=sys.stderr)
        return EXIT_TOOL_FAILED
    except KeyboardInterrupt:
        print("revivadiag: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
