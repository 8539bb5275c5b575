#!/usr/bin/env python3
"""Print where the time of a diagnose run went, from its executed notebook.

    .venv/bin/python scripts/diagnose_timings.py reports/<run>/diagnose.ipynb

papermill records each cell's start, end and duration in the cell metadata; this prints
them with the cell's first line, and the total of the cells (kernel start-up and the
writing of the report come on top; `time revivadiag diagnose ...` gives the wall time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def cell_timings(path: Path) -> list[tuple[int, float, str]]:
    """(cell index, seconds, first line) of every executed code cell."""
    nb = nbformat.read(str(path), as_version=4)
    rows = []
    for i, cell in enumerate(nb.cells):
        duration = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
        if cell.cell_type == "code" and duration is not None:
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            rows.append((i, float(duration), first[:70]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    args = parser.parse_args(argv)
    rows = cell_timings(args.notebook)
    for index, seconds, first in rows:
        print(f"cell {index:3d}  {seconds:7.2f} s  {first}")
    print(f"cells total {sum(s for _, s, _ in rows):7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
