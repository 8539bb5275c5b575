"""``revivadiag audit-source PATH``: hard-coded service URLs, ports and container names.

The stack (services, roles, ports, names) is learned from the compose, ``.env``,
``package.json`` and Dockerfiles in PATH; ``--project P`` adds the running compose project's
containers (Docker API). Files not read (too large, past the file limit, binary, not a regular
file, unreadable, not UTF-8) are reported: a summary line in the table, on stderr with
``--format json`` (stdout stays the JSON list of findings).

Exit codes: 0 nothing found, 1 findings, 2 the tool failed (bad path, bad expected file,
engine unreachable, unknown project), 3 nothing found but the audit was incomplete (files
skipped for size, count, encoding or permissions).
``--evaluate [EXPECTED]`` scores the audit against known answers (default
``PATH/expected.json``; a directory of trees, each with its expected.json, is scored tree by
tree and overall) and prints precision and recall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from revivadiag.analyze import source_eval
from revivadiag.analyze.source_audit import AuditResult, SourceFinding, audit_tree
from revivadiag.analyze.source_files import MAX_FILE_BYTES, MAX_FILES, Limits, Skip
from revivadiag.analyze.source_stack import Stack, stack_from_containers
from revivadiag.errors import ParameterError

WIDTHS = {"where": 44, "kind": 14, "match": 40}
EXIT_INCOMPLETE = 3
#: skip reasons that mean the audit did not see something it should have
_INCOMPLETE = ("too large", "file limit", "unreadable", "bad encoding", "compose file not parsed")


def register(subparsers: Any) -> None:
    """Add the ``audit-source`` subcommand."""
    p = subparsers.add_parser(
        "audit-source",
        help="find hard-coded service URLs, ports and container names in a source tree",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="directory (or file) to audit")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--json", action="store_const", const="json", dest="format",
                   help="same as --format json")
    p.add_argument("--evaluate", nargs="?", const="", default=None, metavar="EXPECTED",
                   help="print precision/recall against known answers (default PATH/expected.json)")
    p.add_argument("--project", default=None, metavar="P",
                   help="also learn services and ports from the running compose project P")
    p.add_argument("--docker-host", default=None, help="engine address (default DOCKER_HOST)")
    p.add_argument("--max-file-bytes", type=int, default=MAX_FILE_BYTES,
                   help=f"skip larger files (default {MAX_FILE_BYTES})")
    p.add_argument("--max-files", type=int, default=MAX_FILES,
                   help=f"read at most this many files (default {MAX_FILES})")
    p.set_defaults(func=run)


def running_stack(project: str, docker_host: str | None = None) -> Stack:
    """Services and ports of the running compose project ``project`` (read by
    :func:`revivadiag.collect.inventory.read_project`, which raises EngineUnreachable,
    EngineError or ProjectNotFound).
    """
    from revivadiag.collect.inventory import read_project  # the engine is needed only here

    return stack_from_containers(read_project(project, docker_host).containers)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(findings: list[SourceFinding]) -> str:
    """A plain-text table: location, kind, match, suggested fix."""
    head = (f"{'FILE:LINE':<{WIDTHS['where']}}  {'KIND':<{WIDTHS['kind']}}  "
            f"{'MATCH':<{WIDTHS['match']}}  SUGGESTED FIX")
    lines = [head]
    for f in findings:
        where = _clip(f"{f.file}:{f.line}", WIDTHS["where"])
        lines.append(f"{where:<{WIDTHS['where']}}  {f.kind:<{WIDTHS['kind']}}  "
                     f"{_clip(f.match, WIDTHS['match']):<{WIDTHS['match']}}  {f.suggested_fix}")
    lines.append(f"{len(findings)} finding(s)")
    return "\n".join(lines)


def _reason_class(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def format_skips(skips: list[Skip], listed: int = 20) -> str:
    """``skipped N file(s): 2 too large, 1 not a regular file`` and the first ``listed`` of them.

    >>> print(format_skips([Skip(".env", "not a regular file")]))
    skipped 1 file(s): 1 not a regular file
      .env: not a regular file
    """
    if not skips:
        return ""
    counts = Counter(_reason_class(s.reason) for s in skips)
    lines = [f"skipped {len(skips)} file(s): "
             + ", ".join(f"{n} {reason}" for reason, n in counts.most_common())]
    lines += [f"  {s.path}: {s.reason}" for s in skips[:listed]]
    if len(skips) > listed:
        lines.append(f"  ... and {len(skips) - listed} more")
    return "\n".join(lines)


def incomplete(result: AuditResult) -> bool:
    """Whether a limit or an unreadable file kept part of the tree from being audited."""
    return result.limit_hit or any(s.reason.startswith(_INCOMPLETE) for s in result.skips)


def _print_scores(scores: list[tuple[str, source_eval.Score]], fmt: str, out: TextIO) -> None:
    overall = source_eval.combine(scores)
    if fmt == "json":
        data = {name: s.to_dict() for name, s in scores}
        if len(scores) > 1:
            data["overall"] = overall.to_dict()
        print(json.dumps(data if len(scores) > 1 else scores[0][1].to_dict(), indent=2), file=out)
        return
    for name, s in scores + ([("overall", overall)] if len(scores) > 1 else []):
        label = f"{name:<14} " if len(scores) > 1 else ""
        print(f"{label}precision {s.precision:.3f}  recall {s.recall:.3f}  "
              f"(TP {s.true_positives}, FP {len(s.false_positives)}, "
              f"FN {len(s.false_negatives)}; file+line only: precision "
              f"{s.location_precision:.3f}  recall {s.location_recall:.3f})", file=out)
    for k in overall.false_positives:
        print(f"  false positive: {':'.join(map(str, k[:2]))} {' '.join(map(str, k[2:]))}",
              file=out)
    for k in overall.false_negatives:
        print(f"  missed:         {':'.join(map(str, k[:2]))} {' '.join(map(str, k[2:]))}",
              file=out)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Audit ``args.path``; print a table or JSON; evaluate when asked."""
    out, err = out or sys.stdout, err or sys.stderr
    root = Path(args.path)
    if not root.exists():
        raise ParameterError("path", str(root), "no such file or directory")
    if not (root.is_dir() or root.is_file()):
        raise ParameterError("path", str(root), "a directory or a regular file (not a FIFO, "
                                                "socket or device)")
    fmt = getattr(args, "format", "table")
    if getattr(args, "evaluate", None) is not None:
        if args.evaluate:
            scores = [(root.name, source_eval.evaluate(root, args.evaluate))]
        else:
            scores = source_eval.evaluate_all(root)
        _print_scores(scores, fmt, out)
        return 0
    max_bytes = getattr(args, "max_file_bytes", MAX_FILE_BYTES)
    max_files = getattr(args, "max_files", MAX_FILES)
    if max_bytes < 1 or max_files < 1:
        raise ParameterError("--max-file-bytes/--max-files", f"{max_bytes}/{max_files}",
                             "positive integers")
    stack = None
    if getattr(args, "project", None):
        stack = running_stack(args.project, getattr(args, "docker_host", None))
    result = audit_tree(root, stack, Limits(max_bytes, max_files))
    partial = incomplete(result)
    notice = format_skips(result.skips)
    if partial:
        notice += ("\nnotice: the audit is incomplete (files were not read, see above); "
                   "raise --max-file-bytes/--max-files or fix the files")
    with contextlib.suppress(BrokenPipeError):  # `| head`: the reader has all it wants
        if fmt == "json":
            print(json.dumps([f.record() for f in result.findings], indent=2), file=out)
            if notice:
                print(notice.strip(), file=err)
        else:
            print(format_table(result.findings), file=out)
            print(f"stack: {result.stack.summary()}", file=out)
            if notice:
                print(notice.strip(), file=out)
    if result.findings:
        return 1
    return EXIT_INCOMPLETE if partial else 0
