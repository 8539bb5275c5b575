"""revivadiag's speed, like for like, written to ``benchmarks/results.json``.

    .venv/bin/python benchmarks/bench_snapshot.py [--runs 5] [--sizes 15,30,60,120,240]
                     [--skip-lab] [--skip-synthetic] [--skip-startup] [--out FILE]

Sections of the results (every figure is a median of ``--runs`` runs unless it says
otherwise; the machine is shared, so each section also records the load average):

``startup``
    ``revivadiag --help`` in a fresh interpreter (subprocess wall), next to ``python -c
    pass`` (the interpreter alone).
``synthetic``
    A synthetic stack grows through ``--sizes`` containers on ``--networks`` networks
    (``busybox httpd`` on 8080, from the lab's base image, see ``synthetic_stack.py``).
    ``scaling``: at each size, ``revivadiag.snapshot()`` in a fresh process: one warm-up
    snapshot (its wall kept as ``first_in_process``), then ``--runs`` timed ones: wall, its
    steps, CPU seconds (that process and its probe helpers: less sensitive to a busy machine
    than the wall), peak RSS of that process, rows, inferred rows, connects and lookups.
    ``like_for_like`` (at ``--compare-size``): the same plan run by the ``setns``, ``exec``
    and ``sidecar`` methods, in the default mode (one prober per set of networks) and in
    full mode (every cell connected from its own source, nothing inferred), beside the
    per-pair ``docker exec <source> nc -w 1`` baseline (8 threads). The baseline connects
    by service name where the name resolves on the source's networks and to the target's
    address otherwise (a name Docker does not know would be forwarded to the host's DNS
    server, which is not ours): every pair is connected, as full mode does. It is timed on
    a random sample of pairs (``--exec-sample``) and extrapolated to the matrix.
``lab``
    An isolated copy of the lab (variant current): snapshot wall; topology edge times
    (uncontended ``connect_ms`` against the sweep's ``sweep_connect_ms``); ``revivadiag
    diagnose`` wall with its breakdown (kernel start and papermill, each cell, the rest:
    the CLI's imports and writing the outputs); fidelity against ``curl -w`` and an
    injected 50 ms delay.

Every connect goes to loopback or to the containers this script created; everything
created is removed at the end, also on Ctrl-C or SIGTERM. The results file is rewritten
(sections not run keep their previous figures); ``benchmarks/readme_table.py`` renders the
README's table from it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
METHODS = ("setns", "exec", "sidecar")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    p.add_argument("--sizes", default="15,30,60,120,240", help="containers, comma-separated")
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--compare-size", type=int, default=60)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--exec-sample", type=int, default=240, help="pairs timed the exec way")
    p.add_argument("--exec-threads", type=int, default=8)
    p.add_argument("--samples", type=int, default=20, help="HTTP samples per path")
    p.add_argument("--diagnose-runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--skip-lab", action="store_true")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--skip-fidelity", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def load() -> float:
    """The 1-minute load average (how busy the shared machine was)."""
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4) if values else float("nan")


def python() -> str:
    return sys.executable


def env() -> dict[str, str]:
    """The environment for child processes: this checkout first on the path."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), out.get("PYTHONPATH", "")])
    return out


# ------------------------------------------------------------------ start-up


def startup(runs: int) -> dict[str, Any]:
    """Wall of ``revivadiag --help`` and of the bare interpreter, fresh processes."""
    def wall(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, env=env(), capture_output=True, check=True, timeout=120)
        return time.perf_counter() - started

    helps = [wall([python(), "-m", "revivadiag", "--help"]) for _ in range(runs)]
    bare = [wall([python(), "-c", "pass"]) for _ in range(runs)]
    return {"help_s": [round(x, 3) for x in helps], "help_median_s": median(helps),
            "python_pass_median_s": median(bare), "load": load()}


# ------------------------------------------------------------------ one snapshot, measured
# in a child process (fresh imports, its own peak RSS)

