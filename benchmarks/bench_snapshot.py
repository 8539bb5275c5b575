"""Benchmark of issue 3 item 6: revivadiag's snapshot against the per-pair ``docker exec`` way.

    .venv/bin/python benchmarks/bench_snapshot.py [--containers 60] [--networks 4]

1. A synthetic stack (default 60 containers on 4 networks, ``busybox httpd`` on 8080, from
   the lab's base image) is created. ``revivadiag.snapshot()`` of it is timed ``--runs``
   times (its dns + reachability steps are the full source x target sweep). On the same
   source x target matrix the way testinfra/goss/the seed's tests do it is timed:
   ``docker exec <source> nc -w 1 -z <target> 8080`` per pair, a thread pool of 8. That way
   takes minutes for the whole matrix, so it runs on a random sample of pairs
   (``--exec-sample``) and the whole matrix is extrapolated from the sample's wall time.
2. An isolated copy of the lab (variant current) is started; its snapshot is timed.
   The one-run sweep (``collect_sweep``: the same dns + reachability rows from one probe
   run) is timed too.
3. Fidelity on that lab: connect and total times of revivadiag vs ``curl -w`` inside the
   frontend container on the direct and proxy paths, and an injected backend delay
   (``/api/debug/delay?ms=50``).

Everything created is removed at the end, also on Ctrl-C or SIGTERM. The last line of
output is one JSON object with every figure. Targets (2 cores): 60-container snapshot
<= 2 s and >= 50x faster than exec; lab snapshot <= 1 s; medians within 20 %; delay +-3 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import fidelity
import synthetic_stack as synth

import revivadiag
from revivadiag.collect.reachability import collect_sweep
from revivadiag.engine.client import connect
from revivadiag.engine.probe import ProbeEngine
from revivadiag.engine.sidecar import find_image
from revivadiag.lab import LabConfig, build_images, down, up
from revivadiag.lab.lifecycle import pick_free_ports


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=60)
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--runs", type=int, default=3, help="snapshots timed per stack")
    p.add_argument("--exec-sample", type=int, default=240, help="pairs timed the exec way")
    p.add_argument("--exec-threads", type=int, default=8)
    p.add_argument("--samples", type=int, default=20, help="HTTP samples per path")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--skip-lab", action="store_true")
    p.add_argument("--skip-synthetic", action="store_true")
    return p.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def time_snapshots(project: str, runs: int, samples: int) -> tuple[list[float], Any]:
    """Wall seconds of ``runs`` snapshots of ``project`` and the last snapshot."""
    walls, snap = [], None
    for _ in range(runs):
        started = time.perf_counter()
        snap = revivadiag.snapshot(project=project, samples=samples)
        walls.append(round(time.perf_counter() - started, 3))
    return walls, snap


def time_sweeps(client: docker.DockerClient, snap: Any, runs: int) -> list[float]:
    """Wall seconds of ``collect_sweep`` (dns + reachability in one probe run), fresh engine
    each time, on the snapshot's containers and endpoints."""
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        with ProbeEngine(client) as engine:
            collect_sweep(engine, snap.containers, snap.endpoints, ports=snap.ports)
        walls.append(round(time.perf_counter() - started, 3))
    return walls


