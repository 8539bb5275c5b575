"""The migration prober's own cost, written to ``benchmarks/results.json`` under ``prober``.

    .venv/bin/python benchmarks/bench_prober.py [--duration 20] [--runs 3] [--rate 20]
                     [--out FILE]

Starts an isolated copy of the lab (variant target, development profile, prefix
``rdb<hex>``), learns the prober's target from it (:func:`revivadiag.migrate.prober.probe_target`:
HTTP paths, WebSocket, session) and runs the prober ``--runs`` times for ``--duration``
seconds at ``--rate`` requests/s. Per run: HTTP requests/s achieved, schedule slots missed,
requests failed, p50/p99 latency, and CPU seconds: the prober's own thread
(``time.thread_time`` inside it) and the whole process, each also per second of probing.
The 1-minute load average before and after says how busy the shared machine was.

Only the ``prober`` key of the results file is replaced; every other section keeps its
figures (``bench_snapshot.py`` keeps this one in turn). Traffic goes to 127.0.0.1 only;
the lab is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_snapshot import _interrupt, say  # the same conventions as the other benchmark

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rate", type=float, default=20.0, help="HTTP requests/s")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def one_run(target: Any, rate: float, duration: float) -> dict[str, Any]:
    """One prober run: what it achieved and what it cost."""
    from revivadiag.migrate.prober import Prober

    cpu0, wall0 = time.process_time(), time.perf_counter()
    prober = Prober(target, rate=rate, max_duration_s=duration).start()
    while prober.running:
        time.sleep(0.2)
    report = prober.stop()
    wall = time.perf_counter() - wall0
    process_cpu = time.process_time() - cpu0
    s = report.summary()
    return {"rate_achieved": s["rate_achieved"], "http_sent": s["http_sent"],
            "sent": s["sent"], "failed": s["failed"], "missed_slots": s["missed_slots"],
            "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "duration_s": s["duration_s"],
            "prober_cpu_s": s["cpu_s"],
            "prober_cpu_s_per_s": round(s["cpu_s"] / s["duration_s"], 4),
            "process_cpu_s_per_s": round(process_cpu / wall, 4),
            "ws_echoes": s["ws_echoes"], "session": s["session"]}


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return round(statistics.median(values), 4) if values else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    from revivadiag.engine.client import connect
    from revivadiag.lab import LabConfig, down, up
    from revivadiag.lab.lifecycle import pick_free_ports
    from revivadiag.migrate.prober import probe_target

    client = connect()
    prefix = f"rdb{secrets.token_hex(4)}"
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "command": " ".join(["benchmarks/bench_prober.py", *(argv or sys.argv[1:])])}
    runs: list[dict[str, Any]] = []
    load_before = round(os.getloadavg()[0], 2)
    try:
        services = ("frontend", "backend", "database", "redis")
        ports = dict(zip(services, pick_free_ports(4), strict=True))
        up(LabConfig(prefix=prefix, variant="target", profile="development", ports=ports),
           client=client)
        target = probe_target(client, prefix)
        say(f"target: {json.dumps(target.describe())}")
        for i in range(args.runs):
            runs.append(one_run(target, args.rate, args.duration))
            say(f"run {i + 1}: {json.dumps(runs[-1])}")
    except KeyboardInterrupt:
        say("interrupted: removing the lab")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        down(prefix, volumes=True, client=client)
    figures = {
        "rate": args.rate, "duration_s": args.duration, "runs": runs,
        "rate_achieved_median": median_of(runs, "rate_achieved"),
        "prober_cpu_s_per_s_median": median_of(runs, "prober_cpu_s_per_s"),
        "process_cpu_s_per_s_median": median_of(runs, "process_cpu_s_per_s"),
        "failed_median": median_of(runs, "failed"),
        "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
        "cpus": len(os.sched_getaffinity(0)), "run": stamp,
    }
    previous: dict[str, Any] = (json.loads(args.out.read_text(encoding="utf-8"))
                                if args.out.is_file() else {})
    previous["prober"] = figures
    args.out.write_text(json.dumps(previous, indent=1) + "\n", encoding="utf-8")
    say(f"wrote the prober section of {args.out}: "
        f"{json.dumps({k: v for k, v in figures.items() if k != 'runs'})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
