"""``revivadiag snapshot``: collect every frame, write them to a directory and/or print JSON.

    revivadiag snapshot [--project P] [--out DIR] [--format parquet|csv] [--json -|FILE]
                        [--docker-host URL ...] [--context NAME ...] [--ssh-config FILE]
                        [--method auto|setns|sidecar|exec] [--samples N] [--progress] [--full]

``--docker-host`` and ``--context`` repeat: every engine named is snapshotted into one set of
frames (their ``engine`` column), and one that does not answer is an ``engines`` row saying
so. With none, DOCKER_HOST or the local socket, and an unreachable engine exits 2.

``--json -`` prints exactly one JSON object on stdout (frame name -> list of records) and
nothing else; the progress bar goes to stderr, shown when stderr is a terminal or with
``--progress``. Without ``--out`` and ``--json`` a one-line summary per frame is printed.
Errors exit with code 2 (see :mod:`revivadiag.cli`); ``--out`` naming a file or a place that
cannot be written, and a ``--json`` file that cannot be written, fail before any probe runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from revivadiag.collect.pipeline import METHODS, snapshot
from revivadiag.engine.options import add_engine_options, engines_from_args
from revivadiag.outpaths import check_output_dir, check_output_file

FORMATS = ("parquet", "csv")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``snapshot`` subcommand."""
    p = subparsers.add_parser(
        "snapshot",
        help="collect containers, networks, DNS, reachability, latency and health frames",
        description="Collect every frame of a compose project from inside its containers' "
        "network namespaces; write them to DIR and/or print them as one JSON object.",
    )
    p.add_argument("--project", help="compose project (default: the only one running, "
                                      "else the seed's project)")
    p.add_argument("--out", metavar="DIR", type=Path, help="write every frame, snapshot.json "
                                                          "and meta.json here")
    p.add_argument("--format", choices=FORMATS, default="parquet", help="frame file format")
    p.add_argument("--json", metavar="FILE", dest="json_out",
                   help="write the frames as one JSON object to FILE ('-' for stdout)")
    p.add_argument("--method", choices=METHODS, default="auto", help="probe method")
    p.add_argument("--samples", type=_positive_int, default=20, metavar="N",
                   help="HTTP samples per latency path (default 20)")
    p.add_argument("--progress", action="store_true", help="show the progress bar on stderr "
                                                            "even when it is not a terminal")
    p.add_argument("--full", action="store_true", help="probe from every container itself "
                   "(default: one container per set of networks stands for the others; the rows "
                   "say which in measured_on / inferred)")
    add_engine_options(p)
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """Take the snapshot and write what was asked for."""
    if args.out is not None:
        check_output_dir(args.out)
    if args.json_out not in (None, "-"):
        check_output_file(Path(args.json_out))
    progress = bool(args.progress) or sys.stderr.isatty()
    engines = engines_from_args(args)
    snap = snapshot(project=args.project, samples=args.samples, method=args.method,
                    progress=progress, full=args.full, engines=engines or None)
    if args.out is not None:
        snap.write(args.out, format=args.format)
        print(f"snapshot of {snap.project!r} written to {args.out}", file=sys.stderr)
    if args.json_out == "-":
        json.dump(snap.to_json(), sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        sys.stdout.flush()
    elif args.json_out:
        Path(args.json_out).write_text(json.dumps(snap.to_json()) + "\n", encoding="utf-8")
    if args.out is None and args.json_out is None:
        print(summary(snap.meta.project, {n: len(f) for n, f in snap.frames().items()}))
    for note in snap.meta.notes:
        print(f"revivadiag: note: {note}", file=sys.stderr)
    return 0


def summary(project: str, sizes: dict[str, int]) -> str:
    """One line per frame: its name and row count.

    >>> print(summary("p", {"containers": 4, "dns": 0}))
    project p
      containers    4 rows
      dns           0 rows
    """
    lines = [f"project {project}"]
    lines += [f"  {name:<12}{count:>3} rows" for name, count in sizes.items()]
    return "\n".join(lines)
