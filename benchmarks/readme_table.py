"""Render the README's benchmark table from ``benchmarks/results.json``.

    .venv/bin/python benchmarks/readme_table.py [--results FILE] [--readme FILE] [--check]

Rewrites the lines between ``<!-- benchmark-table:start -->`` and
``<!-- benchmark-table:end -->`` in the README; ``--check`` only says whether they are
current (exit 1 when not). Nothing in the table is typed by hand: every figure comes from
the results file that ``benchmarks/bench_snapshot.py`` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START = "<!-- benchmark-table:start -->"
END = "<!-- benchmark-table:end -->"
COMPARE = "60"


def seconds(value: Any) -> str:
    """``1.234`` -> ``'1.23 s'``; big values lose decimals.

    >>> seconds(0.0911), seconds(12.34), seconds(146.0), seconds(None)
    ('0.091 s', '12.3 s', '146 s', '—')
    """
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.3f} s" if v < 1 else f"{v:.2f} s" if v < 10 else (
        f"{v:.1f} s" if v < 100 else f"{v:.0f} s")


def counts_text(fig: dict[str, Any]) -> str:
    """'12 namespace batches, 27 connects, 46 lookups, 195 of 210 cells inferred'."""
    c = fig.get("counts", {})
    lookups = int(c.get("lookups", 0)) + int(c.get("lookups_forwarded", 0))
    return (f"{c.get('namespaces', 0)} namespace batches, {c.get('connects', 0):,} connects, "
            f"{lookups:,} lookups, {fig.get('reachability_inferred', 0):,} of "
            f"{fig.get('reachability_rows', 0):,} cells inferred")


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, measured, target) rows for whatever the results hold."""
    out: list[tuple[str, str, str]] = []
    syn = (res.get("synthetic") or {}).get("scaling") or {}
    nets = (res.get("synthetic") or {}).get("networks", 4)
    compare = next((n for n, f in syn.items() if "like_for_like" in f), COMPARE)
    if compare in syn:
        fig = syn[compare]
        out.append((f"snapshot of {compare} containers on {nets} networks "
                    f"({fig['reachability_rows']:,} source × target ports)",
                    f"{seconds(fig['median_s'])} median of {len(fig['wall_s'])}, CPU "
                    f"{seconds(fig.get('cpu_median_s'))} (load {fig['load']}); "
                    f"{counts_text(fig)}", "< 1 s (60)"))
    growth = [(n, syn[n]) for n in sorted(syn, key=int)]
    if growth:
        out.append(("snapshot by containers: wall median / CPU / peak RSS",
                    "; ".join(f"{n}: {seconds(f['median_s'])} / "
                              f"{seconds(f.get('cpu_median_s'))} / {f['peak_rss_mb']:.0f} MB"
                              for n, f in growth),
                    "120 < 1.5 s, 240 < 3 s"))
    lfl = (syn.get(compare) or {}).get("like_for_like") or {}
    if lfl:
        base = lfl["baseline"]
        for name, label in (("setns", "setns, one prober per network set"),
                            ("setns_full", "setns, full mode (every cell connected)"),
                            ("exec", "exec, one prober per network set"),
                            ("exec_full", "exec, full mode"),
                            ("sidecar", "sidecar, one prober per network set"),
                            ("sidecar_full", "sidecar, full mode")):
            if name in lfl:
                fig = lfl[name]
                ratio = lfl["ratios"].get(f"baseline_over_{name}")
                out.append((f"{compare} containers by {label}",
                            f"{seconds(fig['median_s'])}, {ratio}× the baseline; "
                            f"{counts_text(fig)}", "—"))
        bc = base["counts_matrix"]
        out.append((f"per-pair `docker exec … nc -w 1` baseline ({base['threads']} threads)",
                    f"~{seconds(base['estimated_matrix_s'])} ({base['ms_per_pair']} ms a pair "
                    f"over {base['sample_pairs']} sampled pairs); {bc['execs']:,} execs, "
                    f"{bc['connects']:,} connects, {bc['lookups']:,} lookups, 0 inferred; "
                    f"agrees with full mode on {base['agreement_with_full']}", "—"))
    lab = res.get("lab") or {}
    if "snapshot" in lab:
        out.append(("snapshot of the lab", f"{seconds(lab['snapshot']['median_s'])} median",
                    "≤ 1 s"))
    if "diagnose" in lab:
        d = lab["diagnose"]
        b = d["breakdown_median_s"]
        rest = next(v for k, v in b.items() if k.startswith("rest"))
        noise = len(d["stderr_other_than_revivadiag"])
        out.append(("`revivadiag diagnose` on the lab",
                    f"{seconds(d['median_s'])} median of {len(d['wall_s'])}: kernel start "
                    f"and papermill {seconds(b['kernel_start'])}, cells "
                    f"{seconds(b['cells_total'])}, the rest {seconds(rest)}; other stderr "
                    f"lines: {noise}", "< 5 s"))
    if "topology_edges" in lab:
        e = lab["topology_edges"]
        out.append(("topology edge connect time (lab, open paths)",
                    f"{e['connect_ms_median']} ms uncontended (sweep: "
                    f"{e['sweep_connect_ms_median']} ms)", "—"))
    if "startup" in res:
        s = res["startup"]
        out.append(("`revivadiag --help`", f"{seconds(s['help_median_s'])} (the interpreter "
                    f"alone {seconds(s['python_pass_median_s'])})", "< 0.3 s"))
    if "vs_curl" in lab:
        parts = [f"{k}: {v['diff_pct']:+.1f} %" for k, v in lab["vs_curl"].items()
                 if isinstance(v, dict) and v.get("diff_pct") is not None]
        out.append(("TCP connect / HTTP exchange vs `curl -w` in the same container",
                    ", ".join(parts), "within 20 %"))
    if "delay" in lab:
        out.append(("injected backend delay of 50 ms", f"{lab['delay']['measured_ms']} ms",
                    "± 3 ms"))
    out += monitor_rows(res.get("monitor") or {})
    return out


