"""``revivadiag migrations [--project P] [--json] [--journal-dir DIR]``: the journal as a table.

One row per migration run: id, project, plan, status (``awaiting approval``, ``in_progress``,
``in_progress (interrupted)`` when no process holds its lock, ``completed``, ``rolled_back``,
``failed``), steps done, started, finished, who approved, and the lock holder (pid, host,
since when) while a run holds the project. Reads only: a torn journal is not repaired here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``migrations`` subcommand."""
    p = subparsers.add_parser("migrations", help="the migration journal as a table",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", help="only this project's runs")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--journal-dir", type=Path, metavar="DIR",
                   help="journal root (default $REVIVADIAG_MIGRATIONS_DIR or "
                   "$XDG_STATE_HOME/revivadiag/migrations)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revivadiag.migrate.run import runs_frame

    frame = runs_frame(args.project, args.journal_dir)
    if args.json:
        print(json.dumps(frame.to_dict("records"), default=str))
    elif frame.empty:
        print("no migration runs" + (f" for project {args.project}" if args.project else ""))
    else:
        print(frame.to_string(index=False))
    return 0
