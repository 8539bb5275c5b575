"""The migration prober's pure parts: summary maths, the plan's prober section, the port
choice, the timeline drawing and the summary table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from revivadiag.errors import ParameterError, PlanError
from revivadiag.migrate.probe_config import parse_prober_section
from revivadiag.migrate.probe_report import (
    NO_STEP,
    ProbeReport,
    longest_stall_ms,
    percentiles,
    rate_achieved,
    session_outcome,
    summarize,
)
from revivadiag.migrate.probe_target import (
    ProbeTarget,
    ResolvedSession,
    choose_port,
    session_body,
)
from revivadiag.migrate.prober import Prober
from revivadiag.render.migration import summary_frame, summary_table, timeline_figure
from revivadiag.schemas import to_frame, validate

T0 = pd.Timestamp("2026-11-30T12:00:00Z")


def http(t_s: float, ok: bool = True, latency_ms: float = 10.0, step: str = "",
         retries: int = 0, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "op": "get", "path": "/", "t_s": t_s, "ok": ok,
            "latency_ms": latency_ms, "step": step, "step_ended": step, "retries": retries,
            "t": T0 + pd.Timedelta(seconds=t_s), **extra}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return to_frame("probe_requests", [{"seq": i, **r} for i, r in enumerate(rows)])


# ---------------------------------------------------------------- summary maths


@pytest.mark.parametrize(("rows", "expected"), [
    # a steady healthy stream: the gap is the interval
    ([http(i * 0.05) for i in range(10)], 50.0),
    # one answer missing in the middle: two intervals
    ([http(0.0), http(0.05, ok=False, latency_ms=2000.0), http(0.10)], 2050.0 - 110.0),
    # the stream ends failing: the stall runs to the last request's end
    ([http(0.0), http(0.05, ok=False, latency_ms=2000.0)], 2050.0 - 10.0),
    # nothing ever answered: the whole span
    ([http(0.0, ok=False, latency_ms=500.0), http(1.0, ok=False, latency_ms=500.0)], 1500.0),
    # answers at 10, 110 and 850 ms: the slow one came 740 ms after the one before
    ([http(0.0), http(0.05, latency_ms=800.0), http(0.10)], 850.0 - 110.0),
])
def test_longest_stall(rows: list[dict[str, Any]], expected: float) -> None:
    """The longest gap between correct answers, counted from the first send to the last end."""
    assert longest_stall_ms(frame(rows)) == pytest.approx(expected, abs=0.01)


def test_longest_stall_ignores_other_kinds_and_empty() -> None:
    """WebSocket and session rows do not fill gaps in the HTTP stream; no HTTP: None."""
    rows = [http(0.0), {"kind": "ws", "op": "echo", "t_s": 0.5, "ok": True, "latency_ms": 1.0},
            http(1.0)]
    assert longest_stall_ms(frame(rows)) == pytest.approx(1000.0)
    assert longest_stall_ms(frame(rows[1:2])) is None


def test_percentiles_use_correct_http_answers_only() -> None:
    """p50/p99 leave out failures (their latency is a give-up time) and other kinds."""
    rows = [http(i * 0.05, latency_ms=float(i + 1)) for i in range(100)]
    rows += [http(5.0, ok=False, latency_ms=2000.0),
             {"kind": "ws", "op": "echo", "t_s": 1.0, "ok": True, "latency_ms": 900.0}]
    s = summarize(frame(rows))
    assert (s["p50_ms"], s["p99_ms"]) == percentiles(pd.Series(range(1, 101), dtype=float))
    assert (s["p50_ms"], s["p99_ms"]) == (50.5, 99.01)


def test_failures_counted_and_tagged_by_step() -> None:
    """failed counts rows not ok; failed_by_step names the step each was charged to."""
    rows = [http(0.0), http(0.05, ok=False, step="db"), http(0.1, ok=False, step="db"),
            http(0.15, ok=False), http(0.2, step="backend"), http(0.25, ok=False,
                                                                  step="backend")]
    s = summarize(frame(rows))
    assert (s["sent"], s["ok"], s["failed"]) == (6, 2, 4)
    assert s["failed_by_step"] == {"db": 2, NO_STEP: 1, "backend": 1}
    assert s["by_step"]["db"]["failed"] == 2
    assert s["by_step"]["backend"]["sent"] == 2


def test_a_failure_is_charged_to_the_step_that_saw_it() -> None:
    """Sent during one step, failed in the next: the failure counts against the next one;
    its latency and sending still belong to the first."""
    rows = [http(0.0, step="before"), http(0.05, ok=False, step="before", step_ended="stop"),
            http(0.1, ok=False, step="stop")]
    s = summarize(frame(rows))
    assert s["failed_by_step"] == {"stop": 2}
    assert (s["by_step"]["before"]["sent"], s["by_step"]["before"]["failed"]) == (2, 0)
    assert (s["by_step"]["stop"]["sent"], s["by_step"]["stop"]["failed"]) == (1, 2)


def test_retries_are_counted_not_hidden() -> None:
    """A request answered after retries is ok, and its retries show in the summary."""
    rows = [http(0.0), http(0.05, retries=3), http(0.1, retries=1), http(0.15)]
    s = summarize(frame(rows))
    assert (s["failed"], s["retries"], s["retried_requests"]) == (0, 4, 2)


def test_websocket_counts() -> None:
    """Closes are events (not sent), unclean ones fail; reconnects counted apart."""
    ws = [("connect", True), ("echo", True), ("close", True), ("reconnect", False),
          ("reconnect", True), ("echo", False), ("close", False), ("reconnect", True)]
    rows = [{"kind": "ws", "op": op, "t_s": i * 0.1, "ok": ok, "latency_ms": 1.0}
            for i, (op, ok) in enumerate(ws)]
    s = summarize(frame(rows))
    assert (s["sent"], s["failed"]) == (6, 3)
    assert (s["ws_echoes"], s["ws_echoes_failed"]) == (2, 1)
    assert (s["ws_reconnects"], s["ws_failed_reconnects"]) == (2, 1)
    assert (s["ws_clean_closes"], s["ws_unclean_closes"]) == (1, 1)


@pytest.mark.parametrize(("ops", "skipped", "expected"), [
    ([("login", True), ("check", True), ("check", True)], {}, "survived"),
    ([("login", True), ("check", True), ("check", False)], {}, "lost"),
    ([("login", False)], {}, "login failed"),
    ([("write", True), ("check", True)], {}, "survived"),
    ([], {"session": "no login"}, "not run: no login"),
])
def test_session_outcome(ops: list[tuple[str, bool]], skipped: dict[str, str],
                         expected: str) -> None:
    """The session survived only when every check after the login passed."""
    rows = [{"kind": "session", "op": op, "t_s": float(i), "ok": ok, "latency_ms": 1.0}
            for i, (op, ok) in enumerate(ops)]
    assert session_outcome(frame(rows), skipped) == expected


def test_switch_figures_follow_the_steps_kinds() -> None:
    """p99 and stall during the switch cover service/proxy/config steps only, when known."""
    rows = [http(0.0, latency_ms=900.0, step="readiness"),
            http(0.05, latency_ms=30.0, step="db"), http(0.1, latency_ms=40.0, step="db")]
    steps = pd.DataFrame({"id": ["readiness", "db"], "kind": ["readiness", "service.replace"]})
    with_kinds = summarize(frame(rows), steps=steps)
    assert with_kinds["switch_steps"] == ["db"]
    assert with_kinds["p99_during_switch_ms"] == pytest.approx(39.9)
    assert summarize(frame(rows))["switch_steps"] == ["readiness", "db"]
    assert summarize(frame(rows))["p99_during_switch_ms"] == pytest.approx(882.8)


def test_rate_achieved() -> None:
    """(n - 1) requests over the span from the first to the last send."""
    assert rate_achieved(frame([http(i / 10) for i in range(21)])) == 10.0
    assert rate_achieved(frame([http(0.0)])) is None


def test_report_steps_from_marks() -> None:
    """ProbeReport.steps turns the marks into a steps frame for the timeline."""
    marks = pd.DataFrame({"step": ["a"], "started_s": [0.0], "ended_s": [1.0],
                          "started": [T0], "ended": [T0 + pd.Timedelta(seconds=1)]})
    steps = ProbeReport(frame([http(0.0)]), marks, {}).steps()
    assert steps[["id", "kind", "status"]].values.tolist() == [["a", "", ""]]


def test_schema_of_requests() -> None:
    """The frame the tests build is the documented probe_requests frame."""
    validate("probe_requests", frame([http(0.0)]))


# ---------------------------------------------------------------- the plan's section


@pytest.mark.parametrize(("section", "message"), [
    ("x", "a mapping is expected"),
    ({"htp": ["/"]}, "unknown keys"),
    ({"port": 70000}, "is not a TCP port"),
    ({"port": True}, "is not a TCP port"),
    ({"http": []}, "non-empty list"),
    ({"http": ["http://192.0.2.1/"]}, "is not a path"),
    ({"http": ["//evil.example/x"]}, "is not a path"),
    ({"http": ["/@evil.example"]}, "is not a path"),
    ({"rate": 0}, "is not a number in"),
    ({"rate": "fast"}, "is not a number in"),
    ({"websocket": "ws://x/ws"}, "is not a path"),
    ({"session": {"check": "/p"}}, "exactly one of login or write"),
    ({"session": {"login": {"path": "/l"}}}, "check"),
    ({"session": {"login": {"path": "/l", "json": {"password_env": "1bad"}}, "check": "/p"}},
     "environment variable"),
    ({"session": {"write": {"path": "/i", "json": {"name": "x"}}, "check": "/i"}},
     "{marker}"),
    ({"session": {"login": {"path": "/l", "json": {"a": [1]}}, "check": "/p"}},
     "plain value"),
])
def test_bad_prober_section_is_a_plan_error(section: object, message: str) -> None:
    """Each malformed prober section is a PlanError naming the key."""
    with pytest.raises(PlanError, match="prober") as caught:
        parse_prober_section(section, "plan.yml")
    assert message in str(caught.value)
    assert caught.value.path == "plan.yml"


def test_good_prober_section() -> None:
    """A full section parses; false switches a part off."""
    cfg = parse_prober_section({
        "port": 8080, "http": "/", "rate": 5, "deadline_s": 1.5, "websocket": False,
        "session": {"write": {"path": "/api/items", "json": {"name": "p-{marker}"}},
                    "check": "/api/items"}})
    assert (cfg.port, cfg.http, cfg.rate, cfg.deadline_s) == (8080, ("/",), 5.0, 1.5)
    assert (cfg.websocket, cfg.websocket_off, cfg.session_off) == (None, True, False)
    assert cfg.session is not None and cfg.session.mode == "write"
    assert parse_prober_section({"session": False}).session_off


def test_session_secret_from_the_environment_only() -> None:
    """password_env reads the environment; a missing variable is a PlanError naming it."""
    assert session_body({"email": "e"}, {"password": "PW"}, {"PW": "s3"}) == \
        {"email": "e", "password": "s3"}
    with pytest.raises(PlanError, match="PW, which is not set"):
        session_body({}, {"password": "PW"}, {"OTHER": "x"})


def test_target_description_holds_no_secret() -> None:
    """describe() and repr() name the secret fields, never their values."""
    session = ResolvedSession(mode="login", path="/l", check="/p",
                              body={"email": "e", "password": "hunter2x"},
                              secret_fields=("password",))
    target = ProbeTarget("p", 3010, session=session)
    assert "hunter2x" not in repr(target)
    assert "hunter2x" not in str(target.describe())
    assert target.describe()["session"]["secret_fields"] == ["password"]


# ---------------------------------------------------------------- port choice


def ports(*rows: tuple[str, int, str, str, int]) -> pd.DataFrame:
    return to_frame("ports", [{"service": s, "container_port": c, "protocol": p,
                               "host_ip": h, "host_port": hp} for s, c, p, h, hp in rows])


@pytest.mark.parametrize(("rows", "role_port", "expected"), [
    ([("proxy", 80, "tcp", "0.0.0.0", 8080)], 80, ("127.0.0.1", 8080)),
    ([("proxy", 80, "tcp", "127.0.0.1", 8080)], None, ("127.0.0.1", 8080)),
    ([("proxy", 80, "tcp", "127.0.0.2", 8080)], None, ("127.0.0.2", 8080)),
    ([("proxy", 443, "tcp", "0.0.0.0", 8443), ("proxy", 80, "tcp", "0.0.0.0", 8080)], 80,
     ("127.0.0.1", 8080)),
    ([("proxy", 80, "tcp", "192.0.2.5", 8080)], 80, None),  # not reachable on loopback
    ([("proxy", 53, "udp", "0.0.0.0", 5353)], None, None),
    ([("api", 80, "tcp", "0.0.0.0", 8080)], 80, None),
    ([], 80, None),
])
def test_choose_port(rows: list[tuple[str, int, str, str, int]], role_port: int | None,
                     expected: tuple[str, int] | None) -> None:
    """Only the proxy's TCP ports bound to loopback or every address; its role's port first."""
    assert choose_port(ports(*rows), "proxy", role_port) == expected


# ---------------------------------------------------------------- prober bounds


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rate": 0.0}, "rate"), ({"rate": 1000.0}, "rate"), ({"max_duration_s": 0.0},
                                                          "max_duration_s"),
    ({"deadline_s": 0.0}, "deadline_s"), ({"max_requests": 0}, "max_requests"),
])
def test_prober_bounds_are_checked(kwargs: dict[str, Any], name: str) -> None:
    """An unbounded or nonsensical prober is refused before anything is sent."""
    with pytest.raises(ParameterError, match=name):
        Prober(ProbeTarget("p", 3010), **kwargs)


def test_default_request_cap_follows_duration_and_rate() -> None:
    """Without max_requests, the cap is what the duration allows, plus 10 %."""
    prober = Prober(ProbeTarget("p", 3010), rate=20.0, max_duration_s=10.0, ws_interval_s=1.0,
                    session_interval_s=1.0)
    assert prober.max_requests == 10 + int(-(-10.0 * 23.0 * 1.1 // 1))


# ---------------------------------------------------------------- rendering


def test_timeline_draws_points_failures_and_step_bands() -> None:
    """Correct answers, failures and each step band are drawn, labelled with the step id."""
    rows = [http(i * 0.05, step="db" if 10 <= i < 20 else "") for i in range(30)]
    rows[12]["ok"], rows[13]["ok"] = False, False
    rows[25]["retries"] = 2
    rows.append({"kind": "ws", "op": "close", "t_s": 0.7, "ok": True, "latency_ms": 0.0,
                 "t": T0 + pd.Timedelta(seconds=0.7)})
    steps = pd.DataFrame({"id": ["db", "px"], "kind": ["service.replace", "proxy.reload"],
                          "started": [T0 + pd.Timedelta(seconds=0.5),
                                      (T0 + pd.Timedelta(seconds=1.0)).isoformat()],
                          "ended": [T0 + pd.Timedelta(seconds=1.0), None],
                          "status": ["completed", "failed"]})
    fig = timeline_figure(frame(rows), steps)
    ax = fig.axes[0]
    by_gid = {c.get_gid(): np.asarray(c.get_offsets()).shape[0]
            for c in ax.collections if c.get_gid()}
    assert (by_gid["ok:http"], by_gid["failed"], by_gid["retried"]) == (27, 2, 1)
    bands = sorted(str(p.get_gid()) for p in ax.patches
                   if str(p.get_gid()).startswith("step:"))
    assert bands == ["step:db", "step:px"]
    assert {t.get_text() for t in ax.texts} >= {"db", "px"}
    assert [ln.get_gid() for ln in ax.lines].count("ws-close") == 1


def test_timeline_of_nothing() -> None:
    """An empty run draws a figure that says so."""
    fig = timeline_figure(frame([]), None)
    assert "no request was sent" in {t.get_text() for t in fig.axes[0].texts}


def test_summary_table_is_escaped_and_complete() -> None:
    """Every figure of the summary appears, HTML-escaped."""
    summary = summarize(frame([http(0.0), http(0.05, ok=False, step="<b>x</b>")]),
                        meta={"skipped": {"websocket": "no <ws>"}, "stopped_by": "stop()"})
    html = summary_table(summary).to_html()
    assert "&lt;b&gt;x&lt;/b&gt;: 1" in html and "<b>x</b>" not in html
    assert "no &lt;ws&gt;" in html
    labels = summary_frame(summary)["figure"].tolist()
    assert labels[:3] == ["requests sent", "correct answers", "failed"]
    assert "2 requests, 1 failed" in html
