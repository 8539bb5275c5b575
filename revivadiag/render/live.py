"""Plots of the health monitor for notebooks: its history with status changes marked, the
containers' resource figures, and a view that redraws itself while the monitor runs.

Pure drawing functions take the monitor's frames (``monitor_history``, ``container_stats``);
:class:`LiveView` takes callables returning them, so it works with any monitor object.

>>> view = LiveView(lambda: mon.history, lambda: rd.collect_stats(project=p))  # doctest: +SKIP
>>> view.start(); mon.start()          # both in the background          # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from revivadiag.errors import ParameterError, RevivadiagError

STATUS_MARKS = {"healthy": "#2e7d32", "degraded": "#ef6c00", "unhealthy": "#c62828",
                "unknown": "#757575"}
#: at most this many redraws per LiveView run, whatever its interval (a bounded loop)
MAX_REDRAWS = 10_000


def status_changes(history: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``history`` where a service's status differs from its previous row (its
    first row included): at, service, old, new.

    >>> h = pd.DataFrame({"at": pd.to_datetime([1, 2, 3, 4], unit="s"),
    ...                   "service": ["a", "a", "a", "a"],
    ...                   "status": ["healthy", "healthy", "unhealthy", "healthy"]})
    >>> status_changes(h)[["service", "old", "new"]].values.tolist()
    [['a', '', 'healthy'], ['a', 'healthy', 'unhealthy'], ['a', 'unhealthy', 'healthy']]
    """
    if history.empty:
        return pd.DataFrame(columns=["at", "service", "old", "new"])
    h = history.sort_values(["service", "at"])
    old = h.groupby("service")["status"].shift(1).fillna("")
    changed = h[h["status"] != old]
    return pd.DataFrame({"at": changed["at"], "service": changed["service"],
                         "old": old[changed.index], "new": changed["status"]}
                        ).sort_values("at").reset_index(drop=True)


def history_figure(history: pd.DataFrame, title: str = "health monitor") -> Figure:
    """Response time per service over time; each status change marked with its new status
    (a coloured dot, and a line across the plot for a change to unhealthy)."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    if history.empty:
        ax.text(0.5, 0.5, "no cycle yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for service, rows in history.sort_values("at").groupby("service"):
        ax.plot(rows["at"], rows["response_ms"], marker=".", lw=1.2, label=str(service))
    for change in status_changes(history).to_dict("records"):
        rows = history[(history["service"] == change["service"]) & (history["at"] == change["at"])]
        y = rows["response_ms"].dropna()
        color = STATUS_MARKS.get(str(change["new"]), STATUS_MARKS["unknown"])
        if change["old"]:
            ax.axvline(change["at"], color=color, lw=0.8, ls="--", alpha=0.7)
            ax.annotate(f"{change['service']}: {change['new']}", (change["at"], 1.0),
                        xycoords=("data", "axes fraction"), rotation=90, va="top",
                        ha="right", fontsize=7, color=color)
        if not y.empty:
            ax.scatter([change["at"]], [y.iloc[0]], s=60, color=color, zorder=3)
    ax.set_ylabel("response ms (main check)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def stats_figure(stats: pd.DataFrame) -> Figure:
    """CPU % and memory (MiB) per container, side by side (stopped ones left out)."""
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    cpu, mem = fig.subplots(1, 2)
    rows = stats[stats["cpu_pct"].notna()] if not stats.empty else stats
    names = [str(n) for n in rows.get("service", pd.Series(dtype=str))]
    cpu.barh(names, rows["cpu_pct"] if not rows.empty else [], color="#1e88e5")
    cpu.set_xlabel("CPU % (100 = one core)")
    mem.barh(names, (rows["mem_usage_bytes"] / 2**20) if not rows.empty else [],
             color="#43a047")
    mem.set_xlabel("memory MiB")
    mem.set_yticklabels([])
    return fig


class LiveView:
    """A notebook display that redraws the monitor's history (and stats) every ``every_s``
    seconds on a background thread, until :meth:`stop` or ``MAX_REDRAWS`` redraws.

    ``history`` returns the ``monitor_history`` frame; ``stats`` (optional) the
    ``container_stats`` frame. The display is made by :meth:`start` in the cell that calls it.
    """

    def __init__(self, history: Callable[[], pd.DataFrame],
                 stats: Callable[[], pd.DataFrame] | None = None, *, every_s: float = 2.0,
                 title: str = "health monitor") -> None:
        if not every_s > 0:
            raise ParameterError("every_s", every_s, "a positive number of seconds")
        self.history, self.stats, self.every_s, self.title = history, stats, every_s, title
        self.redraws = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[Any] = []

    def render(self) -> list[Any]:
        """The images to show now: the history, then the stats when there are any."""
        from revivadiag.render.draw import show

        images = [show(history_figure(self.history(), self.title))]
        if self.stats is not None:
            images.append(show(stats_figure(self.stats())))
        return images

    def start(self) -> LiveView:
        """Show the plots in the current cell and keep redrawing them in the background."""
        from IPython.display import display

        self._stop.clear()
        self._handles = [display(image, display_id=True)  # type: ignore[no-untyped-call]
                         for image in self.render()]
        self._thread = threading.Thread(target=self._loop, name="revivadiag-live", daemon=True)
        self._thread.start()
        return self

    def redraw(self) -> None:
        """Redraw once (also what the background thread does)."""
        for handle, image in zip(self._handles, self.render(), strict=False):
            if handle is not None:
                handle.update(image)
        self.redraws += 1

    def stop(self) -> None:
        """Stop redrawing (after one last redraw, so the plot shows the end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * self.every_s)
            self._thread = None
        if self._handles:
            self.redraw()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s) and self.redraws < MAX_REDRAWS:
            try:
                self.redraw()
            except RevivadiagError:
                continue  # the monitor reports its own errors; try again next time