def exec_pair(source: str, host: str, port: int) -> bool:
    """One pair the way testinfra's ``addr(host).port(port).is_reachable`` does it."""
    proc = subprocess.run(["docker", "exec", source, "nc", "-w", "1", "-z", host, str(port)],
                          capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


def time_exec(stack: synth.SyntheticStack, pairs: list[tuple[str, str]], threads: int
              ) -> tuple[float, list[bool]]:
    """Wall seconds for ``pairs`` with a pool of ``threads``, and each pair's open/closed."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        opened = list(pool.map(lambda p: exec_pair(stack.container(p[0]), p[1], synth.PORT),
                               pairs))
    return time.perf_counter() - started, opened


def synthetic(client: docker.DockerClient, stack: synth.SyntheticStack,
              args: argparse.Namespace) -> dict[str, Any]:
    """Create the stack, time snapshots and the exec sample; figures."""
    t0 = time.perf_counter()
    synth.create(client, stack.image, args.containers, args.networks, stack)
    say(f"synthetic stack {stack.project}: {args.containers} containers on {args.networks} "
        f"networks created in {time.perf_counter() - t0:.1f}s")
    walls, snap = time_snapshots(stack.project, args.runs, args.samples)
    steps = snap.meta.duration_s
    pairs = stack.pairs()
    reach = snap.reachability
    say(f"snapshot: {walls} s (method {snap.meta.method}); steps {steps}; "
        f"reachability rows {len(reach)}, dns rows {len(snap.dns)}")
    sweeps = time_sweeps(client, snap, args.runs)
    say(f"one-run sweep (collect_sweep: dns + reachability together): {sweeps} s")
    sample = random.Random(args.seed).sample(pairs, min(args.exec_sample, len(pairs)))
    wall, opened = time_exec(stack, sample, args.exec_threads)
    estimate = wall / len(sample) * len(pairs)
    by_pair = {(r.source, r.target_host): r.outcome == "open" for r in reach.itertuples()}
    agree = sum(by_pair.get((stack.container(s), t)) == o for (s, t), o in zip(sample, opened,
                                                                                 strict=True))
    best = min(walls)
    say(f"docker exec way: {len(sample)} of {len(pairs)} pairs in {wall:.2f}s with "
        f"{args.exec_threads} threads -> {1000 * wall / len(sample):.1f} ms/pair, whole matrix "
        f"~{estimate:.1f}s (extrapolated); agreement with revivadiag {agree}/{len(sample)}")
    ratio = estimate / statistics.median(walls)
    say(f"ratio: exec (whole matrix, extrapolated) / snapshot = {ratio:.0f}x "
        f"(median snapshot), {estimate / best:.0f}x (best); probe sweep (dns+reachability) "
        f"{steps.get('dns', 0) + steps.get('reachability', 0):.3f}s")
    return {"containers": args.containers, "networks": args.networks, "pairs": len(pairs),
            "snapshot_s": walls, "snapshot_median_s": statistics.median(walls),
            "snapshot_steps_s": steps, "method": snap.meta.method,
            "sweep_s": round(steps.get("dns", 0) + steps.get("reachability", 0), 4),
            "one_run_sweep_s": sweeps,
            "reachability_rows": len(reach), "dns_rows": len(snap.dns),
            "exec_sample_pairs": len(sample), "exec_sample_wall_s": round(wall, 3),
            "exec_ms_per_pair": round(1000 * wall / len(sample), 2),
            "exec_estimated_matrix_s": round(estimate, 2), "exec_threads": args.exec_threads,
            "exec_agreement": f"{agree}/{len(sample)}",
            "speedup_median": round(estimate / statistics.median(walls), 1),
            "speedup_best": round(estimate / best, 1)}


def lab(client: docker.DockerClient, prefix: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start an isolated current lab, time its snapshot, compare timings with curl."""
    ports = dict(zip(("frontend", "backend", "database", "redis"), pick_free_ports(4),
                     strict=True))
    t0 = time.perf_counter()
    up(LabConfig(prefix=prefix, variant="current", profile="development", ports=ports),
       client=client)
    say(f"lab {prefix} (current) up in {time.perf_counter() - t0:.1f}s")
    walls, snap = time_snapshots(prefix, args.runs, args.samples)
    say(f"lab snapshot: {walls} s; steps {snap.meta.duration_s}")
    engine = ProbeEngine(client)
    frontend = str(snap.containers[snap.containers.service == "frontend"].iloc[0]["name"])
    figures: dict[str, Any] = {"snapshot_s": walls, "snapshot_median_s": statistics.median(walls),
                               "snapshot_steps_s": snap.meta.duration_s}
    for in_flight in (1, 4):
        figures[f"vs_curl_in_flight_{in_flight}"] = fidelity.compare(
            engine, snap, frontend, 2 * args.samples, in_flight)
        say(f"vs curl -w (revivadiag with {in_flight} path(s) in flight): "
            f"{figures[f'vs_curl_in_flight_{in_flight}']}")
    figures["delay"] = fidelity.injected_delay(engine, snap, args.samples)
    say(f"injected delay: {figures['delay']}")
    return figures


def verdicts(fig: dict[str, Any]) -> dict[str, bool]:
    """Each target of the issue, met or not."""
    out: dict[str, bool] = {}
    syn, lab_fig = fig.get("synthetic"), fig.get("lab")
    if syn:
        out["synthetic_snapshot_le_2s"] = syn["snapshot_median_s"] <= 2.0
        out["synthetic_speedup_ge_50x"] = syn["speedup_median"] >= 50
    if lab_fig:
        out["lab_snapshot_le_1s"] = lab_fig["snapshot_median_s"] <= 1.0
        diffs = [v["diff_pct"] for v in lab_fig["vs_curl_in_flight_1"].values()
                 if isinstance(v, dict) and "diff_pct" in v]
        out["medians_within_20pct"] = all(d is not None and abs(d) <= 20 for d in diffs)
        out["delay_within_3ms"] = abs(lab_fig["delay"]["error_ms"]) <= 3
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    client = connect()
    image = find_image(client, None)
    if image is None:
        build_images(client=client)
        image = find_image(client, None)
    assert image is not None
    stack = synth.SyntheticStack(project=f"rdb{secrets.token_hex(4)}", image=image)
    lab_prefix = f"rdb{secrets.token_hex(4)}"
    figures: dict[str, Any] = {"cpus": _cpus()}
    try:
        if not args.skip_synthetic:
            figures["synthetic"] = synthetic(client, stack, args)
            synth.remove(client, stack)
        if not args.skip_lab:
            figures["lab"] = lab(client, lab_prefix, args)
    except KeyboardInterrupt:
        say("interrupted: removing what was created")
        figures["interrupted"] = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        synth.remove(client, stack)
        if not args.skip_lab:
            down(lab_prefix, volumes=True, client=client)
    figures["targets_met"] = verdicts(figures)
    print(json.dumps(figures), flush=True)
    return 0 if all(figures["targets_met"].values()) and "interrupted" not in figures else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
