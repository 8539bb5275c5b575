"""The health monitor's own cost, and container stats concurrent vs serial, on the lab.

    .venv/bin/python benchmarks/bench_monitor.py [--cycles 30] [--replay 10000]
                     [--project P] [--out FILE]

Writes the key ``monitor`` of ``benchmarks/results.json`` (the other keys are left as they
are; ``benchmarks/readme_table.py`` renders it into the README). Without ``--project`` it
starts an isolated copy of the lab (variant current) and removes it at the end, also on
Ctrl-C or SIGTERM.

``cycle``
    ``--cycles`` real cycles of :meth:`HealthMonitor.run_once` on the lab, after one warm-up
    cycle (the first learns the stack's roles). ``cpu_ms``: ``time.process_time()`` around
    each (this process, every thread: the API calls, the host-side PostgreSQL/Redis checks,
    building the rows and folding them in; not the time spent waiting for answers).
    ``helper_cpu_ms``: the CPU of the setns probe helper processes over the same cycles (the
    in-network checks run there), from /proc. ``wall_ms``: each cycle's wall time.
``memory``
    ``--replay`` cycles driven through :meth:`HealthMonitor.ingest` with the health rows of
    one real cycle on the lab (recorded, so that 10,000 cycles do not take 10,000 probe
    rounds): traced Python memory and RSS at checkpoints and at the end, and the rows the
    history holds (its ring of 10,000 rows fills after 2,500 cycles of the lab's 4
    services). Flat: the traced memory at the end is within 2 % of the figure when the
    ring was first full.
``stats``
    :func:`collect_stats` on the lab with its default thread pool against ``threads=1`` (one
    ``stats`` call after another), median of 3 each.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
GOAL_CPU_MS = 20.0
#: replayed cycles at which memory is read (the history ring is full after 10,000 rows:
#: 2,500 cycles of a 4-service stack)
CHECKPOINTS = (1_000, 2_500, 5_000, 7_500)


def say(text: str) -> None:
    print(f"[bench_monitor] {text}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=30, help="real cycles timed")
    p.add_argument("--replay", type=int, default=10_000, help="recorded cycles replayed")
    p.add_argument("--project", help="an existing project to use instead of a new lab")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def helper_cpu_s() -> float:
    """CPU seconds of this process's child processes and their reaped children (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == me:  # ppid
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cycles(project: str, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Real cycles; their figures, and the health rows of the last one (for the replay)."""
    from revivadiag.collect.monitor import HealthMonitor

    with HealthMonitor(project, interval_s=30) as mon:
        w0 = time.perf_counter()
        mon.run_once()
        first_ms = (time.perf_counter() - w0) * 1000
        cpu, helpers, wall = [], [], []
        for _ in range(count):
            h0, c0, w0 = helper_cpu_s(), time.process_time(), time.perf_counter()
            mon.run_once()
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            helpers.append((helper_cpu_s() - h0) * 1000)
        services = sorted(mon.status()["service"])
        recorded = [dict(r) for r in mon.last_rows]
    med = statistics.median
    figures = {
        "services": services, "cycles": count, "first_cycle_ms": round(first_ms, 1),
        "cpu_ms": [round(c, 2) for c in cpu], "cpu_median_ms": round(med(cpu), 2),
        "cpu_p95_ms": round(sorted(cpu)[int(0.95 * (len(cpu) - 1))], 2),
        "helper_cpu_median_ms": round(med(helpers), 2),
        "wall_median_ms": round(med(wall), 1), "load": round(os.getloadavg()[0], 2),
        "goal_cpu_ms": GOAL_CPU_MS, "cpu_goal_met": med(cpu) < GOAL_CPU_MS,
    }
    return figures, recorded


def replay(rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """``count`` recorded cycles through ``ingest``: memory at checkpoints."""
    from revivadiag.collect.monitor import HealthMonitor

    failing = [dict(r, status="unhealthy", detail="replayed failure")
               if r["check"] == "http" else r for r in rows]
    mon = HealthMonitor("replay", interval_s=30, client=object(), prober=object())  # type: ignore[arg-type]
    tracemalloc.start()
    points: dict[str, Any] = {}
    started = time.perf_counter()
    cpu0 = time.process_time()
    for i in range(1, count + 1):
        mon.ingest(failing if i % 10 == 0 else rows, at=1_800_000_000.0 + 30 * i)
        if i in CHECKPOINTS or i == count:
            traced, _ = tracemalloc.get_traced_memory()
            points[str(i)] = {"traced_kb": round(traced / 1024, 1), "rss_mb": rss_mb(),
                              "history_rows": mon.history_size}
    per_cycle_ms = (time.process_time() - cpu0) * 1000 / count
    tracemalloc.stop()
    full = next(str(i) for i in (*CHECKPOINTS, count)
                if str(i) in points and points[str(i)]["history_rows"] >= 10_000)
    first, last = points[full]["traced_kb"], points[str(count)]["traced_kb"]
    return {"cycles": count, "recorded_from": "one real cycle's health rows on the lab "
            "(every 10th cycle replayed with its http check failed)",
            "checkpoints": points, "history_rows_max": 10_000, "ring_full_at": int(full),
            "traced_growth_kb_after_ring_full": round(last - first, 1),
            "flat": abs(last - first) < 0.02 * max(first, 1.0) + 16,
            "ingest_cpu_ms": round(per_cycle_ms, 3),
            "wall_s": round(time.perf_counter() - started, 2)}


def stats_timing(client: Any, project: str) -> dict[str, Any]:
    from revivadiag.collect.container_stats import STATS_THREADS, collect_stats

    out: dict[str, Any] = {}
    for name, threads in (("concurrent", STATS_THREADS), ("serial", 1)):
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            frame = collect_stats(client, project, threads=threads)
            walls.append(time.perf_counter() - t0)
        out[f"{name}_median_s"] = round(statistics.median(walls), 3)
    out["containers"] = len(frame)
    out["speedup"] = round(out["serial_median_s"] / out["concurrent_median_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path.insert(0, str(HERE.parent))
    from revivadiag.engine.client import connect
    from revivadiag.lab import down, up
    from revivadiag.lab.lifecycle import isolated_config

    client = connect()
    prefix = args.project or ""
    started_lab = False
    figures: dict[str, Any] = {}
    try:
        if not prefix:
            config = isolated_config("current", "development", stem="rdb")
            prefix = config.prefix
            say(f"starting lab {prefix}")
            started_lab = True
            up(config, client=client)
        figures["cycle"], rows = cycles(prefix, args.cycles)
        say(f"cycle: {figures['cycle']}")
        figures["memory"] = replay(rows, args.replay)
        say(f"memory: {figures['memory']}")
        figures["stats"] = stats_timing(client, prefix)
        say(f"stats: {figures['stats']}")
    except KeyboardInterrupt:
        say("interrupted: removing what was created")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if started_lab:
            down(prefix, volumes=True, client=client)
        client.close()
    figures["run"] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "command": " ".join(["benchmarks/bench_monitor.py",
                                           *(argv if argv is not None else sys.argv[1:])])}
    results = (json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {})
    results["monitor"] = figures
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    say(f"wrote the key 'monitor' of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
