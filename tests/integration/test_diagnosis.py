"""diagnose() on the real lab: the seed's problems in `current`, no error in `target`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import revivadiag as rd
from revivadiag import schemas
from revivadiag.analyze.diagnosis import Diagnosis, diagnose
from revivadiag.lab import LabInstance, read_secrets

pytestmark = pytest.mark.integration

TREE = Path(__file__).resolve().parents[1] / "fixtures" / "source_tree"
#: the seed's problems, each a finding id, all expected against `current` in production
SEED_PROBLEMS = {
    "RD-CFG-001": "hard-coded localhost API URL in the client environment",
    "RD-CFG-002": "hard-coded localhost API URL in the served page",
    "RD-CFG-003": "mixed content on the https site",
    "RD-NET-001": "frontend reaches the database and Redis",
    "RD-POL-001": "denied paths open",
    "RD-NAME-001": "_new_ container names",
    "RD-PORT-001": "dev ports exposed under the production profile",
    "RD-PRX-001": "no upstream keep-alive",
    "RD-PRX-002": "upstream resolved once",
    "RD-KPI-005": "connection reuse under 90 %",
}


def _ids(d: Diagnosis, severity: str | None = None) -> set[str]:
    f = d.findings if severity is None else d.findings[d.findings["severity"] == severity]
    return set(f["id"])


def _check(d: Diagnosis, check_id: str) -> set[str]:
    return set(d.checks[d.checks["check_id"] == check_id]["status"])


@pytest.fixture(scope="module")
def current_snap(lab_current: LabInstance) -> rd.Snapshot:
    return rd.snapshot(project=lab_current.prefix)


@pytest.fixture(scope="module")
def current_prod(current_snap: rd.Snapshot, lab_current: LabInstance) -> Diagnosis:
    return diagnose(current_snap, environment="production", startup_s=lab_current.startup_s)


@pytest.fixture(scope="module")
def target_dev(lab_target: LabInstance) -> Iterator[Diagnosis]:
    snap = rd.snapshot(project=lab_target.prefix)
    yield diagnose(snap, environment="development", startup_s=lab_target.startup_s,
                   source_path=TREE)
    time.sleep(1.0)  # let the target proxy's rate limiter refill for the tests that follow


def test_current_in_production_shows_each_of_the_seeds_problems(current_prod: Diagnosis) -> None:
    """Every seed problem is an error finding, and the run exits 1."""
    errors = _ids(current_prod, "error")
    missing = {k: v for k, v in SEED_PROBLEMS.items() if k not in errors}
    assert not missing, (missing, current_prod.findings[["id", "evidence"]].to_dict("records"))
    assert current_prod.exit_code == 1
    for name in ("findings", "kpis", "violations", "checks"):
        schemas.validate(name, getattr(current_prod, name))


def test_current_evidence_names_the_values(current_prod: Diagnosis,
                                           lab_current: LabInstance) -> None:
    """Evidence carries the observed values: the URL, the services, the container names."""
    ev = dict(zip(current_prod.findings["id"], current_prod.findings["evidence"], strict=True))
    assert "NEXT_PUBLIC_API_URL=http://localhost:3011" in ev["RD-CFG-001"]
    assert "database" in ev["RD-NET-001"] and "redis" in ev["RD-NET-001"]
    assert f"{lab_current.prefix}_new_backend != {lab_current.prefix}_backend" in ev["RD-NAME-001"]
    assert "production allows only frontend:3010" in ev["RD-PORT-001"]
    assert "no upstream block" in ev["RD-PRX-001"]


def test_current_reuse_is_measured_near_zero(current_prod: Diagnosis) -> None:
    """No keep-alive: about one new backend connection per proxied request."""
    reuse = current_prod.reuse
    assert reuse is not None and reuse.reuse_pct is not None, current_prod.notes
    assert reuse.answered >= 45 and reuse.reuse_pct < 90.0
    assert reuse.new_connections is not None and reuse.new_connections >= reuse.answered * 0.9
    kpi = current_prod.kpis.set_index("kpi").loc["connection_reuse"]
    assert (bool(kpi["passed"]), int(kpi["samples"])) == (False, 50)


def test_current_in_development_allows_the_dev_ports(current_snap: rd.Snapshot) -> None:
    """The same lab judged as development: ports allowed, no mixed content (http site)."""
    d = diagnose(current_snap, environment="development", live=False)
    assert _check(d, "published-ports") == {"pass"}
    assert _check(d, "mixed-content") == {"skip"}
    assert {"RD-NAME-001", "RD-NET-001", "RD-CFG-001"} <= _ids(d, "error")
    assert "RD-PORT-001" not in _ids(d)


def test_target_in_development_has_no_error_finding(target_dev: Diagnosis) -> None:
    """The seed's solution passes: only warnings/infos remain (source audit aside)."""
    errors = target_dev.findings[(target_dev.findings["severity"] == "error")
                                 & (target_dev.findings["category"] != "source")]
    assert errors.empty, errors[["id", "evidence"]].to_dict("records")


