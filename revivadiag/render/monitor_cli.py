"""``revivadiag monitor``: watch a project's health live, then sum the run up.

    revivadiag monitor [--project P] [--interval S] [--duration S] [--timeout S] [--json]
                       [--degraded-ms MS] [--method auto|setns|sidecar|exec]
                       [--docker-host URL]... [--context NAME]... [--ssh-config FILE]

Runs a :class:`~revivadiag.collect.monitor.HealthMonitor` cycle every ``--interval`` seconds
(default 30, the seed's) until ``--duration`` seconds have passed since the first cycle (the
one that learns the stack's roles: a second or so, more on a loaded machine) or Ctrl-C, then
prints a summary per service (:func:`revivadiag.analyze.monitoring.summarize`): status
changes, time in each status, error rate, p50/p95 response time.

Output: on a terminal, a table redrawn in place each cycle with the last status changes under
it; otherwise one line per status change and one per cycle. ``--json`` prints only JSON
objects, one per line, for other tools::

    {"event": "start", "project": ..., "interval_s": ..., "timeout_s": ..., "duration_s": ...}
    {"event": "status_change", "at": ..., "cycle": ..., "service": ..., "role": ...,
     "old": "healthy", "new": "unhealthy", "response_ms": ..., "error_rate_pct": ...,
     "consecutive_failures": ..., "circuit": ..., "error_type": ..., "detail": ...}
    {"event": "cycle", "at": ..., "cycle": ..., "wall_ms": ..., "cpu_ms": ...,
     "services": [{"service": ..., "status": ..., "response_ms": ..., ...}]}
    {"event": "error", "at": ..., "cycle": ..., "error": ...}   (a cycle failed; next one runs)
    {"event": "summary", "at": ..., "cycles": ..., "exit_code": ..., "services": [...]}

``old`` is ``""`` the first time a service is seen. Exit code: 0 when every service ends
the run not unhealthy, 1 when one ends unhealthy, 2 when the tool fails (no engine, no such
project, a bad option). Ctrl-C ends the run like ``--duration`` does (summary included).

Several engines (``--docker-host`` repeated, ``--context``; :mod:`revivadiag.engine.options`):
one monitor per engine (:class:`~revivadiag.collect.monitor_engines.EngineMonitors`); every
row and event carries ``engine`` and the tables name services ``<engine>/<service>``; an
engine that does not answer, or runs none of the project, is a row saying so (status
``unknown``), checked again next cycle.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, TextIO

import pandas as pd

from revivadiag.analyze.monitoring import summarize
from revivadiag.collect.monitor import HealthMonitor, StatusChange
from revivadiag.collect.monitor_engines import EngineMonitors
from revivadiag.engine.options import add_engine_options, engines_from_args
from revivadiag.errors import RevivadiagError
from revivadiag.render import monitor_view as view

METHODS = ("auto", "setns", "sidecar", "exec")
#: status changes listed under the live table
RECENT_CHANGES = 8
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``monitor`` subcommand."""
    p = subparsers.add_parser(
        "monitor", help="watch the services' health live, then sum the run up",
        description="Check every service of a compose project every --interval seconds "
        "(the seed's health rules, a circuit breaker per service), show a live table, and "
        "print a summary per service at the end.")
    p.add_argument("--project", help="compose project (default: the only one running, "
                                      "else the seed's project)")
    p.add_argument("--interval", type=_seconds, default=30.0, metavar="S",
                   help="seconds between cycles (default 30)")
    p.add_argument("--duration", type=_seconds, default=None, metavar="S",
                   help="stop S seconds after the first cycle, which learns the stack's "
                        "roles (default: run until Ctrl-C)")
    p.add_argument("--timeout", type=_seconds, default=5.0, metavar="S",
                   help="timeout of each check (default 5)")
    p.add_argument("--degraded-ms", type=_seconds, default=2000.0, metavar="MS",
                   help="an answer slower than this is degraded (default 2000)")
    p.add_argument("--json", action="store_true", help="print one JSON event per line")
    p.add_argument("--method", choices=METHODS, default="auto", help="probe method")
    add_engine_options(p)
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    """A positive, finite number (seconds, or milliseconds for --degraded-ms).

    >>> _seconds("2.5"), _seconds("1e3")
    (2.5, 1000.0)
    """
    value = float(text) if _NUMBER.fullmatch(text.strip()) else math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class Output:
    """Where a run's lines go: JSON events, a redrawn table, or appended lines."""

    def __init__(self, stream: TextIO, as_json: bool, tty: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.tty = tty and not as_json
        self._drawn = 0
        #: the last status changes, shown under the redrawn table
        self._changes: deque[str] = deque(maxlen=RECENT_CHANGES)

    def emit(self, kind: str, **fields: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(view.event(kind, **fields), separators=(",", ":"))
                              + "\n")
            self.stream.flush()

    def text(self, text: str) -> None:
        if not self.as_json:
            self.stream.write(text + "\n")
            self.stream.flush()

    def cycle(self, number: int, status: pd.DataFrame, changes: list[StatusChange],
              at: str, header: str) -> None:
        if self.as_json:
            return
        several = status["engine"].nunique() > 1
        self._changes.extend(view.change_line(c.as_dict(), several) for c in changes)
        if self.tty:
            recent = "\n".join(["", "recent changes:", *self._changes]) if self._changes else ""
            block = f"{header}\n{view.status_table(status)}{recent}"
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the table's top
            self.stream.write(block + "\n")
            self.stream.flush()
            self._drawn = block.count("\n") + 1
            return
        for change in changes:
            self.text(view.change_line(change.as_dict(), several))
        self.text(view.cycle_line(status, at, number))


def run(args: argparse.Namespace) -> int:
    """Monitor until ``--duration`` or Ctrl-C; print the summary; 1 when a service ends
    unhealthy."""
    out = Output(sys.stdout, bool(args.json), sys.stdout.isatty())
    specs = engines_from_args(args)
    options: dict[str, Any] = {"interval_s": args.interval, "timeout_s": args.timeout,
                               "degraded_ms": args.degraded_ms, "method": args.method}
    mon: HealthMonitor | EngineMonitors = (EngineMonitors(specs, args.project, **options)
                                           if specs else HealthMonitor(args.project, **options))
    deadline = math.inf
    try:
        first = True
        try:
            while True:
                began, cpu = time.monotonic(), time.process_time()
                now = datetime.now(UTC)
                try:
                    changes = mon.run_once()
                except RevivadiagError as exc:
                    if first:
                        raise  # no engine, no such project: the tool failed
                    out.emit("error", at=now, cycle=mon.cycle, error=str(exc))
                    print(f"revivadiag: cycle failed: {exc}", file=sys.stderr)
                    changes = None
                if first:  # the duration counts from here: the first cycle learns the stack
                    out.emit("start", at=now, project=mon.project, interval_s=mon.interval_s,
                             timeout_s=mon.timeout_s, duration_s=args.duration)
                    first = False
                    if args.duration is not None:
                        deadline = time.monotonic() + args.duration
                if changes is not None:
                    _report(out, mon, changes, began, cpu, now)
                left = deadline - time.monotonic()
                pause = min(mon.interval_s - (time.monotonic() - began), left)
                if left <= 0 or (pause > 0 and mon.wait(pause)) or time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            print("revivadiag: monitor stopped (Ctrl-C)", file=sys.stderr)
        return _finish(out, mon)
    finally:
        mon.close()


def _report(out: Output, mon: HealthMonitor | EngineMonitors, changes: list[StatusChange],
            began: float, cpu: float, now: datetime) -> None:
    for change in changes:
        out.emit("status_change", **change.as_dict())
    status = mon.status()
    now = mon.last_at or now
    wall_ms = round((time.monotonic() - began) * 1000, 1)
    cpu_ms = round((time.process_time() - cpu) * 1000, 1)
    out.emit("cycle", at=now, cycle=mon.cycle, wall_ms=wall_ms, cpu_ms=cpu_ms,
             services=view.records(status[["engine", "service", "status", "response_ms",
                                           "error_rate_pct", "consecutive_failures",
                                           "circuit", "detail"]]))
    at = now.strftime("%H:%M:%S")
    header = (f"revivadiag monitor: project {mon.project}, cycle {mon.cycle} at {at} UTC, "
              f"every {mon.interval_s:g} s (cycle took {wall_ms:.0f} ms)")
    out.cycle(mon.cycle, status, changes, at, header)


def _finish(out: Output, mon: HealthMonitor | EngineMonitors) -> int:
    summary = summarize(mon.history, until=pd.Timestamp.now(tz="UTC"))
    code = 1 if (mon.status()["status"] == "unhealthy").any() else 0
    out.emit("summary", at=datetime.now(UTC), cycles=mon.cycle, exit_code=code,
             services=view.records(summary))
    if not out.as_json:
        out.text(f"\nsummary of {mon.cycle} cycles of project {mon.project}:")
        out.text(view.summary_table(summary))
    for at, message in mon.errors:
        print(f"revivadiag: note: {at:%H:%M:%S} {message}", file=sys.stderr)
    return code
