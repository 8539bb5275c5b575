"""The migration report's prober timeline and summary table.

:func:`timeline_figure` draws every request the prober sent (latency over time, log scale):
HTTP answers as dots, WebSocket echoes and session checks in their own colours, requests
answered only after a retry in orange, failures as red crosses (at the time they gave up),
WebSocket closes as dotted lines; each step of the migration is a labelled band from its
start to its end (hatched red when the step failed). :func:`summary_table` gives the
summary's figures as an escaped HTML table. Both take plain frames: the prober's
``probe_requests`` frame and a steps frame (``id``, ``kind``, ``started``, ``ended``,
``status``; times as timestamps, ISO text or epoch seconds) from the journal or from
:meth:`revivadiag.migrate.probe_report.ProbeReport.steps`.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state);
:func:`revivadiag.render.draw.show` displays one in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pandas.io.formats.style import Styler

from revivadiag.render.tables import plain_table

BAND_COLORS = ("#e3f2fd", "#f1f8e9")
FAILED_BAND = "#ffcdd2"
KIND_STYLE = {
    "http": {"color": "#1565c0", "label": "HTTP answer"},
    "ws": {"color": "#2e7d32", "label": "WebSocket echo / connect"},
    "session": {"color": "#6a1b9a", "label": "session check"},
}
RETRIED_COLOR = "#ef6c00"
FAILED_COLOR = "#c62828"
#: the labels of the summary table, in order (summary key -> shown as)
SUMMARY_ROWS = {
    "sent": "requests sent",
    "ok": "correct answers",
    "failed": "failed",
    "failed_by_step": "failed, by step",
    "retries": "connect retries (within the deadline)",
    "retried_requests": "requests answered after a retry",
    "longest_stall_ms": "longest stall (ms)",
    "longest_stall_during_switch_ms": "longest stall during the switch (ms)",
    "p50_ms": "p50 latency (ms)",
    "p99_ms": "p99 latency (ms)",
    "p99_during_switch_ms": "p99 latency during the switch (ms)",
    "rate_achieved": "HTTP requests/s achieved",
    "ws_echoes": "WebSocket echoes",
    "ws_echoes_failed": "WebSocket echoes failed",
    "ws_clean_closes": "WebSocket clean closes",
    "ws_unclean_closes": "WebSocket unclean closes",
    "ws_reconnects": "WebSocket reconnects",
    "ws_failed_reconnects": "WebSocket failed reconnects",
    "session": "session",
    "duration_s": "duration (s)",
    "stopped_by": "stopped by",
    "missed_slots": "schedule slots missed",
    "skipped": "parts not run",
}


def to_utc(values: Any) -> pd.Series:
    """Timestamps, ISO text or epoch seconds as UTC timestamps.

    >>> to_utc(pd.Series([0.0, "1970-01-01T00:00:01Z"])).dt.second.tolist()
    [0, 1]
    """
    series = pd.Series(values)
    out = []
    for v in series.tolist():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(pd.Timestamp(v, unit="s", tz="UTC") if pd.notna(v) else pd.NaT)
        else:
            out.append(pd.to_datetime(v, utc=True) if v is not None else pd.NaT)
    return pd.Series(out, index=series.index, dtype="datetime64[ns, UTC]")


def _seconds(times: pd.Series, origin: pd.Timestamp) -> pd.Series:
    return (to_utc(times) - origin).dt.total_seconds()


def origin_of(requests: pd.DataFrame, steps: pd.DataFrame | None) -> pd.Timestamp | None:
    """The earliest time in either frame (the timeline's zero)."""
    times = []
    if len(requests):
        times.append(to_utc(requests["t"]).min())
    if steps is not None and len(steps):
        times.append(to_utc(steps["started"]).min())
    times = [t for t in times if pd.notna(t)]
    return min(times) if times else None


def _draw_steps(ax: Axes, steps: pd.DataFrame, origin: pd.Timestamp, end_s: float) -> None:
    starts = _seconds(steps["started"], origin)
    ends = _seconds(steps["ended"], origin)
    for i, rec in enumerate(steps.to_dict("records")):
        start = float(starts.iloc[i])
        end = float(ends.iloc[i]) if pd.notna(ends.iloc[i]) else end_s
        failed = str(rec.get("status", "")) in ("failed", "rolled_back")
        ax.axvspan(start, max(end, start), color=FAILED_BAND if failed
                   else BAND_COLORS[i % len(BAND_COLORS)], alpha=0.8, zorder=0, lw=0,
                   hatch="//" if failed else None, label=None, gid=f"step:{rec['id']}")
        ax.text((start + max(end, start)) / 2, 1.0, str(rec["id"]), rotation=90,
                transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7,
                color="#37474f", clip_on=True, gid=f"label:{rec['id']}")


def timeline_figure(requests: pd.DataFrame, steps: pd.DataFrame | None = None, *,
                    title: str = "Requests through the proxy during the migration",
                    width: float = 11.0, height: float = 4.5) -> Figure:
    """Latency of every probe request over time, failures marked, steps as labelled bands.

    Each collection carries a ``gid`` (``ok:http``, ``retried``, ``failed``, ...) and each
    band ``step:<id>``, so tests can check what was drawn.
    """
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    origin = origin_of(requests, steps)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("seconds since the start")
    ax.set_ylabel("latency (ms, log)")
    if origin is None:
        ax.text(0.5, 0.5, "no request was sent", ha="center", transform=ax.transAxes)
        return fig
    reqs = requests.assign(x=_seconds(requests["t"], origin).to_numpy())
    ok = reqs["ok"].fillna(False).astype(bool)
    latency = reqs["latency_ms"].astype(float).clip(lower=0.1)
    end_s = float((reqs["x"] + latency / 1000).max()) if len(reqs) else 0.0
    if steps is not None and len(steps):
        _draw_steps(ax, steps, origin, end_s)
    is_close = reqs["op"] == "close"
    retried = ok & (reqs["retries"].fillna(0).astype(int) > 0)
    for kind, style in KIND_STYLE.items():
        sel = ok & ~retried & ~is_close & (reqs["kind"] == kind)
        ax.scatter(reqs["x"][sel], latency[sel], s=6, color=style["color"],
                   label=f"{style['label']} ({int(sel.sum())})", zorder=3, gid=f"ok:{kind}")
    ax.scatter(reqs["x"][retried], latency[retried], s=14, color=RETRIED_COLOR, marker="^",
               label=f"answered after a retry ({int(retried.sum())})", zorder=4, gid="retried")
    failed = ~ok & ~is_close
    ax.scatter(reqs["x"][failed] + latency[failed] / 1000, latency[failed], s=22,
               color=FAILED_COLOR, marker="x", label=f"failed ({int(failed.sum())})",
               zorder=5, gid="failed")
    for rec in reqs[is_close].to_dict("records"):
        ax.axvline(rec["x"], color=FAILED_COLOR if not rec["ok"] else "#2e7d32", ls=":",
                   lw=1, zorder=2, gid="ws-close")
    ax.set_yscale("log")
    ax.set_xlim(left=min(0.0, float(reqs["x"].min()) if len(reqs) else 0.0),
                right=max(end_s, 0.1))
    ax.legend(loc="upper left", fontsize=7, framealpha=0.9)
    ax.grid(True, which="major", axis="y", color="#eceff1", zorder=1)
    fig.tight_layout()
    return fig


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    if value is None:
        return "n/a"
    return str(value)


def summary_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The summary's figures as rows (figure, value), in :data:`SUMMARY_ROWS` order.

    >>> summary_frame({"sent": 10, "failed": 0, "failed_by_step": {}}).values.tolist()
    [['requests sent', '10'], ['failed', '0'], ['failed, by step', 'none']]
    """
    rows = [{"figure": label, "value": _shown(summary[key])}
            for key, label in SUMMARY_ROWS.items() if key in summary]
    return pd.DataFrame(rows, columns=["figure", "value"])


def step_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per marked step: sent, failed, p50/p99 and longest stall during it."""
    rows = [{"step": step, **figures} for step, figures in
            (summary.get("by_step") or {}).items()]
    return pd.DataFrame(rows, columns=["step", "sent", "failed", "p50_ms", "p99_ms",
                                       "longest_stall_ms"])


def summary_table(report: Any, steps: pd.DataFrame | None = None) -> Styler:
    """The prober's summary as an escaped HTML table; ``report`` is a
    :class:`~revivadiag.migrate.probe_report.ProbeReport` or its ``summary()`` dict."""
    summary = report if isinstance(report, Mapping) else report.summary(steps)
    failed = int(summary.get("failed") or 0)
    caption = (f"{summary.get('sent', 0)} requests, {failed} failed"
               + (f", longest stall {summary['longest_stall_ms']} ms"
                  if summary.get("longest_stall_ms") is not None else ""))
    return plain_table(summary_frame(summary)).set_caption(caption)
