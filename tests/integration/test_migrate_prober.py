"""The migration prober against real labs: rate, health, failures tagged with the step,
WebSocket reconnects, a session lost, the shop's write session, and its bounds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import docker
import httpx
import numpy as np
import pytest

from revivadiag.errors import NoProxyPort, ProberError
from revivadiag.lab import BuildReport, LabInstance, down, read_secrets, up
from revivadiag.lab.lifecycle import isolated_config
from revivadiag.migrate.prober import Prober, ProbeReport, ProbeTarget, probe_target
from revivadiag.render.migration import summary_table, timeline_figure

pytestmark = pytest.mark.integration

RATE = 20.0
#: the machine is shared (load averages of 30+ were seen): a deadline that long makes "all
#: ok" a statement about the stack, not about the neighbours; the rate does not depend on it
LOADED_DEADLINE_S = 10.0
#: through the proxy to the backend; not /api/health, whose own dependency checks answer 503
#: after 2 s on a machine this loaded (a finding about the machine, not about the prober)
HEALTHY_PATHS = ["/", "/api/debug/echo"]
SHOP_HEALTHY_PATHS = ["/", "/api/echo"]
SHOP_SESSION = {"write": {"path": "/api/items", "json": {"name": "probe-{marker}"}},
                "check": "/api/items"}


def run_until_done(prober: Prober, limit_s: float) -> ProbeReport:
    """Wait for a prober that stops by itself (failing if it does not within ``limit_s``)."""
    started = time.monotonic()
    while prober.running and time.monotonic() - started < limit_s:
        time.sleep(0.1)
    assert not prober.running, f"the prober did not stop by itself within {limit_s} s"
    return prober.stop()


def wait_healthy(inst: LabInstance, limit_s: float = 90.0) -> None:
    """Until /api/health answers 200 through the proxy."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(inst.url("/api/health"), timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{inst.prefix} not healthy again within {limit_s} s")


def wait_for(condition: Callable[[], bool], limit_s: float) -> None:
    """Poll ``condition`` every 0.1 s; fail when it is not true within ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {limit_s} s"
        time.sleep(0.1)


def warmed_up(target: ProbeTarget, ready: str, *, max_duration_s: float,
              ws_interval_s: float = 1.0, session_interval_s: float = 1.0) -> Prober:
    """A started prober, step "before" marked, once ``ready`` (``ok:<kind>:<op>``) has
    answered twice (the login and the first echo are slow on a loaded machine)."""
    prober = Prober(target, deadline_s=LOADED_DEADLINE_S, max_duration_s=max_duration_s,
                    ws_interval_s=ws_interval_s, session_interval_s=session_interval_s).start()
    prober.mark("before")
    try:
        wait_for(lambda: prober.progress().get(ready, 0) >= 2, 180)
    except AssertionError:
        prober.stop()
        raise
    return prober


def failures(report: ProbeReport) -> list[dict[str, object]]:
    rows = report.requests[~report.requests["ok"].astype(bool)]
    out: list[dict[str, object]] = rows[["t_s", "kind", "op", "path", "step", "step_ended",
                                         "status", "error_type", "detail"]].to_dict("records")
    return out


@pytest.fixture(scope="module")
def own_lab(engine: docker.DockerClient, lab_images: BuildReport) -> Iterator[LabInstance]:
    """A private `target` lab for this module's tests that stop its containers."""
    inst = up(isolated_config("target", "development"), timeout_s=180, client=engine)
    try:
        yield inst
    finally:
        down(inst.prefix, volumes=True, client=engine)


def test_target_learned_from_the_lab(engine: docker.DockerClient,
                                     lab_target: LabInstance) -> None:
    """The proxy's published port, the health path, /ws and the seed's login are learned."""
    target = probe_target(engine, lab_target.prefix)
    assert (target.host, target.port) == ("127.0.0.1", lab_target.ports["frontend"])
    assert target.proxy == "frontend"
    assert set(target.http) == {"/", "/api/health"}
    assert target.websocket == "/ws"
    assert target.session is not None and target.session.mode == "login"
    assert target.skipped == {}


