"""What the migration prober saw, summarised: pure functions over its ``probe_requests`` frame.

Definitions (the same in the summary, the report and the tests):

- **sent**: rows that are requests (every ``op`` but a WebSocket ``close``, which is an
  event the server caused, not a request).
- **failed**: rows with ``ok`` false: requests without a correct answer within their
  deadline, and WebSocket connections the server closed *uncleanly* (no close frame, or a
  code other than 1000/1001). A refused connect retried within the deadline that then got a
  correct answer is *not* failed; it is counted in **retries** (attempts) and
  **retried_requests** (requests that needed one), never hidden.
- **latency** (p50/p99): of the *correct* HTTP answers only (a failure's latency is the
  time to give up, not a service time). Percentiles are pandas' linear interpolation.
- **longest stall**: the longest gap between consecutive correct HTTP answers (answer time
  = sent + latency), counting from the first request sent to the last request's end, so a
  stream that ends in failures stalls until its end. At 20 requests/s a healthy stack
  stalls about 50 ms.
- **failed_by_step**: each failure is charged to the step running when it was observed
  (``step_ended``: the error answer, the refused or reset connection, the deadline
  passing), so a request sent just before a step that broke it counts against that step.
- **during a step** (sent, latency, stall): rows whose ``step`` tag (the step marked when
  they were sent) is that step.
- **during the switch**: during the steps whose kind replaces or reconfigures a
  running service (``service.*``, ``proxy.*``, ``config.*``) when the steps' kinds are
  known, else during any marked step.

>>> from revivadiag.schemas import to_frame
>>> rows = [{"kind": "http", "op": "get", "t_s": i * 0.05, "ok": i != 2,
...          "latency_ms": 10.0, "step": "db" if i >= 2 else "",
...          "step_ended": "db" if i >= 2 else "", "retries": 0} for i in range(5)]
>>> s = summarize(to_frame("probe_requests", rows))
>>> s["sent"], s["failed"], s["failed_by_step"], s["longest_stall_ms"]
(5, 1, {'db': 1}, 100.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: step kinds whose steps are "the switch" (a running service replaced or reconfigured)
SWITCH_PREFIXES = ("service.", "proxy.", "config.")
#: the label of rows sent while no step was marked
NO_STEP = "(no step)"
CLEAN_CLOSE_CODES = (1000, 1001)


def _num(value: float) -> float | None:
    """``value`` rounded to 2 decimals, None for NaN (JSON-able)."""
    return None if value is None or math.isnan(value) else round(float(value), 2)


def percentiles(latencies: pd.Series) -> tuple[float | None, float | None]:
    """(p50, p99) of ``latencies`` in ms, None when there are none.

    >>> percentiles(pd.Series([1.0, 2.0, 3.0, 4.0, 100.0]))
    (3.0, 96.16)
    >>> percentiles(pd.Series([], dtype=float))
    (None, None)
    """
    values = pd.Series(latencies, dtype=float).dropna()
    if values.empty:
        return None, None
    return _num(values.quantile(0.5)), _num(values.quantile(0.99))


def requests_only(requests: pd.DataFrame) -> pd.DataFrame:
    """Rows that are requests (WebSocket close events left out)."""
    return requests[requests["op"] != "close"]


def ok_http_latencies(requests: pd.DataFrame) -> pd.Series:
    """Latencies of the correct HTTP answers."""
    rows = requests[(requests["kind"] == "http") & requests["ok"].fillna(False).astype(bool)]
    return rows["latency_ms"].astype(float)


def longest_stall_ms(requests: pd.DataFrame) -> float | None:
    """The longest gap (ms) between consecutive correct HTTP answers, from the first request
    sent to the last request's end; None when no HTTP request was sent.

    >>> from revivadiag.schemas import to_frame
    >>> f = to_frame("probe_requests", [
    ...     {"kind": "http", "op": "get", "t_s": 0.0, "latency_ms": 5.0, "ok": True},
    ...     {"kind": "http", "op": "get", "t_s": 0.05, "latency_ms": 2000.0, "ok": False},
    ...     {"kind": "http", "op": "get", "t_s": 0.10, "latency_ms": 5.0, "ok": True}])
    >>> longest_stall_ms(f)  # answers at 5 ms and 105 ms; the failure ends at 2050 ms
    1945.0
    """
    http = requests[requests["kind"] == "http"]
    if http.empty:
        return None
    sent = http["t_s"].astype(float)
    ends = sent + http["latency_ms"].astype(float).fillna(0.0) / 1000.0
    ok = http["ok"].fillna(False).astype(bool)
    answers = sorted(ends[ok].tolist())
    marks = [float(sent.min()), *answers, max(float(ends.max()), answers[-1] if answers else 0)]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    return _num(max(gaps) * 1000.0) if gaps else 0.0


def switch_steps(steps: pd.DataFrame | None, marked: list[str]) -> list[str]:
    """The ids of the switch steps (see the module doc).

    >>> switch_steps(pd.DataFrame({"id": ["r", "db", "px"],
    ...     "kind": ["readiness", "service.replace", "proxy.reload"]}), ["r", "db"])
    ['db', 'px']
    >>> switch_steps(None, ["r", "db"])
    ['r', 'db']
    """
    if steps is not None and len(steps) and "kind" in steps.columns:
        return [str(r["id"]) for r in steps.to_dict("records")
                if str(r["kind"]).startswith(SWITCH_PREFIXES)]
    return [m for m in marked if m]


def _part(requests: pd.DataFrame, failed: int) -> dict[str, Any]:
    sent = requests_only(requests)
    p50, p99 = percentiles(ok_http_latencies(requests))
    return {"sent": len(sent), "failed": failed, "p50_ms": p50, "p99_ms": p99,
            "longest_stall_ms": longest_stall_ms(requests)}


def _count(requests: pd.DataFrame, kind: str, op: str, ok: bool | None = None) -> int:
    rows = requests[(requests["kind"] == kind) & (requests["op"] == op)]
    if ok is not None:
        rows = rows[rows["ok"].fillna(False).astype(bool) == ok]
    return len(rows)


def rate_achieved(requests: pd.DataFrame) -> float | None:
    """HTTP requests per second over the span from the first to the last one sent.

    >>> from revivadiag.schemas import to_frame
    >>> rate_achieved(to_frame("probe_requests", [{"kind": "http", "op": "get",
    ...     "t_s": i / 20} for i in range(41)]))
    20.0
    """
    sent = requests[requests["kind"] == "http"]["t_s"].astype(float)
    if len(sent) < 2 or sent.max() <= sent.min():
        return None
    return _num((len(sent) - 1) / (sent.max() - sent.min()))


def session_outcome(requests: pd.DataFrame, skipped: Mapping[str, str]) -> str:
    """survived, lost (a check failed), login failed, or why no session was run."""
    if "session" in skipped:
        return f"not run: {skipped['session']}"
    rows = requests[requests["kind"] == "session"]
    if rows.empty:
        return "not run"
    first = rows.sort_values("seq").iloc[0]
    if first["op"] in ("login", "write") and not bool(first["ok"]):
        return f"{first['op']} failed"
    checks = rows[rows["op"] == "check"]
    if checks.empty:
        return "not checked"
    return "survived" if bool(checks["ok"].fillna(False).all()) else "lost"


def summarize(requests: pd.DataFrame, *, steps: pd.DataFrame | None = None,
              meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The figures of one probe run (definitions in the module doc); JSON-able."""
    meta = dict(meta or {})
    skipped = dict(meta.get("skipped") or {})
    tags = requests["step"].fillna("").astype(str)
    failed = requests[~requests["ok"].fillna(False).astype(bool)]
    failed_tags = failed["step_ended"].fillna("").astype(str).replace("", NO_STEP)
    charged = failed_tags.value_counts()
    marked = [t for t in dict.fromkeys([*tags.tolist(), *failed_tags.tolist()])
              if t and t != NO_STEP]
    switch = switch_steps(steps, marked)
    during = requests[tags.isin(switch)]
    overall = _part(requests, len(failed))
    retries = requests["retries"].fillna(0).astype(int)
    out: dict[str, Any] = {
        "sent": overall["sent"],
        "ok": int(requests_only(requests)["ok"].fillna(False).astype(bool).sum()),
        "failed": overall["failed"],
        "failed_by_step": {str(k): int(v) for k, v in charged.items()},
        "failed_by_kind": {str(k): int(v) for k, v in failed["kind"].value_counts().items()},
        "retries": int(retries.sum()),
        "retried_requests": int((retries > 0).sum()),
        "longest_stall_ms": overall["longest_stall_ms"],
        "p50_ms": overall["p50_ms"],
        "p99_ms": overall["p99_ms"],
        "switch_steps": switch,
        "p99_during_switch_ms": percentiles(ok_http_latencies(during))[1],
        "longest_stall_during_switch_ms": longest_stall_ms(during),
        "by_step": {step: _part(requests[tags == step], int(charged.get(step, 0)))
                    for step in marked},
        "http_sent": _count(requests, "http", "get"),
        "rate_achieved": rate_achieved(requests),
        "ws_echoes": _count(requests, "ws", "echo"),
        "ws_echoes_failed": _count(requests, "ws", "echo", ok=False),
        "ws_reconnects": _count(requests, "ws", "reconnect", ok=True),
        "ws_failed_reconnects": _count(requests, "ws", "reconnect", ok=False),
        "ws_clean_closes": _count(requests, "ws", "close", ok=True),
        "ws_unclean_closes": _count(requests, "ws", "close", ok=False),
        "session": session_outcome(requests, skipped),
        "session_checks": _count(requests, "session", "check"),
        "session_checks_failed": _count(requests, "session", "check", ok=False),
        "skipped": skipped,
    }
    for key in ("duration_s", "stopped_by", "missed_slots", "schedule_s", "cpu_s", "rate",
                "deadline_s"):
        if key in meta:
            out[key] = meta[key]
    return out


@dataclass
class ProbeReport:
    """A finished probe run: the ``probe_requests`` frame, the step marks (``step``,
    ``started``, ``ended``, ``started_s``, ``ended_s``) and the run's facts (target,
    duration, why it stopped, CPU seconds, missed slots, skipped parts)."""

    requests: pd.DataFrame
    marks: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self, steps: pd.DataFrame | None = None) -> dict[str, Any]:
        """:func:`summarize` of this run; ``steps`` (id, kind, ...) from the journal tells
        which steps are the switch."""
        return summarize(self.requests, steps=steps, meta=self.meta)

    def steps(self) -> pd.DataFrame:
        """The marked steps as a steps frame (id, kind, started, ended, status) for
        :func:`revivadiag.render.migration.timeline_figure` when no journal is at hand."""
        marks = self.marks
        if marks.empty:
            return pd.DataFrame({"id": [], "kind": [], "started": [], "ended": [],
                                 "status": []})
        return pd.DataFrame({"id": marks["step"], "kind": "", "started": marks["started"],
                             "ended": marks["ended"], "status": ""})
