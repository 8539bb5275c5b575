"""Pure parts of container stats, events and the monitor's text/JSON output."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pytest

from revivadiag import cli
from revivadiag.collect.container_stats import (
    ACTIONS,
    EventWatcher,
    collect_events,
    parse_events,
    parse_stats,
    select_events,
    stats_row,
)
from revivadiag.errors import ParameterError
from revivadiag.render import monitor_view as view
from revivadiag.schemas import to_frame, validate

V1 = {  # cgroup v1, as Engine 20.10 answers stats?stream=false
    "read": "2026-11-30T11:18:08.31050074Z",
    "pids_stats": {"current": 2},
    "blkio_stats": {"io_service_bytes_recursive": [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 8192},
        {"major": 8, "minor": 0, "op": "Total", "value": 12288}]},
    "cpu_stats": {"cpu_usage": {"total_usage": 1_100_000_000, "percpu_usage": [1, 2]},
                  "system_cpu_usage": 21_909_560_000_000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 1_090_000_000},
                     "system_cpu_usage": 21_907_560_000_000},
    "memory_stats": {"usage": 32_296_960, "limit": 25_276_514_304,
                     "stats": {"total_inactive_file": 296_960, "inactive_file": 0}},
    "networks": {"eth0": {"rx_bytes": 18482, "tx_bytes": 21951},
                 "eth1": {"rx_bytes": 18, "tx_bytes": 49}},
}


def test_stats_are_computed_as_docker_stats_does() -> None:
    """CPU from the deltas x CPUs, memory less inactive file cache, sums per interface/op."""
    got = parse_stats(V1)
    assert got["cpu_pct"] == pytest.approx(100 * 10_000_000 / 2_000_000_000 * 2)
    assert got["mem_usage_bytes"] == 32_000_000
    assert got["mem_pct"] == pytest.approx(100 * 32_000_000 / 25_276_514_304, abs=1e-3)
    assert (got["net_rx_bytes"], got["net_tx_bytes"]) == (18500, 22000)
    assert (got["block_read_bytes"], got["block_write_bytes"]) == (4096, 8192)
    assert (got["pids"], got["online_cpus"]) == (2, 2)
    assert got["read_at"] == pd.Timestamp("2026-11-30T11:18:08.31050074Z")


def test_a_first_sample_without_a_previous_one_has_no_cpu() -> None:
    """No precpu sample (system delta 0): CPU is missing, not 0 or a division error."""
    raw = {**V1, "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
           "cpu_stats": {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 0}}
    assert parse_stats(raw)["cpu_pct"] is None


def test_a_stopped_container_row_says_why_it_has_no_figures() -> None:
    """State, restart count and the reason; every figure missing; the frame validates."""
    inspect = {"Name": "/p_api_1", "RestartCount": 3, "State": {"Status": "exited"},
               "Config": {"Labels": {"com.docker.compose.service": "api"}}}
    frame = to_frame("container_stats", [stats_row(inspect, "p", None, "not running"),
                                         stats_row({**inspect, "Name": "/p_db_1"}, "p", V1)])
    validate("container_stats", frame)
    first = frame.iloc[0]
    assert (first["service"], first["state"], first["restart_count"], first["error"]) == (
        "api", "exited", 3, "not running")
    assert pd.isna(first["cpu_pct"]) and pd.isna(first["mem_usage_bytes"])


def _event(kind: str, action: str, cid: str = "c1", **attrs: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "timeNano": 1_800_000_000_000_000_000,
            "Actor": {"ID": cid if kind == "container" else "net1",
                      "Attributes": {"com.docker.compose.project": "p", **attrs}}}


def test_events_are_parsed_and_selected_for_the_project() -> None:
    """health_status split into its status, die's exit code, kill's signal, network events
    only for the project's containers, exec events and other projects left out."""
    raw = [
        _event("container", "health_status: unhealthy", name="p_api_1",
               **{"com.docker.compose.service": "api"}),
        _event("container", "die", name="p_api_1", exitCode="137"),
        _event("container", "kill", name="p_api_1", signal="9"),
        _event("container", "exec_start: sh -c secret", name="p_api_1"),
        {**_event("container", "die", "x9", name="q_db_1"),
         "Actor": {"ID": "x9", "Attributes": {"com.docker.compose.project": "q"}}},
        _event("network", "disconnect", container="c1", name="p_default"),
        _event("network", "connect", container="zz", name="p_default"),
    ]
    known: dict[str, str] = {}
    selected = select_events(raw, "p", known)
    assert len(selected) == 5 and known == {"c1": "p_api_1"}
    rows = parse_events(selected, known)
    frame = to_frame("container_events", rows)
    validate("container_events", frame)
    assert frame["action"].tolist() == ["health_status", "die", "kill", "disconnect"]
    assert frame["health_status"].tolist() == ["unhealthy", "", "", ""]
    assert frame.loc[1, "exit_code"] == 137 and frame.loc[2, "signal"] == "9"
    assert frame.loc[3, "network"] == "p_default" and frame.loc[3, "container"] == "p_api_1"
    assert "exec_start" not in ACTIONS