def test_steady_rate_and_all_ok_on_a_healthy_lab(engine: docker.DockerClient,
                                                 lab_target: LabInstance) -> None:
    """6 s at 20/s: about 120 HTTP requests on schedule, all ok, echoes and the session too."""
    target = probe_target(engine, lab_target.prefix, {"http": HEALTHY_PATHS})
    prober = Prober(target, rate=RATE, max_duration_s=6.0, deadline_s=LOADED_DEADLINE_S)
    prober.mark("steady")
    report = run_until_done(prober.start(), 60)
    s = report.summary()
    expected = RATE * 6.0
    assert s["stopped_by"] == "max_duration", \
        report.requests.groupby(["kind", "op"]).size().to_dict()
    # every slot of the schedule is either sent or counted as missed (a loop that fell
    # behind skips slots rather than bursting); on a loaded machine some are missed
    slots = 1 + RATE * s["schedule_s"]
    assert abs(s["http_sent"] + s["missed_slots"] - slots) <= 1.5, \
        (s["http_sent"], s["missed_slots"], s["schedule_s"])
    assert 6.0 <= s["schedule_s"] <= 6.5
    assert s["http_sent"] >= 0.7 * expected, (s["http_sent"], s["missed_slots"])
    assert s["failed"] == 0, failures(report)
    assert s["retries"] == 0
    assert s["ws_echoes"] >= 4 and s["ws_echoes_failed"] == 0
    assert (s["session"], s["session_checks_failed"]) == ("survived", 0)
    assert s["session_checks"] >= 2  # during, and the last one after (the login is slow here)
    assert set(report.requests["step"]) == {"steady"}
    gaps = report.requests[report.requests["kind"] == "http"]["t_s"].diff().dropna()
    assert gaps.median() == pytest.approx(1 / RATE, abs=0.01)  # a schedule, not a burst


def test_stops_by_itself_at_the_request_cap(engine: docker.DockerClient,
                                            lab_target: LabInstance) -> None:
    """max_requests bounds the run, whatever its duration."""
    target = probe_target(engine, lab_target.prefix, {"websocket": False, "session": False})
    started = time.monotonic()
    report = run_until_done(Prober(target, max_requests=15, max_duration_s=600).start(), 60)
    assert report.meta["stopped_by"] == "max_requests"
    assert len(report.requests) == 15
    assert time.monotonic() - started < 30
    assert set(report.summary()["skipped"]) == {"websocket", "session"}


@pytest.mark.destructive
def test_backend_stopped_failures_tagged_and_websocket_reconnects(
        engine: docker.DockerClient, own_lab: LabInstance) -> None:
    """Stopping the backend mid-run fails requests tagged with the step that ran; the
    WebSocket client sees the close and reconnects once the backend is back."""
    target = probe_target(engine, own_lab.prefix, {"http": HEALTHY_PATHS})
    backend = engine.containers.get(own_lab.containers["backend"])
    prober = warmed_up(target, "ok:ws:echo", max_duration_s=240, ws_interval_s=0.5)
    try:
        prober.mark("stop-backend")
        backend.stop(timeout=5)
        time.sleep(3)
        prober.mark("start-backend")
        backend.start()
        wait_healthy(own_lab)
        time.sleep(2)
        prober.mark("after")
        time.sleep(3)
    finally:
        report = prober.stop()
    s = report.summary()
    failed = failures(report)
    assert s["failed_by_step"].get("stop-backend", 0) >= 10, s["failed_by_step"]
    assert {str(f["step_ended"]) for f in failed} <= {"stop-backend", "start-backend"}, failed
    http_failed = [f for f in failed if f["kind"] == "http"]
    assert http_failed and all(f["error_type"] in ("PROXY_ERROR", "TIMEOUT")
                               for f in http_failed)
    assert s["by_step"]["before"]["failed"] == 0
    assert s["by_step"]["after"]["failed"] == 0
    assert s["ws_clean_closes"] + s["ws_unclean_closes"] >= 1
    assert s["ws_reconnects"] >= 1
    # the proxy's own page kept answering; what goes to the backend failed
    assert {f["path"] for f in http_failed} == {"/api/debug/echo"}
    steps = report.steps()
    assert steps["id"].tolist() == ["before", "stop-backend", "start-backend", "after"]
    ax = timeline_figure(report.requests, steps).axes[0]
    bands = [p.get_gid() for p in ax.patches if str(p.get_gid()).startswith("step:")]
    assert bands == [f"step:{i}" for i in steps["id"]]
    drawn = {c.get_gid(): np.asarray(c.get_offsets()).shape[0]
            for c in ax.collections if c.get_gid()}
    assert drawn["failed"] == len([f for f in failed if f["op"] != "close"])


