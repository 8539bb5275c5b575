"""The `revivadiag` command: parses options and calls one function of the package.

Each subcommand lives with its layer and exposes ``register(subparsers)``; this module
only wires them together and maps revivadiag's errors to exit codes:
0 success, 1 the check found a problem (e.g. an ``error`` finding), 2 the tool failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from revivadiag import __version__
from revivadiag.errors import RevivadiagError

#: subcommand -> module that registers it
COMMANDS = {
    "lab": "revivadiag.lab.cli",
    "snapshot": "revivadiag.collect.cli",
    "audit-source": "revivadiag.analyze.source_cli",
    "diagnose": "revivadiag.runbook.cli",
}

EXIT_TOOL_FAILED = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revivadiag",
        description="Diagnostics and runbooks for the networking layer of Docker Compose stacks.",
    )
    parser.add_argument("--version", action="version", version=f"revivadiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # a layer not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