def test_target_proxy_checks_pass(target_dev: Diagnosis) -> None:
    """Keep-alive, re-resolution (the entrypoint watcher), WebSocket, XFF, rate limit."""
    for check in ("proxy-keepalive", "proxy-resolution", "websocket-upgrade",
                  "forwarded-headers", "xff-spoofing", "rate-limit", "frontend-isolation",
                  "container-naming", "client-api-url", "page-api-url"):
        assert _check(target_dev, check) == {"pass"}, target_dev.checks[
            target_dev.checks["check_id"] == check][["subject", "evidence"]].to_dict("records")


def test_target_live_checks_stay_under_the_declared_rate_limit(target_dev: Diagnosis) -> None:
    """The target's nginx declares limit_req on /api/: diagnose's own requests (the reuse
    measurement, the burst) are paced under it, so no other client of the proxy is limited
    because of them, and the check and the measurement say so."""
    row = target_dev.checks[target_dev.checks["check_id"] == "rate-limit"].iloc[0]
    assert "declared: limit_req zone=api rate=" in row["evidence"], row["evidence"]
    assert "paced" in row["evidence"] and "429" not in row["evidence"], row["evidence"]
    assert target_dev.reuse is not None and "paced at" in target_dev.reuse.detail


def test_target_reuse_is_measured_near_full(target_dev: Diagnosis) -> None:
    """Upstream keep-alive: almost no new backend connections."""
    reuse = target_dev.reuse
    assert reuse is not None and reuse.reuse_pct is not None, target_dev.notes
    assert reuse.reuse_pct > 90.0


def test_source_findings_join_the_diagnosis(target_dev: Diagnosis) -> None:
    """With source_path, the source audit's frame and RD-SRC findings are included."""
    assert target_dev.source_findings is not None and len(target_dev.source_findings) > 0
    assert {"RD-SRC-001", "RD-SRC-002", "RD-SRC-003"} <= _ids(target_dev)


def test_json_output_holds_no_secret(current_prod: Diagnosis, lab_current: LabInstance) -> None:
    """The whole JSON form is serialisable and contains none of the lab's secret values."""
    text = json.dumps(current_prod.to_json())
    for name, value in read_secrets(lab_current.prefix).items():
        assert value not in text, name
    summary = current_prod.to_json()["summary"]
    assert summary["counts"]["error"] >= len(SEED_PROBLEMS)


def test_live_off_touches_nothing_and_says_so(current_snap: rd.Snapshot) -> None:
    """live=False: proxy checks skipped, reuse not measured (NA), no crash."""
    d = diagnose(current_snap, environment="production", live=False)
    assert d.reuse is None
    assert _check(d, "proxy-keepalive") == {"skip"}
    assert "RD-KPI-000" in _ids(d, "info")
