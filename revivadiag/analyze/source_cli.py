"""``revivadiag audit-source PATH``: hard-coded backend URLs, ports and container names.

Exit codes: 0 nothing found, 1 findings, 2 the tool failed (bad path, bad expected file).
``--evaluate [EXPECTED]`` scores the audit against known answers (default
``PATH/expected.json``) and prints precision and recall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from revivadiag.analyze import source_eval
from revivadiag.analyze.source_audit import SourceFinding, scan_tree
from revivadiag.errors import ParameterError

WIDTHS = {"where": 44, "kind": 14, "match": 40}


def register(subparsers: Any) -> None:
    """Add the ``audit-source`` subcommand."""
    p = subparsers.add_parser(
        "audit-source",
        help="find hard-coded backend URLs, ports and container names in a source tree",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="directory (or file) to audit")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--json", action="store_const", const="json", dest="format",
                   help="same as --format json")
    p.add_argument("--evaluate", nargs="?", const="", default=None, metavar="EXPECTED",
                   help="print precision/recall against known answers (default PATH/expected.json)")
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Audit ``args.path``; print a table or JSON; evaluate when asked."""
    out = out or sys.stdout
    root = Path(args.path)
    if not root.exists():
        raise ParameterError("path", str(root), "no such file or directory")
    if args.evaluate is not None:
        score = source_eval.evaluate(root, args.evaluate or None)
        if args.format == "json":
            print(json.dumps(score.to_dict(), indent=2), file=out)
        else:
            print(f"precision {score.precision:.3f}  recall {score.recall:.3f}  "
                  f"(TP {score.true_positives}, FP {len(score.false_positives)}, "
                  f"FN {len(score.false_negatives)})", file=out)
            for k in score.false_positives:
                print(f"  false positive: {k[0]}:{k[1]} {k[2]}", file=out)
            for k in score.false_negatives:
                print(f"  missed:         {k[0]}:{k[1]} {k[2]}", file=out)
        return 0
    findings = scan_tree(root)
    text = (json.dumps([f.__dict__ for f in findings], indent=2) if args.format == "json"
            else format_table(findings))
    with contextlib.suppress(BrokenPipeError):  # `| head`: the reader has all it wants
        print(text, file=out)
    return 1 if findings else 0