CHILD = r"""
import collections, json, os, resource, sys, time
from revivadiag.engine import probe as P
import revivadiag

counts = collections.Counter()
orig = P.ProbeEngine.run


def run(self, batches, progress=None, concurrency=None, known=None):
    out = orig(self, batches, progress, concurrency, known)
    counts["namespaces"] += len(batches)
    for cid, jobs in batches.items():
        for job, res in zip(jobs, out.get(cid, [])):
            if job["kind"] == "dns":
                counts["lookups_forwarded" if job.get("forwarded") else "lookups"] += 1
            elif job["kind"] == "tcp":
                counts["connects"] += 1 + max(0, int(res.get("attempts") or 1) - 1)
                counts["quiet_connects"] += len(res.get("quiet_ms") or [])
            else:
                counts[job["kind"]] += 1
    return out


P.ProbeEngine.run = run
args = json.loads(sys.argv[1])
snapshot = revivadiag.snapshot  # imported here, not inside the timing
out = []
first = None
def cpu():
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


for i in range(args["warmup"] + args["runs"]):
    counts.clear()
    cpu0 = cpu()
    started = time.perf_counter()
    snap = snapshot(project=args["project"], method=args["method"], full=args["full"],
                    samples=args.get("samples", 20))
    wall = time.perf_counter() - started
    cpu_s = cpu() - cpu0
    if i < args["warmup"]:
        first = first or round(wall, 4)
        continue
    reach, dns = snap.reachability, snap.dns
    out.append({"wall_s": round(wall, 4), "cpu_s": round(cpu_s, 4),
                "load": round(os.getloadavg()[0], 2), "steps": snap.meta.duration_s,
                "method": snap.meta.method, "counts": dict(counts),
                "reachability_rows": len(reach), "reachability_inferred": int(reach.inferred.sum()),
                "dns_rows": len(dns), "dns_inferred": int(dns.inferred.sum()),
                "open": int((reach.outcome == "open").sum()),
                "outcomes": {k: int(v) for k, v in reach.outcome.value_counts().items()},
                "matrix": sorted(map(list, reach[["source", "target", "target_port",
                                                  "outcome"]].astype(str).values.tolist()))
                          if args.get("matrix") else None})
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"runs": out, "first_s": first, "peak_rss_mb": round(self_kb / 1024, 1)}))
"""


