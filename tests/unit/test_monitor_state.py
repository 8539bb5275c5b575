"""The health monitor's state: rules, circuit breaker, callbacks, bounded history, summary.

Recorded ``health`` rows are replayed through :meth:`HealthMonitor.ingest` (what
``run_once`` does after collecting); the monitor against real containers is in
``tests/integration/test_monitor_lab.py``.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pandas as pd
import pytest

from revivadiag.analyze.monitoring import summarize
from revivadiag.collect.health import SKIPPED
from revivadiag.collect.inventory import RawInventory
from revivadiag.collect.monitor import HealthMonitor, StatusChange, service_results
from revivadiag.errors import ParameterError
from revivadiag.schemas import validate


def _row(service: str, check: str, status: str, ms: float | None = None,
         detail: str = "ok", error_type: str = "") -> dict[str, Any]:
    return {"service": service, "container": f"p_{service}_1", "check": check,
            "target": service, "status": status, "response_ms": ms, "error_type": error_type,
            "detail": detail, "method": "setns"}


def _cycle(api: str = "healthy", ms: float = 3.0) -> list[dict[str, Any]]:
    api_rows = ([_row("api", "http", api, ms, "HTTP 200")] if api != "skipped" else
                [_row("api", "http", "unknown", None, SKIPPED)])
    return [*api_rows, _row("api", "docker", "healthy", None, "healthcheck healthy"),
            _row("db", "postgres_internal", "healthy", 2.0),
            _row("db", "docker", "healthy", None, "healthcheck healthy"),
            _row("worker", "docker", "unknown", None, "no Docker healthcheck defined")]


def _down() -> list[dict[str, Any]]:
    return [_row("api", "http", "unhealthy", 1.0, "connection refused", "CONNECTION_REFUSED"),
            _row("api", "docker", "unhealthy", None, "container is exited (exit code 0)"),
            _row("db", "postgres_internal", "healthy", 2.0),
            _row("worker", "docker", "unknown", None, "no Docker healthcheck defined")]


def _monitor(**kw: Any) -> HealthMonitor:
    return HealthMonitor("p", interval_s=10, prober=object(), client=object(),  # type: ignore[arg-type]
                         **kw)


def _inventory(started: str, running: bool = True) -> RawInventory:
    inspect = {"Id": "a" * 64, "Name": "/p_api_1",
               "Config": {"Labels": {"com.docker.compose.project": "p",
                                     "com.docker.compose.service": "api"}},
               "State": {"Running": running, "StartedAt": started,
                         "Health": {"Status": "starting"}}}
    return RawInventory(project="p", containers=[inspect])


def test_service_status_is_the_worst_check_that_ran() -> None:
    """Unhealthy beats degraded beats healthy; unknown rows say nothing."""
    rows = [_row("a", "http", "degraded", 2500.0, "slow"), _row("a", "docker", "healthy"),
            _row("b", "postgres_internal", "unknown", None, "no check"),
            _row("b", "postgres_external", "unhealthy", 4.0, "refused", "CONNECTION_REFUSED"),
            _row("c", "docker", "unknown", None, "no healthcheck")]
    got = service_results(rows)
    assert (got["a"].status, got["a"].response_ms) == ("degraded", 2500.0)
    assert (got["b"].status, got["b"].error_type) == ("unhealthy", "CONNECTION_REFUSED")
    assert got["b"].detail == "postgres_external: refused"
    assert (got["c"].status, got["c"].active) == ("unknown", False)


def test_changes_are_reported_once_and_first_sighting_has_no_old_status() -> None:
    """First cycle: '' -> status per service; a stop: one change; same state: none."""
    seen: list[StatusChange] = []
    mon = _monitor(on_change=seen.append)
    first = mon.ingest(_cycle(), at=1000.0)
    assert sorted((c.service, c.old, c.new) for c in first) == [
        ("api", "", "healthy"), ("db", "", "healthy"), ("worker", "", "unknown")]
    assert mon.ingest(_cycle(), at=1010.0) == []
    down = mon.ingest(_down(), at=1020.0)
    assert [(c.service, c.old, c.new, c.consecutive_failures, c.error_type) for c in down] == [
        ("api", "healthy", "unhealthy", 1, "CONNECTION_REFUSED")]
    assert down[0].error_rate_pct == pytest.approx(100 / 3, abs=0.1)
    assert seen == [*first, *down]
    assert down[0].as_dict()["at"] == "1970-01-01T00:17:00.000+00:00"


def test_circuit_opens_skips_and_recovers() -> None:
    """3 failures (a running container that does not answer) open the circuit; it stays open
    (api skipped) until the cooldown of 2 intervals; a failed trial doubles it; a container
    restart allows a trial at once."""
    mon = _monitor(breaker_threshold=3)
    mon.ingest(_cycle(), at=0.0)
    for t in (10.0, 20.0, 30.0):
        mon.ingest(_down(), at=t, inventory=_inventory("s1"))
    state = mon.status().set_index("service").loc["api"]
    assert (state["circuit"], state["consecutive_failures"]) == ("open", 3)
    assert mon._skip(_inventory("s1"), 40.0) == {"api"}     # cooldown: 30 + 2 x 10 s
    mon.ingest(_cycle("skipped"), at=40.0)
    state = mon.status().set_index("service").loc["api"]
    assert (state["status"], state["circuit"]) == ("unhealthy", "open")
    assert "not probed" in state["detail"]
    assert mon._skip(_inventory("s1"), 50.0) == set()       # due: a half-open trial
    assert mon.status().set_index("service").loc["api", "circuit"] == "half_open"
    mon.ingest(_down(), at=50.0, inventory=_inventory("s1"))
    assert mon._skip(_inventory("s1"), 80.0) == {"api"}     # failed trial: 50 + 4 x 10 s
    assert mon._skip(_inventory("s2"), 81.0) == set()       # restarted: trial now
    changes = mon.ingest(_cycle(), at=81.0, inventory=_inventory("s2"))
    assert [(c.old, c.new, c.circuit) for c in changes] == [("unhealthy", "healthy", "closed")]
    history = mon.history
    validate("monitor_history", history)
    api = history[history["service"] == "api"]
    assert api["checked"].tolist() == [True, True, True, True, False, True, True]
    stopped = _monitor(breaker_threshold=1)
    stopped.ingest(_down(), at=0.0, inventory=_inventory("s1", running=False))
    assert stopped._skip(_inventory("s1", running=False), 1.0) == {"api"}
    assert stopped._skip(_inventory("s1"), 2.0) == set()  # it runs again: trial now


def test_a_failing_callback_is_logged_not_fatal() -> None:
    """A callback that raises leaves the others called and the error noted."""
    got: list[str] = []

    def broken(change: StatusChange) -> None:
        raise RuntimeError("boom")

    mon = _monitor(on_change=[broken, lambda c: got.append(c.service)])
    mon.ingest(_cycle(), at=0.0)
    assert sorted(got) == ["api", "db", "worker"]
    assert len(mon.errors) == 3 and "RuntimeError: boom" in mon.errors[0][1]


def test_history_is_a_ring_and_memory_stays_flat() -> None:
    """After 10,000 cycles the history holds ``history_rows`` rows, and 5,000 more cycles
    leave the traced memory where it was."""
    mon = _monitor(history_rows=600, window=20)
    healthy, down = _cycle(), _down()
    for i in range(10_000):
        mon.ingest(down if i % 7 == 0 else healthy, at=float(i))
    assert mon.history_size == 600
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(10_000, 15_000):
            mon.ingest(down if i % 7 == 0 else healthy, at=float(i))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 200_000, grown
    assert mon.history_size == 600
    assert mon.cycle == 15_000
    assert mon.history["cycle"].min() == 15_000 - 600 // 3 + 1


@pytest.mark.parametrize(("kw", "name"), [
    ({"interval_s": 0}, "interval_s"), ({"timeout_s": -1}, "timeout_s"),
    ({"interval_s": float("nan")}, "interval_s"), ({"window": 2.5}, "window"),
    ({"history_rows": 0}, "history_rows"), ({"breaker_threshold": True}, "breaker_threshold"),
    ({"method": "telnet"}, "method"), ({"max_cooldown_s": 0}, "max_cooldown_s"),
])
def test_bad_settings_are_parameter_errors(kw: dict[str, Any], name: str) -> None:
    """Each bad value raises ParameterError naming it."""
    with pytest.raises(ParameterError, match=name):
        HealthMonitor("p", **kw)


def test_summary_of_a_recorded_run() -> None:
    """Changes, time per status, error rate and percentiles per service."""
    mon = _monitor()
    for i, rows in enumerate([_cycle(ms=2.0), _down(), _down(), _cycle(ms=4.0)]):
        mon.ingest(rows, at=float(i * 10))
    summary = summarize(mon.history, until=pd.Timestamp(40, unit="s", tz="UTC"))
    validate("monitor_summary", summary)
    api = summary.set_index("service").loc["api"]
    assert (api["status"], api["changes"], api["cycles"]) == ("healthy", 2, 4)
    assert (api["healthy_s"], api["unhealthy_s"]) == (20.0, 20.0)
    assert api["error_rate_pct"] == 50.0
    assert api["max_consecutive_failures"] == 2
    assert api["p50_ms"] == pytest.approx(1.5)
    worker = summary.set_index("service").loc["worker"]
    assert (worker["unknown_s"], pd.isna(worker["error_rate_pct"])) == (40.0, True)
