"""A monitoring run summed up: frame ``monitor_history`` in, frame ``monitor_summary`` out.

Per service: the status at the end, the status changes after the first status seen, the
seconds spent in each status (each cycle's status lasts until the next cycle, the last one
until ``until``), the error rate over the cycles that checked it, p50/p95 of its main
check's response time and the longest run of unhealthy cycles. Pure: nothing is collected.

>>> from revivadiag.schemas import to_frame
>>> h = to_frame("monitor_history", [
...   {"at": "2026-01-01T00:00:00Z", "cycle": 1, "service": "api", "status": "healthy",
...    "response_ms": 2.0, "checked": True},
...   {"at": "2026-01-01T00:00:10Z", "cycle": 2, "service": "api", "status": "unhealthy",
...    "response_ms": 4.0, "checked": True},
...   {"at": "2026-01-01T00:00:20Z", "cycle": 3, "service": "api", "status": "healthy",
...    "response_ms": 2.0, "checked": True}])
>>> row = summarize(h, until=pd.Timestamp("2026-01-01T00:00:25Z")).iloc[0]
>>> [row[c].item() for c in ("changes", "healthy_s", "unhealthy_s", "error_rate_pct", "p50_ms")]
[2, 15.0, 10.0, 33.3, 2.0]
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from revivadiag.schemas import HEALTH_STATES, to_frame


def summarize(history: pd.DataFrame, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The ``monitor_summary`` frame of ``history`` (``until``: end of the run; default the
    last cycle's time)."""
    if history.empty:
        return to_frame("monitor_summary", [])
    end = until if until is not None else history["at"].max()
    keys = ["engine", "service"] if "engine" in history.columns else ["service"]
    rows = [{**_service(str(key[-1]), group.sort_values(["at", "cycle"]), end),
             "engine": str(key[0]) if len(key) > 1 else ""}
            for key, group in history.fillna({"engine": ""}).groupby(keys, sort=True)]
    return to_frame("monitor_summary", rows)


def _service(service: str, rows: pd.DataFrame, end: pd.Timestamp) -> dict[str, Any]:
    status = rows["status"].astype(str).tolist()
    at = rows["at"].tolist()
    durations = [max(0.0, (b - a).total_seconds()) for a, b in zip(at, [*at[1:], end],
                                                                     strict=True)]
    spent = dict.fromkeys(HEALTH_STATES, 0.0)
    for state, seconds in zip(status, durations, strict=True):
        spent[state if state in spent else "unknown"] += seconds
    checked = rows["checked"].fillna(False).astype(bool)
    failed = (rows["status"] == "unhealthy") & checked
    times = rows["response_ms"].dropna().astype(float).to_numpy()
    return {
        "service": service, "role": str(rows["role"].dropna().iloc[-1])
        if rows["role"].notna().any() else "",
        "status": status[-1], "changes": sum(a != b for a, b in pairwise(status)),
        "cycles": len(rows),
        **{f"{state}_s": round(seconds, 3) for state, seconds in spent.items()},
        "error_rate_pct": round(100.0 * int(failed.sum()) / int(checked.sum()), 1)
        if checked.any() else None,
        "p50_ms": round(float(np.percentile(times, 50)), 3) if len(times) else None,
        "p95_ms": round(float(np.percentile(times, 95)), 3) if len(times) else None,
        "max_consecutive_failures": _longest(failed.tolist()),
    }


def _longest(flags: list[bool]) -> int:
    """Longest run of True.

    >>> _longest([True, False, True, True, False])
    2
    """
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best
