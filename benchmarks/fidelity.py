"""Fidelity of revivadiag's HTTP timings: against ``curl -w`` in the same container, and an
injected backend delay.

``curl`` runs inside the proxy (frontend) container through ``docker exec`` (its own ``-w``
timers exclude the exec overhead); revivadiag measures from the same network namespace.
Both open a new connection per request, so ``time_connect`` (lookup + TCP connect) compares
with revivadiag's cumulative ``connect_ms`` and ``time_total`` with ``total_ms``.
"""

from __future__ import annotations

import statistics
import subprocess
from typing import Any

import pandas as pd

from revivadiag.collect.latency import measure_latency

CURL_FORMAT = "%{time_connect} %{time_starttransfer} %{time_total}"


def curl_samples(container: str, url: str, samples: int, warmup: int = 3) -> list[dict[str, float]]:
    """``curl -w`` timings (ms) of ``url`` from inside ``container``, warm-up discarded."""
    out: list[dict[str, float]] = []
    for i in range(warmup + samples):
        proc = subprocess.run(
            ["docker", "exec", container, "curl", "-s", "-o", "/dev/null", "-w", CURL_FORMAT,
             "--max-time", "5", url], capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0 or i < warmup:
            continue
        connect, first_byte, total = (float(x) * 1000 for x in proc.stdout.split())
        out.append({"connect_ms": connect, "first_byte_ms": first_byte, "total_ms": total})
    return out


def rd_samples(engine: Any, snap: Any, path: str, samples: int, in_flight: int) -> pd.DataFrame:
    """revivadiag's raw samples for ``path`` (direct and proxy, from the frontend's netns)."""
    run = measure_latency(engine, snap.containers, snap.ports, samples=samples, path=path,
                          from_host=False, in_flight=in_flight)
    good: pd.DataFrame = run.samples[run.samples["error_type"].fillna("") == ""]
    return good


def compare(engine: Any, snap: Any, frontend: str, samples: int, in_flight: int) -> dict[str, Any]:
    """Median connect and total times, revivadiag vs curl, for the direct and proxy paths."""
    rd = rd_samples(engine, snap, "/api/health", samples, in_flight)
    urls = {"direct": "http://backend:3011/api/health",
            "proxy": "http://127.0.0.1:3010/api/health"}
    figures: dict[str, Any] = {}
    for path, url in urls.items():
        curl = curl_samples(frontend, url, samples)
        mine = rd[rd["path"] == path]
        for metric in ("connect_ms", "total_ms"):
            a = float(mine[metric].median())
            b = statistics.median(s[metric] for s in curl) if curl else float("nan")
            figures[f"{path}_{metric}"] = {"revivadiag_p50": round(a, 3),
                                          "curl_p50": round(b, 3),
                                          "diff_pct": round(100 * (a - b) / b, 1) if b else None}
    return figures


def injected_delay(engine: Any, snap: Any, samples: int, delay_ms: int = 50) -> dict[str, Any]:
    """Backend delay measured directly: median first byte with ?ms=50 minus with ?ms=0."""
    medians = {}
    for ms in (0, delay_ms):
        rd = rd_samples(engine, snap, f"/api/debug/delay?ms={ms}", samples, in_flight=1)
        direct = rd[rd["path"] == "direct"]
        medians[ms] = float((direct["first_byte_ms"] - direct["connect_ms"]).median())
    measured = medians[delay_ms] - medians[0]
    return {"injected_ms": delay_ms, "measured_ms": round(measured, 3),
            "error_ms": round(measured - delay_ms, 3)}
