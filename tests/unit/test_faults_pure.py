"""Fault scenarios and the incident narrowing without an engine: the scenario list, option
checks, the CLI's refusals (exit 2 before any engine is contacted), the record's
before/after comparison, and the pure judgement of the incident steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from revivadiag import errors
from revivadiag.analyze import incident
from revivadiag.analyze.incident import Observation
from revivadiag.cli import main
from revivadiag.lab import fault_scenarios, fault_view, faults
from revivadiag.lab.config import LabConfig
from revivadiag.lab.state import save_config

NOWHERE = "unix:///nonexistent/docker.sock"
NGINX_LINE = ('2026/11/30 11:22:47 [error] 6#6: *80 connect() failed (113: No route to host) '
              'while connecting to upstream, client: 10.0.0.1, server: , request: "GET '
              '/api/health HTTP/1.1", upstream: "http://10.0.0.4:3011/api/health", host: "h"')


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state dir and an engine address that answers nothing."""
    monkeypatch.setenv("REVIVADIAG_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    return tmp_path


def test_list_names_every_scenario_once(capsys: pytest.CaptureFixture[str]) -> None:
    """`lab break --list`: one line per scenario, its name first, exit 0."""
    assert main(["lab", "break", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(fault_scenarios.SCENARIOS)
    assert len(fault_scenarios.SCENARIOS) == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["lab", "break", "backend-exploded", "--prefix", "rdtx"], "bad scenario 'backend-exploded'"),
     (["lab", "break", "--prefix", "rdtx"], "bad scenario ''"),
     (["lab", "break", "backend-slow", "--ms", "0", "--prefix", "rdtx"], "bad --ms 0"),
     (["lab", "break", "backend-stopped", "--ms", "50", "--prefix", "rdtx"],
      "only the backend-slow scenario takes a delay"),
     (["lab", "break", "backend-stopped", "--prefix", "rdtnothere"],
      "no lab instance 'rdtnothere'"),
     (["lab", "heal", "--prefix", "rdtnothere"], "no lab instance 'rdtnothere'"),
     (["lab", "heal", "--prefix", "Bad_One"], "bad prefix 'Bad_One'")],
)
def test_refusals_exit_2_before_any_engine(argv: list[str], message: str, state_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input and missing instances are typed errors, exit 2, no traceback, no engine."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_heal_with_nothing_broken_is_fault_state_error(state_dir: Path) -> None:
    """A known instance with no record: FaultStateError, before the engine is asked."""
    save_config(LabConfig(prefix="rdtknown"))
    with pytest.raises(errors.FaultStateError, match="nothing broken to heal"):
        faults.heal("rdtknown")


def test_second_break_is_refused_with_what_is_broken(state_dir: Path) -> None:
    """A recorded fault makes the next break a FaultStateError naming it."""
    save_config(LabConfig(prefix="rdtbroken"))
    faults._save(faults.Fault("backend-stopped", "rdtbroken", "2026-11-30T11:00:00+00:00",
                              ["stopped x"], [{"op": "start", "container": "x"}], {}))
    with pytest.raises(errors.FaultStateError, match=r"already broken \(backend-stopped since"):
        faults.break_lab("rdtbroken", "network-removed")
    kept = faults.current_fault("rdtbroken")
    assert kept is not None and kept.undo == [{"op": "start", "container": "x"}]
    assert oct(faults.fault_path("rdtbroken").stat().st_mode & 0o777) == "0o600"


def test_fault_state_error_is_a_lab_error() -> None:
    """The new error sits under LabError and names the instance."""
    exc = errors.FaultStateError("rdtx", "is already broken")
    assert isinstance(exc, errors.LabError) and "'rdtx' is already broken" in str(exc)


def test_structure_drops_ids_and_addresses_only() -> None:
    """Heal compares names, states, health, networks and aliases; not ids or addresses."""
    a = {"api": {"container": "p_api_1", "id": "1", "state": "running", "health": "healthy",
                 "networks": {"p_front": {"ipv4": "10.0.0.2", "aliases": ["api"]}}}}
    b = {"api": {**a["api"], "id": "2",
                 "networks": {"p_front": {"ipv4": "10.0.0.9", "aliases": ["api"]}}}}
    c = {"api": {**a["api"], "networks": {"p_front": {"ipv4": "10.0.0.2", "aliases": []}}}}
    assert fault_view.structure(a) == fault_view.structure(b)
    assert fault_view.structure(a) != fault_view.structure(c)
    assert fault_view.address_changes(a, b) == ["api id: 1 -> 2",
                                                 "api p_front: 10.0.0.2 -> 10.0.0.9"]
    assert fault_view.address_changes(a, {}) == ["api: gone"]


def test_check_delay_bounds() -> None:
    """1..MAX_DELAY_MS ms; booleans and other types refused."""
    assert fault_scenarios.check_delay(1) == 1
    for bad in (0, fault_scenarios.MAX_DELAY_MS + 1, True, "300"):
        with pytest.raises(errors.ParameterError):
            fault_scenarios.check_delay(bad)


def test_upstream_errors_groups_by_address() -> None:
    """Each failed upstream address and error once, with its count; other lines ignored."""
    frame = incident.upstream_errors([NGINX_LINE, "a normal access line", NGINX_LINE])
    assert frame[["upstream_ip", "upstream_port", "count"]].to_dict("records") == [
        {"upstream_ip": "10.0.0.4", "upstream_port": 3011, "count": 2}]
    assert frame.iloc[0]["error"] == "connect() failed (113: No route to host)"
    assert incident.upstream_errors([]).columns.tolist() == list(incident.UPSTREAM_COLUMNS)


def test_backend_passes_follow_upstream_blocks() -> None:
    """An upstream block's server name is what nginx resolves for a route to it."""
    files = {"n": "upstream b { server api:8000; } server { location /api/ { proxy_pass "
                  "http://b; } location / { proxy_pass http://web:3000; } }"}
    routes = incident.backend_passes(files, frozenset({"api"}))
    assert [(r.location, r.host) for r in routes] == [("/api/", "api")]


def obs(step: str, ok: bool, **data: object) -> Observation:
    return Observation(step, "t", ok, "ok" if ok else "refused", data=dict(data))


FINDINGS = pd.DataFrame([{"id": "RD-PRX-002", "title": "The proxy resolves the backend only "
                          "once"}, {"id": "RD-HLT-001", "title": "A service is unhealthy"}])


@pytest.mark.parametrize(
    ("through", "dns", "used", "direct", "cause", "finding"),
    [(False, True, ["10.0.0.4"], True, "the proxy sends to a stale backend address",
      "RD-PRX-002"),
     (False, True, ["10.0.0.7"], True, "the proxy-to-backend path fails", ""),
     (False, True, ["10.0.0.4"], False, "the backend does not answer", "RD-HLT-001"),
     (False, False, [], False, "the proxy cannot resolve the backend's name", ""),
     (True, True, [], True, "no failure: requests through the proxy succeed", "")],
)
def test_name_cause(through: bool, dns: bool, used: list[str], direct: bool, cause: str,
                    finding: str) -> None:
    """The cause follows from the five observations; the finding's title comes from the
    diagnosis."""
    verdict = incident.name_cause(
        obs("through", through), obs("dns", dns, answers=["10.0.0.7"] if dns else []),
        obs("used", not used, addresses=used), obs("stale", False), obs("direct", direct),
        FINDINGS)
    assert (verdict.cause, verdict.finding_id) == (cause, finding)
    if finding:
        assert verdict.finding_title == FINDINGS.set_index("id").loc[finding, "title"]