def snapshot_child(project: str, method: str = "auto", full: bool = False, runs: int = 1,
                   matrix: bool = False, samples: int = 20, warmup: int = 1) -> dict[str, Any]:
    """In one fresh process: import revivadiag, take ``warmup`` snapshots (their first
    one's wall is kept as ``first_s``: one-time imports and caches), then ``runs`` timed
    ones; its JSON report (peak RSS covers them all)."""
    request = json.dumps({"project": project, "method": method, "full": full, "runs": runs,
                          "matrix": matrix, "samples": samples, "warmup": warmup})
    proc = subprocess.run([python(), "-c", CHILD, request], env=env(), capture_output=True,
                          text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"snapshot child failed: {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one or more child reports."""
    runs = [r for rep in reports for r in rep["runs"]]
    walls = [r["wall_s"] for r in runs]
    last = runs[-1]
    steps = {k: median([r["steps"].get(k, 0.0) for r in runs]) for k in last["steps"]}
    firsts = [rep["first_s"] for rep in reports if rep.get("first_s")]
    return {"wall_s": walls, "median_s": median(walls), "steps_median_s": steps,
            "first_in_process_median_s": median(firsts),
            "method": last["method"], "counts": last["counts"],
            "reachability_rows": last["reachability_rows"],
            "reachability_inferred": last["reachability_inferred"],
            "dns_rows": last["dns_rows"], "dns_inferred": last["dns_inferred"],
            "outcomes": last["outcomes"],
            "cpu_s": [r["cpu_s"] for r in runs], "cpu_median_s": median([r["cpu_s"] for r in runs]),
            "peak_rss_mb": max(rep["peak_rss_mb"] for rep in reports),
            "load": median([r["load"] for r in runs])}


# ------------------------------------------------------------------ synthetic stack


def scaling(stack: Any, client: Any, sizes: list[int], args: argparse.Namespace
            ) -> dict[str, Any]:
    """Grow the stack through ``sizes``; snapshot each size ``args.runs`` times."""
    import synthetic_stack as synth

    out: dict[str, Any] = {}
    for size in sizes:
        t0 = time.perf_counter()
        synth.grow(client, stack, size, args.networks)
        say(f"synthetic stack {stack.project}: {size} containers on {args.networks} networks "
            f"({time.perf_counter() - t0:.1f}s to create)")
        reports = [snapshot_child(stack.project, runs=args.runs)]
        out[str(size)] = figures = summarize(reports)
        say(f"  snapshot: median {figures['median_s']} s {figures['wall_s']} (CPU "
            f"{figures['cpu_median_s']} s), peak RSS {figures['peak_rss_mb']} MB, "
            f"steps {figures['steps_median_s']}, counts {figures['counts']}, load "
            f"{figures['load']}")
        if size == args.compare_size:
            out[str(size)]["like_for_like"] = like_for_like(stack, client, args)
    return out


def like_for_like(stack: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The same plan by each method, default and full, and the per-pair exec baseline."""
    figures: dict[str, Any] = {}
    matrices: dict[str, list[Any]] = {}
    for method in args.methods.split(","):
        for full in (False, True):
            name = f"{method}{'_full' if full else ''}"
            runs = args.runs if method == "setns" else max(1, min(2, args.runs))
            reports = [snapshot_child(stack.project, method=method, full=full, matrix=True,
                                      runs=runs)]
            figures[name] = summarize(reports)
            matrices[name] = reports[0]["runs"][0]["matrix"]
            say(f"  {name}: median {figures[name]['median_s']} s {figures[name]['wall_s']}, "
                f"counts {figures[name]['counts']}, inferred reachability rows "
                f"{figures[name]['reachability_inferred']}/{figures[name]['reachability_rows']}")
    reference = matrices.get("setns_full")
    figures["same_matrix_as_setns_full"] = {name: m == reference for name, m in matrices.items()}
    figures["baseline"] = baseline(stack, args, reference)
    base = figures["baseline"]["estimated_matrix_s"]
    figures["ratios"] = {f"baseline_over_{name}": round(base / fig["median_s"], 1)
                         for name, fig in figures.items()
                         if isinstance(fig, dict) and "median_s" in fig}
    say(f"  ratios: {figures['ratios']}")
    return figures


def exec_pair(source: str, host: str, port: int) -> bool:
    """One pair the way testinfra's ``addr(host).port(port).is_reachable`` does it."""
    proc = subprocess.run(["docker", "exec", source, "nc", "-w", "1", "-z", host, str(port)],
                          capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


def baseline(stack: Any, args: argparse.Namespace,
             reference: list[Any] | None) -> dict[str, Any]:
    """Per-pair ``docker exec nc`` on a sample of the matrix, extrapolated."""
    import synthetic_stack as synth

    pairs = stack.pairs()
    sample = random.Random(args.seed).sample(pairs, min(args.exec_sample, len(pairs)))
    by_name = [stack.network_of[s] == stack.network_of[t] for s, t in sample]
    hosts = [t if named else stack.ips[t] for (s, t), named in zip(sample, by_name, strict=True)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.exec_threads) as pool:
        opened = list(pool.map(lambda p: exec_pair(stack.container(p[0][0]), p[1], synth.PORT),
                               zip(sample, hosts, strict=True)))
    wall = time.perf_counter() - started
    estimate = wall / len(sample) * len(pairs)
    ours = {(s, t): o for s, t, _, o in (reference or [])}
    agree = sum((ours.get((stack.container(s), stack.container(t))) == "open") == o
                for (s, t), o in zip(sample, opened, strict=True))
    named = sum(by_name)
    say(f"  baseline (docker exec nc -w 1, {args.exec_threads} threads): {len(sample)} of "
        f"{len(pairs)} pairs in {wall:.1f}s -> whole matrix ~{estimate:.0f}s; agreement with "
        f"revivadiag full mode {agree}/{len(sample)}")
    return {"pairs": len(pairs), "sample_pairs": len(sample), "sample_wall_s": round(wall, 2),
            "ms_per_pair": round(1000 * wall / len(sample), 1),
            "estimated_matrix_s": round(estimate, 1), "threads": args.exec_threads,
            "counts_matrix": {"execs": len(pairs), "connects": len(pairs),
                              "lookups": round(named / len(sample) * len(pairs)),
                              "inferred_cells": 0},
            "agreement_with_full": f"{agree}/{len(sample)}", "load": load()}


def synthetic(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    import synthetic_stack as synth

    from revivadiag.engine.sidecar import find_image

    image = find_image(client, None)
    if image is None:
        raise SystemExit("no revivadiag/base image: run `revivadiag lab build` first")
    stack = synth.SyntheticStack(project=f"rdb{secrets.token_hex(4)}", image=image)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    try:
        return {"networks": args.networks, "scaling": scaling(stack, client, sizes, args)}
    finally:
        synth.remove(client, stack)
        say(f"synthetic stack {stack.project} removed")


# ------------------------------------------------------------------ lab


def diagnose_runs(prefix: str, runs: int) -> dict[str, Any]:
    """``revivadiag diagnose`` walls and where the time goes (from the executed notebook)."""
    out: list[dict[str, Any]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="rdb-diagnose-") as tmp:
            started = time.perf_counter()
            proc = subprocess.run([python(), "-m", "revivadiag", "diagnose", "-p", "project",
                                   prefix, "--out", tmp], env=env(), capture_output=True,
                                  text=True, timeout=600, check=False)
            wall = time.perf_counter() - started
            nb = json.loads((Path(tmp) / "diagnose.ipynb").read_text(encoding="utf-8"))
        match = re.search(r"findings in ([0-9.]+) s", proc.stderr)
        execute_s = float(match.group(1)) if match else wall
        out.append({"wall_s": round(wall, 3), "exit": proc.returncode,
                    "stderr_lines": proc.stderr.strip().splitlines(),
                    **notebook_breakdown(nb, wall, execute_s)})
    cells: dict[str, list[float]] = {}
    for run in out:
        for name, secs in run["cells"].items():
            cells.setdefault(name, []).append(secs)
    noise = [line for run in out for line in run["stderr_lines"]
             if not line.startswith("revivadiag:")]
    return {"wall_s": [r["wall_s"] for r in out], "median_s": median([r["wall_s"] for r in out]),
            "breakdown_median_s": {
                "kernel_start": median([r["kernel_start_s"] for r in out]),
                "cells": {k: median(v) for k, v in cells.items()},
                "cells_total": median([r["cells_total_s"] for r in out]),
                "rest (cli imports, secrets, writing the notebook, report and findings)":
                    median([r["rest_s"] for r in out])},
            "stderr_other_than_revivadiag": noise, "load": load()}


def notebook_breakdown(nb: dict[str, Any], wall: float, execute_s: float) -> dict[str, Any]:
    """Where the wall went: ``execute_s`` (the CLI's own timing of the runbook execution,
    from the kernel's start to its shutdown) is the cells (papermill's per-cell durations)
    plus the kernel's start-up and papermill; the rest is the CLI around it."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and (c.get("metadata", {}).get("papermill") or {}).get("duration") is not None]
    cells = {}
    for cell in code:
        src = "".join(cell["source"]).strip().splitlines()
        label = next((line for line in src if not line.startswith("#")), src[0] if src else "")
        cells[label[:60]] = round(float(cell["metadata"]["papermill"]["duration"] or 0), 3)
    total = sum(cells.values())
    return {"kernel_start_s": round(max(0.0, execute_s - total), 3), "cells": cells,
            "cells_total_s": round(total, 3), "rest_s": round(wall - execute_s, 3)}


def lab(client: Any, prefix: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start an isolated current lab; snapshot, topology edges, diagnose, fidelity."""
    from revivadiag.lab import LabConfig, up
    from revivadiag.lab.lifecycle import pick_free_ports
    from revivadiag.seed import SERVICE_OF_ROLE

    services = ("frontend", "backend", "database", "redis")
    ports = dict(zip(services, pick_free_ports(4), strict=True))
    t0 = time.perf_counter()
    up(LabConfig(prefix=prefix, variant="current", profile="development", ports=ports),
       client=client)
    say(f"lab {prefix} (current) up in {time.perf_counter() - t0:.1f}s")
    figures: dict[str, Any] = {"snapshot": summarize([snapshot_child(prefix, runs=args.runs)])}
    say(f"lab snapshot: median {figures['snapshot']['median_s']} s "
        f"{figures['snapshot']['wall_s']}; steps {figures['snapshot']['steps_median_s']}")
    figures["topology_edges"] = edge_times(prefix)
    say(f"topology edges (open rows): {figures['topology_edges']}")
    figures["diagnose"] = diagnose_runs(prefix, args.diagnose_runs)
    say(f"diagnose: median {figures['diagnose']['median_s']} s {figures['diagnose']['wall_s']}; "
        f"breakdown {figures['diagnose']['breakdown_median_s']}; other stderr "
        f"{figures['diagnose']['stderr_other_than_revivadiag']}")
    if not args.skip_fidelity:
        import fidelity

        import revivadiag
        from revivadiag.engine.probe import ProbeEngine

        snap = revivadiag.snapshot(project=prefix, samples=args.samples)
        proxy = SERVICE_OF_ROLE["proxy"]
        frontend = str(snap.containers[snap.containers.service == proxy].iloc[0]["name"])
        with ProbeEngine(client) as engine:
            figures["vs_curl"] = fidelity.compare(engine, snap, frontend, 2 * args.samples, 1)
            figures["delay"] = fidelity.injected_delay(engine, snap, args.samples)
        say(f"vs curl -w: {figures['vs_curl']}; injected delay: {figures['delay']}")
    return figures


def edge_times(prefix: str) -> dict[str, Any]:
    """Median over open rows of the uncontended connect time and of the sweep's."""
    import revivadiag

    reach = revivadiag.snapshot(project=prefix).reachability
    opened = reach[reach.outcome == "open"]
    return {"open_rows": len(opened),
            "connect_ms_median": round(float(opened.connect_ms.median()), 3),
            "connect_ms_max": round(float(opened.connect_ms.max()), 3),
            "sweep_connect_ms_median": round(float(opened.sweep_connect_ms.median()), 3),
            "sweep_connect_ms_max": round(float(opened.sweep_connect_ms.max()), 3)}


# ------------------------------------------------------------------ targets and output


def verdicts(fig: dict[str, Any]) -> dict[str, bool]:
    """Each target of the issue: met or not."""
    out: dict[str, bool] = {}
    scale = (fig.get("synthetic") or {}).get("scaling") or {}
    for size, limit in (("60", 1.0), ("120", 1.5), ("240", 3.0)):
        if size in scale:
            out[f"snapshot_{size}_under_{limit}s"] = scale[size]["median_s"] < limit
    if "startup" in fig:
        out["help_under_0.3s"] = fig["startup"]["help_median_s"] < 0.3
    lab_fig = fig.get("lab") or {}
    if "diagnose" in lab_fig:
        out["diagnose_under_5s"] = lab_fig["diagnose"]["median_s"] < 5.0
        out["diagnose_stderr_clean"] = not lab_fig["diagnose"]["stderr_other_than_revivadiag"]
    if "snapshot" in lab_fig:
        out["lab_snapshot_under_1s"] = lab_fig["snapshot"]["median_s"] < 1.0
    if "delay" in lab_fig:
        out["delay_within_3ms"] = abs(lab_fig["delay"]["error_ms"]) <= 3
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    from revivadiag.engine.client import connect
    from revivadiag.lab import down

    client = connect()
    previous: dict[str, Any] = (json.loads(args.out.read_text(encoding="utf-8"))
                                if args.out.is_file() else {})
    figures: dict[str, Any] = {k: v for k, v in previous.items() if k != "targets_met"}
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "command": " ".join(["benchmarks/bench_snapshot.py", *(argv or sys.argv[1:])])}
    figures.update(cpus=len(os.sched_getaffinity(0)), **stamp)
    lab_prefix = f"rdb{secrets.token_hex(4)}"
    interrupted = False
    try:
        if not args.skip_startup:
            figures["startup"] = startup(max(args.runs, 5))
            say(f"startup: {figures['startup']}")
        if not args.skip_synthetic:
            figures["synthetic"] = synthetic(client, args)
        if not args.skip_lab:
            figures["lab"] = lab(client, lab_prefix, args)
    except KeyboardInterrupt:
        say("interrupted: removing what was created")
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not args.skip_lab:
            down(lab_prefix, volumes=True, client=client)
    for section in ("startup", "synthetic", "lab"):
        if not getattr(args, f"skip_{section}") and isinstance(figures.get(section), dict):
            figures[section]["run"] = stamp  # which run measured this section
    figures["targets_met"] = verdicts(figures)
    if not interrupted:
        args.out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        say(f"wrote {args.out}")
    print(json.dumps(figures["targets_met"]), flush=True)
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