@pytest.mark.parametrize(("kw", "name"), [
    ({"since": 10, "until": 20}, "until"),      # seconds from now: in the future
    ({"since": 0, "until": -10}, "since"),
    ({"since": -30 * 86400}, "since"),
    ({"max_events": 0}, "max_events"),
    ({"actions": ["exec_start"]}, "actions"),
])
def test_bad_event_windows_are_parameter_errors(kw: dict[str, Any], name: str) -> None:
    """Checked before any call to the engine (the client here would fail if asked)."""
    now = time.time()
    times = {k: now + v for k, v in kw.items() if k in ("since", "until")}
    with pytest.raises(ParameterError, match=name):
        collect_events(object(), "p", **{**kw, **times})  # type: ignore[arg-type]


def test_watcher_rejects_unknown_actions() -> None:
    """An action the frame cannot hold is refused up front."""
    with pytest.raises(ParameterError, match="actions"):
        EventWatcher("p", actions=["attach"])


def test_json_events_are_plain_json() -> None:
    """NaN becomes null, timestamps ISO text, numpy numbers plain numbers."""
    status = to_frame("monitor_status", [{"service": "api", "status": "healthy",
                                          "response_ms": float("nan"), "window_checks": 3,
                                          "since": pd.Timestamp(0, unit="s", tz="UTC")}])
    line = json.dumps(view.event("cycle", cycle=1, services=view.records(status)))
    back = json.loads(line)
    assert back["services"][0]["response_ms"] is None
    assert back["services"][0]["window_checks"] == 3
    assert back["services"][0]["since"] == "1970-01-01T00:00:00.000+00:00"


@pytest.mark.parametrize("argv", [
    ["monitor", "--interval", "0"], ["monitor", "--duration", "-5"],
    ["monitor", "--timeout", "nan"], ["monitor", "--interval", "x"],
])
def test_bad_monitor_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A non-positive or non-numeric option is refused with exit code 2 before any work."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err


def test_readme_rows_carry_the_monitor_figures() -> None:
    """The README table's monitor rows show the results file's figures, none when absent."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "readme_table.py"
    spec = importlib.util.spec_from_file_location("readme_table_monitor", path)
    assert spec is not None and spec.loader is not None
    rt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rt)
    assert rt.monitor_rows({}) == []
    rows = rt.monitor_rows({
        "cycle": {"cpu_median_ms": 13.4, "cycles": 30, "cpu_p95_ms": 17.0,
                  "helper_cpu_median_ms": 40.0, "wall_median_ms": 120.5, "load": 2.0},
        "memory": {"cycles": 10000, "ring_full_at": 2500, "flat": True, "checkpoints": {
            "2500": {"traced_kb": 1677.4, "rss_mb": 170.9},
            "10000": {"traced_kb": 1677.6, "rss_mb": 170.9}}},
        "stats": {"containers": 4, "concurrent_median_s": 2.1, "serial_median_s": 8.3,
                  "speedup": 3.95}})
    text = " ".join(" ".join(r) for r in rows)
    for figure in ("13.4 ms median of 30", "1,677.6 KB", "(flat)", "2.10 s / 8.30 s (3.95×)"):
        assert figure in text, figure


def test_terminal_output_redraws_the_table_in_place() -> None:
    """On a terminal the second cycle moves the cursor back over the first table and draws
    the new one with the change under it; piped, lines are appended."""
    import io

    from revivadiag.collect.monitor import StatusChange
    from revivadiag.render.monitor_cli import Output

    status = to_frame("monitor_status", [{"service": "api", "role": "backend",
                                          "status": "unhealthy", "circuit": "closed",
                                          "consecutive_failures": 1, "detail": "http: refused"}])
    change = StatusChange(pd.Timestamp("2026-01-01T12:00:00Z").to_pydatetime(), 2, "api",
                          "backend", "healthy", "unhealthy", None, 50.0, 1, "closed",
                          "CONNECTION_REFUSED", "http: refused")
    tty = io.StringIO()
    out = Output(tty, as_json=False, tty=True)
    out.cycle(2, status, [], "12:00:00", "header 1")
    out.cycle(2, status, [change], "12:00:01", "header 2")
    first, second = tty.getvalue().split("\x1b[4F\x1b[J")
    assert first.startswith("header 1\nSERVICE") and "recent changes" not in first
    assert second.splitlines()[-1] == "12:00:00 api: healthy -> unhealthy (http: refused)"
    piped = io.StringIO()
    Output(piped, as_json=False, tty=False).cycle(2, status, [change], "12:00:01", "header")
    assert piped.getvalue().splitlines() == [
        "12:00:00 api: healthy -> unhealthy (http: refused)", "12:00:01 cycle 2: api unhealthy"]
