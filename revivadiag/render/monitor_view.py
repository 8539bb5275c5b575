"""Text and JSON forms of the health monitor's frames (pure: frames in, text out).

:func:`status_table` draws ``monitor_status`` as a fixed-width table, :func:`cycle_line` as
one line, :func:`summary_table` draws ``monitor_summary``; :func:`event` builds the JSON
objects ``revivadiag monitor --json`` prints one per line.

>>> from revivadiag.schemas import to_frame
>>> st = to_frame("monitor_status", [{"service": "api", "role": "backend",
...     "status": "healthy", "response_ms": 2.5, "error_rate_pct": 0.0,
...     "consecutive_failures": 0, "circuit": "closed", "detail": "http: HTTP 200"}])
>>> print(cycle_line(st, "12:00:00", 3))
12:00:00 cycle 3: api healthy 2.5 ms
>>> print(status_table(st).splitlines()[2])
api      backend  healthy      2.5    0.0      0  closed   -      http: HTTP 200
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

STATUS_COLUMNS = ("SERVICE", "ROLE", "STATUS", "RESP ms", "ERR %", "FAILS", "CIRCUIT", "SINCE",
                  "DETAIL")
SUMMARY_COLUMNS = ("SERVICE", "ROLE", "STATUS", "CHANGES", "HEALTHY s", "DEGRADED s",
                   "UNHEALTHY s", "UNKNOWN s", "ERR %", "p50 ms", "p95 ms")


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return f"{float(value):.{digits}f}"


def _time(value: Any) -> str:
    if value is None or value is pd.NaT or pd.isna(value):
        return "-"
    return str(pd.Timestamp(value).strftime("%H:%M:%S"))


def _grid(header: tuple[str, ...], body: list[list[str]], numeric: set[int],
          width: int) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = []
    for cells in [list(header), ["-" * w for w in widths], *body]:
        parts = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        lines.append("  ".join(parts).rstrip()[:width])
    return "\n".join(lines)


def _engines(frame: pd.DataFrame) -> bool:
    """True when ``frame``'s rows come from more than one engine."""
    return "engine" in frame.columns and frame["engine"].nunique() > 1


def who(row: Mapping[str, Any], several: bool) -> str:
    """A row's service, as ``<engine>/<service>`` when rows come from several engines (an
    engine's own row, with no service, is the engine alone).

    >>> who({"engine": "tcp://b:2375", "service": "api"}, True), who({"service": "api"}, False)
    ('tcp://b:2375/api', 'api')
    """
    if not several:
        return str(row["service"])
    return "/".join(str(p) for p in (row.get("engine"), row["service"]) if p)


def status_table(status: pd.DataFrame, width: int = 160) -> str:
    """``monitor_status`` as a text table at most ``width`` characters wide."""
    several = _engines(status)
    body = [[who(r, several), str(r["role"] or "-"), str(r["status"]),
             _num(r["response_ms"]), _num(r["error_rate_pct"]),
             str(int(r["consecutive_failures"])) if pd.notna(r["consecutive_failures"]) else "-",
             str(r["circuit"]), _time(r["since"]), str(r["detail"] or "")]
            for r in status.to_dict("records")]
    return _grid(STATUS_COLUMNS, body, {3, 4, 5}, width)


def cycle_line(status: pd.DataFrame, at: str, cycle: int) -> str:
    """One line per cycle: each service's status and response time."""
    parts = []
    several = _engines(status)
    for r in status.to_dict("records"):
        ms = _num(r["response_ms"])
        parts.append(f"{who(r, several)} {r['status']}" + (f" {ms} ms" if ms != "-" else ""))
    return f"{at} cycle {cycle}: " + ", ".join(parts)


def change_line(change: Mapping[str, Any], several: bool = False) -> str:
    """A status change as one line.

    >>> change_line({"at": "2026-01-01T12:00:00.000+00:00", "service": "api",
    ...              "old": "healthy", "new": "unhealthy", "detail": "http: refused"})
    '12:00:00 api: healthy -> unhealthy (http: refused)'
    """
    at = str(change["at"])[11:19]
    return (f"{at} {who(change, several)}: {change['old'] or '(first seen)'} -> {change['new']}"
            f" ({change['detail']})")


def summary_table(summary: pd.DataFrame, width: int = 160) -> str:
    """``monitor_summary`` as a text table."""
    several = _engines(summary)
    body = [[who(r, several), str(r["role"] or "-"), str(r["status"]), str(r["changes"]),
             _num(r["healthy_s"]), _num(r["degraded_s"]), _num(r["unhealthy_s"]),
             _num(r["unknown_s"]), _num(r["error_rate_pct"]), _num(r["p50_ms"]),
             _num(r["p95_ms"])] for r in summary.to_dict("records")]
    return _grid(SUMMARY_COLUMNS, body, set(range(3, 11)), width)


def jsonable(value: Any) -> Any:
    """A cell as JSON: NaN/NA -> None, timestamps -> ISO text, numpy numbers -> Python.

    >>> jsonable(float("nan")), jsonable(pd.Timestamp("2026-01-01T00:00:00Z"))
    (None, '2026-01-01T00:00:00.000+00:00')
    """
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat(timespec="milliseconds")
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts."""
    return [{k: jsonable(v) for k, v in r.items()} for r in frame.to_dict("records")]


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """One ``--json`` line: ``{"event": kind, ...}`` with every value JSON-ready."""
    return {"event": kind, **{k: jsonable(v) if not isinstance(v, (list, dict)) else v
                              for k, v in fields.items()}}