@pytest.mark.destructive
def test_session_check_fails_when_the_session_is_lost(engine: docker.DockerClient,
                                                      own_lab: LabInstance) -> None:
    """Deleting the sessions in Redis mid-run: the next checks fail (401), tagged."""
    wait_healthy(own_lab)
    target = probe_target(engine, own_lab.prefix, {"websocket": False, "http": HEALTHY_PATHS})
    assert target.session is not None, target.skipped
    redis = engine.containers.get(own_lab.containers["redis"])
    prober = warmed_up(target, "ok:session:check", max_duration_s=120, session_interval_s=0.5)
    try:
        prober.mark("lose-session")
        keys = redis.exec_run(["redis-cli", "--scan", "--pattern", "session:*"])
        names = keys.output.decode().split()
        assert names, "no session in Redis"
        assert redis.exec_run(["redis-cli", "DEL", *names]).exit_code == 0
        time.sleep(2)
    finally:
        report = prober.stop()
    s = report.summary()
    assert s["session"] == "lost", failures(report)
    checks = report.requests[report.requests["op"] == "check"]
    before = checks[checks["step"] == "before"]
    lost = checks[~checks["ok"].astype(bool)]
    assert len(before) >= 2 and bool(before["ok"].all())
    assert len(lost) >= 1 and set(lost["step_ended"]) == {"lose-session"}
    assert set(lost["status"].astype(int)) == {401}
    assert all("session lost" in d for d in lost["detail"])
    assert s["failed_by_step"] == {"lose-session": len(lost)}


def test_no_secret_in_what_the_prober_writes(engine: docker.DockerClient,
                                            lab_target: LabInstance) -> None:
    """The lab's secrets appear in no frame, summary, table or target description."""
    report = run_until_done(Prober(probe_target(engine, lab_target.prefix),
                                   max_duration_s=2.0, deadline_s=LOADED_DEADLINE_S).start(),
                            60)
    texts = [report.requests.to_csv(), json.dumps(report.summary(), default=str),
             summary_table(report).to_html(), json.dumps(report.meta, default=str)]
    for name, value in read_secrets(lab_target.prefix).items():
        assert not any(value in text for text in texts), name


def test_shop_target_skips_what_it_lacks_and_keeps_a_written_item(
        engine: docker.DockerClient, lab_shop_target: LabInstance) -> None:
    """The shop has no WebSocket and no login: skipped with the reason; a write session
    from the plan's section survives; its proxy port and health path are learned."""
    learned = probe_target(engine, lab_shop_target.prefix)
    assert learned.port == lab_shop_target.ports["proxy"]
    assert "/api/healthz" in learned.http
    assert "no WebSocket" in learned.skipped["websocket"]
    assert "no login" in learned.skipped["session"]
    target = probe_target(engine, lab_shop_target.prefix,
                          {"session": SHOP_SESSION, "http": SHOP_HEALTHY_PATHS})
    report = run_until_done(Prober(target, max_duration_s=4.0, deadline_s=LOADED_DEADLINE_S,
                                   session_interval_s=0.5).start(), 60)
    s = report.summary()
    assert s["failed"] == 0, failures(report)
    assert s["session"] == "survived" and s["session_checks"] >= 3
    assert s["ws_echoes"] == 0 and "websocket" in s["skipped"]


def test_unpublished_proxy_is_a_typed_error(engine: docker.DockerClient,
                                            lab_shop_unpublished: LabInstance) -> None:
    """A proxy that publishes nothing: NoProxyPort, saying the prober needs one."""
    with pytest.raises(NoProxyPort, match="needs a published proxy port") as caught:
        probe_target(engine, lab_shop_unpublished.prefix)
    assert caught.value.proxy == "proxy"
    assert isinstance(caught.value, ProberError)
