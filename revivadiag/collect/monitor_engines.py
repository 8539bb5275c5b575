"""Health monitoring over several engines at once: one :class:`~revivadiag.collect.monitor.
HealthMonitor` per engine, each with one long-lived client (:func:`~revivadiag.engine.engines.
open_engine`), run one after the other each cycle, their frames stacked with the ``engine``
column saying where each row comes from.

An engine that does not answer, or runs none of the project, is one ``monitor_status`` row
saying so (no service, status ``unknown``, the reason in ``detail``) and a note in
:attr:`EngineMonitors.errors`; the other engines' services are checked as usual, and the
engine is tried again next cycle. Only when no engine answers on the first cycle is it the
tool's failure (the first engine's error is raised).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from revivadiag.collect.monitor import MAX_ERRORS, HealthMonitor, StatusChange
from revivadiag.collect.snapshot import concat_frames
from revivadiag.engine.engines import EngineSpec, open_engine
from revivadiag.errors import ProjectNotFound, RevivadiagError
from revivadiag.schemas import to_frame


class EngineMonitors:
    """The monitors of one project on several engines (see the module doc).

    ``monitor_options`` go to each :class:`HealthMonitor` (``interval_s``, ``timeout_s``,
    ``degraded_ms``, ``method``, ...).
    """

    def __init__(self, specs: Sequence[EngineSpec], project: str | None = None,
                 **monitor_options: Any) -> None:
        self.specs = list(specs)
        self.requested_project = project
        self.options = monitor_options
        probe = HealthMonitor(project, client=object(), **monitor_options)  # checks the options
        self.interval_s, self.timeout_s = probe.interval_s, probe.timeout_s
        self.project = project or ""
        self.cycle = 0
        self.last_at: datetime | None = None
        self.errors: deque[tuple[datetime, str]] = deque(maxlen=MAX_ERRORS)
        self.monitors: dict[str, HealthMonitor] = {}
        #: engine name -> (status, reason) of the engines that did not answer last cycle
        self.down: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()

    def run_once(self) -> list[StatusChange]:
        """One cycle on every engine; the status changes of all of them."""
        changes: list[StatusChange] = []
        failures: list[RevivadiagError] = []
        for spec in self.specs:
            try:
                mon = self._monitor(spec)
                changes += mon.run_once()
            except RevivadiagError as exc:
                failures.append(exc)
                status = "no_project" if isinstance(exc, ProjectNotFound) else "unreachable"
                self.down[spec.label] = (status, str(exc)[:300])
                self.errors.append((datetime.now(UTC), f"engine {spec.label}: {status}: "
                                                       f"{str(exc)[:200]}"))
                continue
            self.down.pop(spec.label, None)
            self.project = self.project or mon.project
        if self.cycle == 0 and len(failures) == len(self.specs):
            raise failures[0]
        self.cycle += 1
        self.last_at = datetime.now(UTC)
        return changes

    def _monitor(self, spec: EngineSpec) -> HealthMonitor:
        mon = self.monitors.get(spec.label)
        if mon is None:
            client = open_engine(spec)  # EngineUnreachable when it does not answer
            mon = HealthMonitor(self.project or self.requested_project, client=client,
                                engine=spec.label, close_client=True, **self.options)
            self.monitors[spec.label] = mon
        return mon

    def status(self) -> pd.DataFrame:
        """Every engine's ``monitor_status`` rows, then one row per engine that is down."""
        frames = [m.status() for m in self.monitors.values()]
        now = pd.Timestamp(self.last_at) if self.last_at else None
        frames.append(to_frame("monitor_status", [
            {"engine": name, "service": "", "role": "", "status": "unknown",
             "last_check": now, "circuit": "", "detail": f"engine {status}: {why}"}
            for name, (status, why) in sorted(self.down.items())]))
        return concat_frames("monitor_status", frames)

    @property
    def history(self) -> pd.DataFrame:
        """Every engine's ``monitor_history`` rows."""
        return concat_frames("monitor_history", [m.history for m in self.monitors.values()])

    def checks(self) -> pd.DataFrame:
        """What each check said in the last cycle, on every engine (frame ``health``)."""
        frames = []
        for name, mon in self.monitors.items():
            frame = mon.checks()
            frame["engine"] = pd.Series([name] * len(frame), index=frame.index, dtype="string")
            frames.append(frame)
        return concat_frames("health", frames)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when stopped (True then)."""
        return self._stop.wait(seconds)

    def close(self) -> None:
        """Close every engine's monitor (its probe engine and client)."""
        self._stop.set()
        for mon in self.monitors.values():
            mon.close()
        self.monitors.clear()
