"""The README's benchmark table is generated from benchmarks/results.json, not typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_table",
                                                  ROOT / "benchmarks" / "readme_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS = {
    "cpus": 2, "measured_at": "2026-01-01T00:00:00+00:00", "command": "bench",
    "startup": {"help_median_s": 0.123, "python_pass_median_s": 0.05},
    "synthetic": {"networks": 4, "scaling": {"60": {
        "median_s": 0.777, "wall_s": [0.7, 0.777, 0.9], "cpu_median_s": 0.4, "load": 1.5,
        "peak_rss_mb": 150.0, "reachability_rows": 3540, "reachability_inferred": 3400,
        "counts": {"namespaces": 12, "connects": 72, "lookups": 120, "lookups_forwarded": 16},
        "like_for_like": {
            "setns_full": {"median_s": 1.5, "wall_s": [1.5], "reachability_rows": 3540,
                           "reachability_inferred": 0,
                           "counts": {"namespaces": 64, "connects": 3540, "lookups": 1800}},
            "baseline": {"estimated_matrix_s": 321.0, "ms_per_pair": 90.7, "sample_pairs": 240,
                         "threads": 8, "agreement_with_full": "240/240",
                         "counts_matrix": {"execs": 3540, "connects": 3540, "lookups": 885,
                                           "inferred_cells": 0}},
            "ratios": {"baseline_over_setns_full": 214.0}}}}},
}


def test_table_carries_the_results_figures(tmp_path: Path) -> None:
    """Each figure in the table is the results file's; --check sees a stale table."""
    rt = _module()
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{rt.START}\n| old | table |\n{rt.END}\nafter\n", encoding="utf-8")
    args = ["--results", str(results), "--readme", str(readme)]
    assert rt.main([*args, "--check"]) == 1
    assert rt.main(args) == 0
    text = readme.read_text(encoding="utf-8")
    assert "| old | table |" not in text and text.endswith(f"{rt.END}\nafter\n")
    for figure in ("0.777 s median of 3", "214.0× the baseline", "~321 s", "240/240",
                   "0.123 s", "3,400 of 3,540 cells inferred", "0 of 3,540 cells inferred"):
        assert figure in text, figure
    assert rt.main([*args, "--check"]) == 0
