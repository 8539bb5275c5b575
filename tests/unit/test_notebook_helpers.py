"""The notebooks' helpers: explore views over snapshot frames, the plotly topology, and the
ipywidgets controls (their buttons call what they were given, errors show as text)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from test_topology import flat_snapshot

from revivadiag import schemas
from revivadiag.analyze.policy import load_policy
from revivadiag.errors import InputError, ServiceNotFound
from revivadiag.render import widgets
from revivadiag.render.interactive import interactive_topology
from revivadiag.render.topology import graph_from_snapshot
from revivadiag.runbook import explore


def snap(**frames: Any) -> Any:
    base = flat_snapshot("lab", outcome={("frontend", "redis"): "timeout"})
    for name in ("roles", "dns", "latency"):
        setattr(base, name, frames.get(name, schemas.empty_frame(name)))
    return base


def test_reaches_lists_open_paths_fastest_first() -> None:
    """What frontend reaches: open paths by connect time, then the timed-out one."""
    s = snap()
    s.reachability.loc[(s.reachability.source_service == "frontend")
                       & (s.reachability.target_service == "backend"), "connect_ms"] = 0.1
    table = explore.reaches(s, "frontend")
    assert list(table["target_service"]) == ["backend", "database", "redis"]
    assert list(table["outcome"]) == ["open", "open", "timeout"]


def test_reaches_unknown_service_names_the_known_ones() -> None:
    """A service the stack lacks raises ServiceNotFound listing the running services."""
    with pytest.raises(ServiceNotFound, match="known services: backend, database"):
        explore.reaches(snap(), "nope")


def test_connect_matrix_is_source_by_target() -> None:
    """Square over every service; the diagonal and closed paths are empty."""
    m = explore.connect_matrix(snap())
    assert list(m.index) == list(m.columns) == ["backend", "database", "frontend", "redis"]
    assert m.loc["backend", "database"] == 0.25
    assert pd.isna(m.loc["frontend", "redis"]) and pd.isna(m.loc["redis", "redis"])
    assert explore.latency_heatmap(snap()).axes[0].get_xlabel() == "target"


def test_dns_times_per_name() -> None:
    """Lookups grouped by name: count, codes, median and max."""
    rows = [{"source": f"c{i}", "source_service": f"s{i}", "query": q, "rcode": rc,
             "latency_ms": ms} for i, (q, rc, ms) in
            enumerate([("db", "NOERROR", 1.0), ("db", "NOERROR", 3.0), ("x", "NXDOMAIN", 2.0)])]
    table = explore.dns_times(snap(dns=schemas.to_frame("dns", rows)))
    assert table.to_dict("records") == [
        {"query": "db", "asked": 2, "rcodes": "NOERROR", "median_ms": 2.0, "max_ms": 3.0},
        {"query": "x", "asked": 1, "rcodes": "NXDOMAIN", "median_ms": 2.0, "max_ms": 2.0},
    ]


def test_default_pair_follows_roles_not_names() -> None:
    """proxy -> backend by role, whatever the services are called."""
    roles = schemas.to_frame("roles", [{"service": "redis", "role": "proxy"},
                                       {"service": "database", "role": "backend"}])
    assert explore.default_pair(snap(roles=roles)) == ("redis", "database")


def test_audit_tree_rejects_a_missing_directory(tmp_path: Any) -> None:
    """A source path that is not a directory is an InputError naming it."""
    with pytest.raises(InputError, match="nothere"):
        explore.audit_tree(tmp_path / "nothere")


def test_interactive_topology_hover_and_hulls() -> None:
    """One hull trace per network, one marker per container whose hover lists its paths."""
    fig = interactive_topology(graph_from_snapshot(snap(), policy=load_policy()))
    names = [t.name for t in fig.data]
    assert names.count("default") == 1
    workloads = next(t for t in fig.data if t.name == "workloads")
    assert len(workloads.x) == 4
    frontend = next(h for h in workloads.hovertext if h.startswith("<b>lab_new_frontend"))
    assert "→ lab_new_redis:6379 timeout" in frontend
    assert "→ lab_new_database:5432 open 0.25 ms (violation)" in frontend


def _buttons(box: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(w: Any) -> None:
        if hasattr(w, "on_click"):
            found[w.description] = w
        for child in getattr(w, "children", ()):
            walk(child)

    walk(box)
    return found


def test_probe_control_calls_probe_with_the_picked_pair() -> None:
    """The dropdowns start at proxy/backend by role; probe gets the picked pair and port."""
    roles = schemas.to_frame("roles", [{"service": "frontend", "role": "proxy"},
                                       {"service": "backend", "role": "backend"}])
    calls: list[tuple[Any, ...]] = []
    s = snap(roles=roles)

    def probe(*args: Any) -> str:
        calls.append(args)
        return "done"

    box = widgets.probe_control(s, probe)
    src, dst = box.children[0].children
    assert (src.value, dst.value) == ("frontend", "backend")
    dst.value = "redis"
    _buttons(box)["probe"].click()
    assert calls == [(s, "frontend", "redis", 0)]


def test_probe_control_shows_errors_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """A RevivadiagError from the probe is printed (into the output area in a kernel; to
    stdout here, with no kernel), not raised."""
    def fail(*_: Any) -> None:
        raise ServiceNotFound("x", ["a"])

    box = widgets.probe_control(snap(), fail)
    _buttons(box)["probe"].click()
    out = box.children[-1]
    shown = "".join(o.get("text", "") for o in out.outputs) + capsys.readouterr().out
    assert "error: unknown service 'x'" in shown


def test_start_stop_control_toggles() -> None:
    """start calls start() and enables stop; stop calls stop() and enables start."""
    log: list[str] = []
    box = widgets.start_stop_control(lambda: log.append("start"), lambda: log.append("stop"))
    b = _buttons(box)
    assert b["stop"].disabled and not b["start"].disabled
    b["start"].click()
    assert b["start"].disabled and not b["stop"].disabled
    b["stop"].click()
    assert log == ["start", "stop"] and not b["start"].disabled


def test_scenario_control_runs_the_picked_scenario() -> None:
    """break runs the scenario picked in the dropdown; heal calls heal()."""
    log: list[str] = []
    box = widgets.scenario_control(["a", "b"], log.append, lambda: log.append("heal"))
    box.children[0].children[0].value = "b"
    _buttons(box)["break"].click()
    _buttons(box)["heal"].click()
    assert log == ["b", "heal"]


def test_services_skips_stopped_containers() -> None:
    """Only running services are offered."""
    s = SimpleNamespace(containers=schemas.to_frame("containers", [
        {"name": "a", "service": "a", "state": "running"},
        {"name": "b", "service": "b", "state": "exited"}]))
    assert explore.services(s) == ["a"]


def _history() -> pd.DataFrame:
    at = pd.to_datetime([0, 0, 2, 2, 4, 4], unit="s", utc=True)
    return pd.DataFrame({
        "at": at, "service": ["api", "db"] * 3,
        "status": ["healthy", "healthy", "unhealthy", "healthy", "healthy", "healthy"],
        "response_ms": [3.0, 1.0, None, 1.1, 2.5, 0.9]})


def test_status_changes_from_history() -> None:
    """First status per service, then each change: api goes unhealthy and back."""
    from revivadiag.render.live import status_changes

    changes = status_changes(_history())
    assert changes[["service", "old", "new"]].values.tolist() == [
        ["api", "", "healthy"], ["db", "", "healthy"], ["api", "healthy", "unhealthy"],
        ["api", "unhealthy", "healthy"]]


def test_history_figure_marks_changes() -> None:
    """One line per service; a dashed line and a label per change after the first."""
    from revivadiag.render.live import STATUS_MARKS, history_figure

    ax = history_figure(_history()).axes[0]
    names = [str(line.get_label()) for line in ax.get_lines()]
    assert sorted(n for n in names if not n.startswith("_")) == ["api", "db"]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["api: unhealthy", "api: healthy"]
    assert ax.texts[0].get_color() == STATUS_MARKS["unhealthy"]


def test_live_view_redraws_with_fresh_frames() -> None:
    """Each redraw asks for the history again; stop() ends the thread after a last one."""
    from revivadiag.render.live import LiveView

    asked: list[int] = []

    def history() -> pd.DataFrame:
        asked.append(1)
        return _history()

    view = LiveView(history, every_s=0.05).start()
    import time
    time.sleep(0.4)
    view.stop()
    assert view.redraws >= 2 and len(asked) == view.redraws + 1
    with pytest.raises(Exception, match="every_s"):
        LiveView(history, every_s=0)
