"""Fidelity of revivadiag's HTTP timings: against ``curl -w`` in the same container, and an
injected backend delay.

``curl`` runs inside the proxy (frontend) container through one ``docker exec`` making all
requests (its ``-w`` timers exclude the exec overhead, and the process is warm after the
warm-up requests); revivadiag measures from the same network namespace.
Both open a new connection per request and report cumulative times, so the same intervals
are compared: the TCP connect (``time_connect - time_namelookup``) and the HTTP exchange
(``time_total - time_connect``).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pandas as pd

from revivadiag.collect.latency import measure_latency

CURL_FORMAT = "%{time_namelookup} %{time_connect} %{time_starttransfer} %{time_total}"
#: what is compared: the same intervals on both sides (curl's lookup asks A and AAAA through
#: glibc, revivadiag one A query, so name lookup is reported but not compared)
METRICS = {
    "tcp_connect_ms": ("connect_ms", "dns_ms"),  # connect done - lookup done
    "http_exchange_ms": ("total_ms", "connect_ms"),  # response read - connect done
}


def curl_samples(container: str, url: str, samples: int, warmup: int = 3) -> pd.DataFrame:
    """``curl -w`` timings (ms, cumulative like revivadiag's) of ``url`` inside ``container``.

    One curl process makes every request (warm, like revivadiag's worker after its warm-up),
    each on a new connection (``Connection: close``, as revivadiag sends).
    """
    argv = ["docker", "exec", container, "curl", "-s", "--max-time", "5",
            "-H", "Connection: close", "-w", CURL_FORMAT + "\\n"]
    for _ in range(warmup + samples):
        argv += ["-o", "/dev/null", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    rows = []
    for line in proc.stdout.splitlines()[warmup:]:
        dns, connect, first_byte, total = (float(x) * 1000 for x in line.split())
        rows.append({"dns_ms": dns, "connect_ms": connect, "first_byte_ms": first_byte,
                     "total_ms": total})
    return pd.DataFrame(rows, columns=["dns_ms", "connect_ms", "first_byte_ms", "total_ms"])


def rd_samples(engine: Any, snap: Any, path: str, samples: int, in_flight: int) -> pd.DataFrame:
    """revivadiag's raw samples for ``path`` (direct and proxy, from the frontend's netns)."""
    run = measure_latency(engine, snap.containers, snap.ports, samples=samples, path=path,
                          from_host=False, in_flight=in_flight)
    good: pd.DataFrame = run.samples[run.samples["error_type"].fillna("") == ""]
    return good


def interval(frame: pd.DataFrame, end: str, start: str) -> float:
    """Median of ``end - start`` over the samples."""
    return float((frame[end].astype(float) - frame[start].astype(float)).median())


def compare(engine: Any, snap: Any, frontend: str, samples: int, in_flight: int,
            rounds: int = 4) -> dict[str, Any]:
    """Median TCP connect and HTTP exchange times, revivadiag vs curl, direct and proxy.

    revivadiag and curl take turns in ``rounds`` blocks, so that a change of the machine's
    load between blocks biases neither side.
    """
    urls = {"direct": "http://backend:3011/api/health",
            "proxy": "http://127.0.0.1:3010/api/health"}
    per_round = max(1, samples // rounds)
    rd_parts, curl_parts = [], {path: [] for path in urls}  # type: ignore[var-annotated]
    for _ in range(rounds):
        rd_parts.append(rd_samples(engine, snap, "/api/health", per_round, in_flight))
        for path, url in urls.items():
            curl_parts[path].append(curl_samples(frontend, url, per_round, warmup=2))
    rd = pd.concat(rd_parts)
    figures: dict[str, Any] = {"samples_per_side": per_round * rounds}
    for path in urls:
        curl = pd.concat(curl_parts[path])
        mine = rd[rd["path"] == path]
        for name, (end, start) in METRICS.items():
            a, b = interval(mine, end, start), interval(curl, end, start)
            figures[f"{path}_{name}"] = {"revivadiag_p50": round(a, 3), "curl_p50": round(b, 3),
                                         "diff_pct": round(100 * (a - b) / b, 1) if b else None}
        figures[f"{path}_lookup_ms"] = {"revivadiag_p50": round(float(mine["dns_ms"].median()), 3),
                                        "curl_p50": round(float(curl["dns_ms"].median()), 3)}
    return figures


def injected_delay(engine: Any, snap: Any, samples: int, delay_ms: int = 50) -> dict[str, Any]:
    """Backend delay measured directly: median first byte with ?ms=50 minus with ?ms=0."""
    medians = {}
    for ms in (0, delay_ms):
        rd = rd_samples(engine, snap, f"/api/debug/delay?ms={ms}", samples, in_flight=1)
        medians[ms] = interval(rd[rd["path"] == "direct"], "first_byte_ms", "connect_ms")
    measured = medians[delay_ms] - medians[0]
    return {"injected_ms": delay_ms, "measured_ms": round(measured, 3),
            "error_ms": round(measured - delay_ms, 3)}
