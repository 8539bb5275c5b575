"""The health monitor, container stats and events against real labs.

The tests that stop the backend use their own isolated copy of the lab (started here, removed
at the end); the others only read the shared session labs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from conftest import start_isolated_lab
from revivadiag.collect.container_stats import EventWatcher, collect_stats
from revivadiag.collect.monitor import HealthMonitor, StatusChange
from revivadiag.lab import LabInstance, down
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
#: bound on every wait for a state the lab must reach
WAIT_S = 120.0
#: the shared machine is sometimes loaded enough to make a check take seconds: these tests
#: are about status changes and discovery, not speed, so slow answers are not "degraded"
TIMEOUT_S, DEGRADED_MS = 5.0, 30_000.0


@pytest.fixture(scope="module")
def own_lab(engine: docker.DockerClient, lab_images: object) -> Iterator[LabInstance]:
    """A private `current` lab whose backend these tests stop and start."""
    lab = start_isolated_lab("current", client=engine)
    try:
        yield lab
    finally:
        down(lab.prefix, volumes=True, client=engine)


def _until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _timeline(lines: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """The JSON events, short: what a failed assertion shows."""
    return [(e["event"], e.get("at"), e.get("service"), e.get("new")) for e in lines]


def _container_healthy(engine: docker.DockerClient, name: str) -> bool:
    state = engine.api.inspect_container(name)["State"]
    return bool(state.get("Running")) and (state.get("Health") or {}).get("Status") == "healthy"


@pytest.mark.destructive
def test_stopping_and_starting_the_backend_is_reported(
    engine: docker.DockerClient, own_lab: LabInstance
) -> None:
    """Backend stopped: a change to unhealthy; started again: a change back to healthy; the
    engine's events name its die, start and health_status; the monitor's thread stops."""
    backend = own_lab.containers["backend"]
    changes: list[StatusChange] = []
    with EventWatcher(own_lab.prefix, client=engine) as events, HealthMonitor(
            own_lab.prefix, interval_s=1, client=engine, timeout_s=TIMEOUT_S,
            degraded_ms=DEGRADED_MS,
            on_change=changes.append) as mon:
        mon.start()
        assert mon.running
        assert _until(lambda: mon.cycle >= 1 and set(mon.status()["status"]) == {"healthy"})
        role = mon.roles.role("backend") if mon.roles else None
        assert role == "backend"
        engine.containers.get(backend).stop(timeout=1)
        assert _until(lambda: any(c.service == "backend" and c.new == "unhealthy"
                                  for c in changes)), changes
        engine.containers.get(backend).start()
        assert _until(lambda: any(c.service == "backend" and c.old == "unhealthy"
                                  and c.new == "healthy" for c in changes)), changes
        assert _until(lambda: _container_healthy(engine, backend))
        time.sleep(1.0)  # the health_status event follows the inspect state
        mon.stop()
        assert not mon.running
        history = mon.history
        frame = events.frame()
    down_change = next(c for c in changes if c.service == "backend" and c.new == "unhealthy")
    assert (down_change.old, down_change.role) == ("healthy", "backend")
    assert down_change.consecutive_failures == 1
    validate("monitor_history", history)
    backend_rows = history[history["service"] == "backend"]
    assert {"healthy", "unhealthy"} <= set(backend_rows["status"])
    validate("container_events", frame)
    mine = frame[frame["container"] == backend]
    assert {"die", "start", "health_status"} <= set(mine["action"]), mine
    assert set(mine["service"]) == {"backend"}
    assert "healthy" in set(mine.loc[mine["action"] == "health_status", "health_status"])
    assert frame["at"].is_monotonic_increasing


def _monitor_cli(prefix: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "revivadiag", "monitor", "--project", prefix, "--interval", "1",
           "--timeout", str(TIMEOUT_S), "--degraded-ms", str(DEGRADED_MS), "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


def _read_events(proc: subprocess.Popen[str], into: list[dict[str, object]]) -> threading.Thread:
    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            into.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def _changed(lines: list[dict[str, object]], service: str, old: str, new: str) -> bool:
    return any(e["event"] == "status_change" and e["service"] == service and e["old"] == old
               and e["new"] == new for e in lines)


@pytest.mark.destructive
@pytest.mark.slow
def test_monitor_cli_json_shows_the_changes(engine: docker.DockerClient,
                                            own_lab: LabInstance) -> None:
    """`revivadiag monitor --interval 1 --json` while the backend is stopped and started: a
    change to unhealthy, one back to healthy, cycle events; Ctrl-C ends it with a summary.

    The run is ended by Ctrl-C once the recovery is seen (``--duration`` only bounds it): on
    the shared machine the backend has taken from 4 to over 40 s to answer after a start."""
    backend = own_lab.containers["backend"]
    assert _until(lambda: _container_healthy(engine, backend))
    proc = _monitor_cli(own_lab.prefix, "--duration", "300")
    lines: list[dict[str, object]] = []
    reader = _read_events(proc, lines)
    try:
        assert _until(lambda: any(e["event"] == "cycle" for e in lines), 90.0), lines
        engine.containers.get(backend).stop(timeout=1)
        assert _until(lambda: _changed(lines, "backend", "healthy", "unhealthy"), 30.0), lines
        engine.containers.get(backend).start()
        assert _until(lambda: _changed(lines, "backend", "unhealthy", "healthy"), 120.0), (
            _timeline(lines))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # stdout is the reader thread's: no communicate() here
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    assert proc.stderr is not None
    err = proc.stderr.read()
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "start" and kinds[-1] == "summary", (kinds, err)
    assert kinds.count("cycle") >= 3
    backend_changes = [(e["old"], e["new"]) for e in lines
                       if e["event"] == "status_change" and e["service"] == "backend"]
    assert backend_changes == [("", "healthy"), ("healthy", "unhealthy"),
                               ("unhealthy", "healthy")], (_timeline(lines), err)
    summary = next(e for e in lines if e["event"] == "summary")
    services = {str(s["service"]): s for s in summary["services"]}  # type: ignore[attr-defined]
    assert services["backend"]["changes"] == 2
    assert services["backend"]["unhealthy_s"] > 0
    assert "monitor stopped (Ctrl-C)" in err and "Traceback" not in err
    assert proc.returncode == summary["exit_code"] == 0, err


def test_monitor_cli_ends_after_its_duration(lab_current: LabInstance) -> None:
    """--duration bounds the run (counted from the first cycle); the summary names every
    service; piped without --json, one line per cycle."""
    proc = _monitor_cli(lab_current.prefix, "--duration", "3")
    out, err = proc.communicate(timeout=180)
    lines = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0, err
    start = next(e for e in lines if e["event"] == "start")
    summary = lines[-1]
    assert summary["event"] == "summary"
    assert sorted(s["service"] for s in summary["services"]) == sorted(lab_current.containers)
    elapsed = (_ts(summary["at"]) - _ts(start["at"]))
    assert 3.0 <= elapsed < 3.0 + 2 * 1 + 30, elapsed  # duration + a cycle's overrun


def _ts(text: object) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(text)).timestamp()


def test_stats_frame_has_a_plausible_row_per_container(engine: docker.DockerClient,
                                                       lab_current: LabInstance) -> None:
    """One row per lab container, running, CPU >= 0, memory > 0 and below its limit."""
    frame = collect_stats(engine, lab_current.prefix)
    validate("container_stats", frame)
    assert sorted(frame["container"]) == sorted(lab_current.containers.values())
    assert set(frame["state"]) == {"running"}
    assert set(frame["error"]) == {""}
    assert (frame["cpu_pct"] >= 0).all()
    assert (frame["mem_usage_bytes"] > 0).all()
    assert (frame["mem_usage_bytes"] < frame["mem_limit_bytes"]).all()
    assert (frame["net_rx_bytes"] > 0).all()
    assert (frame["pids"] >= 1).all()
    assert (frame["restart_count"] == 0).all()


def test_monitor_works_on_the_shop_stack(engine: docker.DockerClient,
                                         lab_shop_current: LabInstance) -> None:
    """The shop's services and roles are learned, not named: its backend (api) answers over
    HTTP, db and cache are checked, the worker (no healthcheck) is unknown; bounded history."""
    with HealthMonitor(lab_shop_current.prefix, interval_s=1, history_rows=10,
                       client=engine, timeout_s=TIMEOUT_S, degraded_ms=DEGRADED_MS) as mon:
        for _ in range(3):
            mon.run_once()
        status = mon.status().set_index("service")
        history = mon.history
    validate("monitor_status", status.reset_index())
    assert sorted(status.index) == sorted(lab_shop_current.containers)
    assert status.loc["api", "role"] == "backend"
    assert status.loc["api", "status"] == "healthy"
    assert str(status.loc["api", "detail"]).startswith("http: HTTP 200")
    assert float(status.loc["api", "response_ms"]) > 0
    assert status.loc["db", "detail"] == "postgres_internal: ok"
    assert status.loc["cache", "detail"] == "redis_internal: ok"
    assert status.loc["worker", "status"] == "unknown"
    assert (status["circuit"] == "closed").all()
    assert len(history) == 10  # 3 cycles x 6 services, the ring keeps 10
    assert history["cycle"].min() >= 2
