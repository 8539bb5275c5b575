"""Time ``audit-source`` on a large synthetic tree and score it on the fixture trees.

Builds, in a temporary directory, a tree of ``--files`` small source files (.ts/.tsx/.js/.py/.vue,
one in a thousand with a hard-coded backend URL) plus one 5 MB file of URL lines, then times

* the default audit (the 5 MB file is over the size limit: reported as skipped),
* the same 5 MB file scanned in full (``--max-file-bytes 6000000``), the worst case where
  every line is a finding,

as wall and CPU seconds (the CPU figure does not depend on what else the machine runs), and
prints precision/recall of ``tests/fixtures/source_trees*``. The last line is a JSON object
of the figures. Run: ``python benchmarks/bench_source_audit.py [--files 30000]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from revivadiag.analyze.source_audit import audit_tree
from revivadiag.analyze.source_eval import combine, evaluate_all
from revivadiag.analyze.source_files import Limits

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
EXTS = (".ts", ".tsx", ".js", ".py", ".vue")


def build(root: Path, files: int, big_bytes: int = 5_000_000) -> None:
    """``files`` small files in nested packages, and ``big.ts`` of ``big_bytes``."""
    for i in range(files):
        d = root / f"pkg{i // 500}" / "src" / f"mod{i // 50}"
        d.mkdir(parents=True, exist_ok=True)
        body = f"// module {i}\nexport const x{i} = {i};\n"
        if i % 1000 == 0:
            body += "fetch('http://localhost:8000/api/x')\n"
        (d / f"f{i}{EXTS[i % len(EXTS)]}").write_text(body)
    line = "const a = 'http://localhost:8000/api/" + "x" * 60 + "';\n"
    (root / "big.ts").write_text(line * (big_bytes // len(line)))


def timed(root: Path, limits: Limits) -> dict[str, Any]:
    """Wall and CPU seconds of one audit, with what it found and skipped."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = audit_tree(root, limits=limits)
    return {"wall_s": round(time.perf_counter() - wall0, 2),
            "cpu_s": round(time.process_time() - cpu0, 2),
            "files_read": result.files_read, "findings": len(result.findings),
            "skipped": [f"{s.path}: {s.reason}" for s in result.skips]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=30_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rdt-audit-") as tmp:
        root = Path(tmp)
        build(root, args.files)
        figures["default"] = timed(root, Limits())
        big = root / "only_big"
        big.mkdir()
        (root / "big.ts").rename(big / "big.ts")
        figures["5mb_scanned"] = timed(big, Limits(max_file_bytes=6_000_000))
        figures["5mb_scanned"]["skipped"] = figures["5mb_scanned"]["skipped"][:3]
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    for trees in ("source_trees", "source_trees_holdout"):
        scores = evaluate_all(FIXTURES / trees)
        overall = combine(scores)
        figures[trees] = {name: [round(s.precision, 3), round(s.recall, 3)]
                          for name, s in [*scores, ("overall", overall)]}
    for key in ("default", "5mb_scanned"):
        f = figures[key]
        print(f"{key}: {f['files_read']} files read, {f['findings']} findings, "
              f"wall {f['wall_s']} s, CPU {f['cpu_s']} s, skipped {f['skipped']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