def monitor_rows(mon: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of ``benchmarks/bench_monitor.py``'s figures (none when it has not run)."""
    out: list[tuple[str, str, str]] = []
    if "cycle" in mon:
        c = mon["cycle"]
        out.append(("health monitor: own CPU per cycle on the lab (`bench_monitor.py`)",
                    f"{c['cpu_median_ms']} ms median of {c['cycles']} (p95 {c['cpu_p95_ms']} "
                    f"ms; the setns probe helpers {c['helper_cpu_median_ms']} ms; wall "
                    f"{c['wall_median_ms']} ms; load {c['load']})", "< 20 ms"))
    if "memory" in mon:
        m = mon["memory"]
        end = m["checkpoints"][str(m["cycles"])]
        full = m["checkpoints"][str(m["ring_full_at"])]
        out.append((f"health monitor: memory after {m['cycles']:,} cycles (replayed rows)",
                    f"{end['traced_kb']:,} KB traced, RSS {end['rss_mb']} MB; ring full at "
                    f"{m['ring_full_at']:,} cycles: {full['traced_kb']:,} KB, RSS "
                    f"{full['rss_mb']} MB ({'flat' if m['flat'] else 'NOT flat'})", "flat"))
    if "stats" in mon:
        st = mon["stats"]
        out.append((f"container stats of {st['containers']} containers: concurrent / serial",
                    f"{seconds(st['concurrent_median_s'])} / {seconds(st['serial_median_s'])} "
                    f"({st['speedup']}×)", "—"))
    return out


def table(res: dict[str, Any]) -> str:
    """The markdown table (with the command and date it was measured with)."""
    head = [f"| figure ({res.get('cpus', '?')} cores, `benchmarks/bench_snapshot.py`) "
            "| measured | target |", "|---|---|---|"]
    body = [f"| {a} | {b} | {c} |" for a, b, c in rows(res)]
    runs: dict[tuple[str, str], list[str]] = {}
    for section in ("startup", "synthetic", "lab", "monitor"):
        run = (res.get(section) or {}).get("run") or {}
        if run:
            runs.setdefault((run["measured_at"], run["command"]), []).append(section)
    if not runs:
        runs[(res.get("measured_at", "?"), res.get("command", "?"))] = []
    said = "; ".join(f"{', '.join(sections) or 'all'} measured {when} with `{command}`"
                     for (when, command), sections in runs.items())
    note = f"\n{said[0].upper()}{said[1:]}; every figure is in `benchmarks/results.json`."
    return "\n".join(head + body) + "\n" + note


def replace_between(text: str, block: str) -> str:
    """``text`` with the lines between the markers replaced by ``block``.

    >>> replace_between(f"a\\n{START}\\nold\\n{END}\\nb\\n", "new")
    'a\\n<!-- benchmark-table:start -->\\nnew\\n<!-- benchmark-table:end -->\\nb\\n'
    """
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README has no {START} ... {END} block")
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=HERE / "results.json")
    p.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    res = json.loads(args.results.read_text(encoding="utf-8"))
    text = args.readme.read_text(encoding="utf-8")
    new = replace_between(text, table(res))
    if args.check:
        print("README benchmark table is " + ("current" if new == text else "out of date"))
        return 0 if new == text else 1
    args.readme.write_text(new, encoding="utf-8")
    print(f"rewrote the benchmark table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
