"""Findings: stable ids, severities, evidence aggregation and remediation hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from revivadiag import schemas
from revivadiag.analyze.checks import CHECKS
from revivadiag.analyze.findings import (
    CATALOGUE,
    CHECK_FINDINGS,
    KPI_FINDINGS,
    MAX_EVIDENCE_ITEMS,
    build_findings,
    summarise,
)


def _checks(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return schemas.to_frame("checks", [
        {"check_id": c, "title": CHECKS[c], "environment": "production", "subject": s,
         "status": st, "evidence": f"ev {s}"} for c, s, st in rows
    ])


def _ids(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["id"], frame["severity"], strict=True))


def test_catalogue_is_complete_and_points_at_a_runbook_or_readme() -> None:
    """Every check and KPI maps to an entry; every remediation names where the fix is."""
    assert set(CHECK_FINDINGS) == set(CHECKS)
    assert set(KPI_FINDINGS.values()) <= set(CATALOGUE)
    for entry in CATALOGUE.values():
        assert entry.severity in schemas.SEVERITIES
        assert "README §" in entry.remediation or "runbooks/" in entry.remediation, entry.id


def test_one_row_per_kind_with_all_instances_in_the_evidence() -> None:
    """Four failing naming rows are one RD-NAME-001; passing rows give nothing."""
    checks = _checks(*[("container-naming", f"p_new_{s}", "fail")
                       for s in ("backend", "database", "frontend", "redis")],
                     ("published-ports", "3010", "pass"))
    f = build_findings(checks=checks)
    schemas.validate("findings", f)
    assert _ids(f) == [("RD-NAME-001", "error")]
    assert f.iloc[0]["evidence"].count("p_new_") == 8  # subject and evidence of each
    assert f.iloc[0]["remediation"].endswith("README § Migration")


def test_warn_status_lowers_the_severity_and_fail_wins() -> None:
    """A warn-only isolation check is a warning; with a fail among them, an error."""
    warn = build_findings(checks=_checks(("frontend-isolation", "a", "warn")))
    both = build_findings(checks=_checks(("frontend-isolation", "a", "warn"),
                                         ("frontend-isolation", "b", "fail")))
    assert _ids(warn) == [("RD-NET-001", "warning")]
    assert _ids(both) == [("RD-NET-001", "error")]


def _violation(verdict: str, severity: str, src: str = "frontend") -> dict[str, Any]:
    return {"source_service": src, "target_service": "database", "target_port": 5432,
            "expected": "deny", "observed": "open", "verdict": verdict, "severity": severity,
            "evidence": f"{src} -> database open"}


def test_policy_findings_take_the_rule_severity() -> None:
    """A violation of a warning-severity rule alone is a warning; ok rows give nothing."""
    soft = schemas.to_frame("violations", [_violation("violation", "warning", "database"),
                                           _violation("ok", "")])
    hard = schemas.to_frame("violations", [_violation("violation", "warning", "database"),
                                           _violation("violation", "error")])
    assert _ids(build_findings(violations=soft)) == [("RD-POL-001", "warning")]
    assert _ids(build_findings(violations=hard)) == [("RD-POL-001", "error")]
    mixed = schemas.to_frame("violations", [_violation("refused_not_dropped", "warning"),
                                            _violation("blocked", "error"),
                                            _violation("inconclusive", "info")])
    assert _ids(build_findings(violations=mixed)) == [
        ("RD-POL-003", "error"), ("RD-POL-002", "warning"), ("RD-POL-004", "info")]


def _kpi(key: str, value: float | None, passed: bool | None) -> dict[str, Any]:
    return {"kpi": key, "title": key, "value": value, "unit": "%", "threshold": 90.0,
            "comparison": ">", "samples": 50, "passed": passed if passed is not None else pd.NA,
            "detail": f"{key} detail"}


def test_kpi_findings() -> None:
    """A failed reuse KPI is an error with its value; unmeasured KPIs are one info row."""
    kpis = schemas.to_frame("kpis", [_kpi("connection_reuse", 0.0, False),
                                     _kpi("dns_resolution", None, None),
                                     _kpi("startup_time", None, None),
                                     _kpi("proxy_overhead", 1.0, True)])
    f = build_findings(kpis=kpis)
    assert _ids(f) == [("RD-KPI-005", "error"), ("RD-KPI-000", "info")]
    assert f.iloc[0]["evidence"].startswith("0.00 % (target > 90 %, 50 samples)")
    assert "dns_resolution" in f.iloc[1]["evidence"] and "startup_time" in f.iloc[1]["evidence"]


def test_health_and_source_findings() -> None:
    """Internal unhealthy -> error, external-only -> warning; client-side source -> error."""
    health = schemas.to_frame("health", [
        {"service": "backend", "check": "http", "status": "unhealthy", "target": "u",
         "error_type": "TIMEOUT"},
        {"service": "database", "check": "postgres_external", "status": "unhealthy",
         "target": "127.0.0.1:5435"},
        {"service": "redis", "check": "redis_internal", "status": "healthy"},
        {"service": "redis", "check": "redis_external", "status": "unknown"},
    ])
    source = schemas.to_frame("source_findings", [
        {"file": "a.ts", "line": 1, "kind": "backend_url", "match": "m", "side": "client"},
        {"file": "b.py", "line": 2, "kind": "redis_port", "match": "m", "side": "server"},
        {"file": "c.yml", "line": 3, "kind": "container_name", "match": "m", "side": "config"},
    ])
    f = build_findings(health=health, source_findings=source)
    assert _ids(f) == [("RD-HLT-001", "error"), ("RD-SRC-001", "error"),
                       ("RD-HLT-002", "warning"), ("RD-SRC-002", "warning"),
                       ("RD-SRC-003", "warning")]
    assert "[TIMEOUT]" in f.iloc[0]["evidence"]


def test_nothing_found_is_an_empty_valid_frame() -> None:
    """No inputs or only passes: no rows."""
    f = build_findings(checks=_checks(("rate-limit", "x", "pass")))
    schemas.validate("findings", f)
    assert f.empty


@pytest.mark.parametrize(("n", "suffix"), [(3, ""), (MAX_EVIDENCE_ITEMS + 2, " (+2 more)")])
def test_summarise_bounds_the_evidence(n: int, suffix: str) -> None:
    """At most MAX_EVIDENCE_ITEMS items, then a count; duplicates dropped."""
    items = [f"i{k}" for k in range(n)] + ["i0"]
    text = summarise(items)
    assert text.endswith(suffix or f"i{n - 1}") and text.count("i0") == 1


def test_diagnose_an_empty_snapshot_without_live_checks() -> None:
    """No containers, no probes, live off: every frame valid, only the 'not measured' info."""
    from revivadiag.analyze.diagnosis import diagnose
    from revivadiag.collect.snapshot import Snapshot

    d = diagnose(Snapshot.empty(project="p"), environment="production", live=False)
    for name in ("findings", "kpis", "violations", "checks"):
        schemas.validate(name, getattr(d, name))
    assert _ids(d.findings) == [("RD-KPI-000", "info")]
    assert (d.exit_code, d.counts()) == (0, {"error": 0, "warning": 0, "info": 1})
    assert d.summary()["kpis"]["connection_reuse"] is None
    assert set(d.to_json()) == {"summary", "findings", "kpis", "violations", "checks", "roles"}


def test_diagnose_judges_gathered_live_facts_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the gathered live facts, diagnose only judges: no engine is contacted, the reuse
    measurement becomes the KPI and the gathering's notes are kept."""
    from revivadiag.analyze.diagnosis import diagnose
    from revivadiag.collect import live
    from revivadiag.collect.live_facts import ReuseMeasurement
    from revivadiag.collect.snapshot import Snapshot

    def no_engine(*_: object, **__: object) -> None:
        raise AssertionError("diagnose talked to the engine")

    monkeypatch.setattr(live, "gather_live", no_engine)
    reuse = ReuseMeasurement(50, 50, 2, 96.0, "http://127.0.0.1:1/x", "procfs", "measured")
    gathered = live.LiveGathering(reuse=reuse, notes=["live HTTP checks skipped: test"])
    d = diagnose(Snapshot.empty(project="p"), live=True, gathered=gathered)
    assert d.reuse is reuse and d.summary()["kpis"]["connection_reuse"] == 96.0
    assert d.notes == ["live HTTP checks skipped: test"]


def test_proxy_target_follows_the_roles() -> None:
    """The proxy and backend services, ports and path come from the roles, not names."""
    from revivadiag.collect.live import proxy_target
    from revivadiag.collect.roles import Roles
    from revivadiag.errors import ServiceNotFound

    roles = Roles.from_rows([
        {"service": "edge", "role": "proxy", "port": 80, "ports": [80], "http_path": "/api/h"},
        {"service": "api", "role": "backend", "port": 8000, "ports": [8000],
         "http_path": "/h"}])
    t = proxy_target(roles)
    assert (t.proxy, t.proxy_port, t.backend, t.backend_port, t.path) == (
        "edge", 80, "api", 8000, "/api/h")
    with pytest.raises(ServiceNotFound, match="backend"):
        proxy_target(Roles.from_rows([{"service": "edge", "role": "proxy", "port": 80}]))


def test_role_and_policy_problems_become_warnings() -> None:
    """An ambiguous role and a policy naming what the stack lacks are findings."""
    f = build_findings(roles=["api: role backend is ambiguous"],
                       policy_problems=[("rule x names service 'web'", "warning")])
    assert _ids(f) == [("RD-POL-005", "warning"), ("RD-ROLE-001", "warning")]


def test_diagnose_warns_about_a_policy_naming_what_the_stack_lacks(tmp_path: Path) -> None:
    """A user's policy naming a service and a role the stack lacks: a warning naming both;
    the default policy's unheld roles are only info."""
    from revivadiag.analyze.diagnosis import diagnose
    from revivadiag.collect.snapshot import Snapshot

    snap = Snapshot.empty(project="shop")
    snap.containers = schemas.to_frame("containers", [
        {"name": "shop-api-1", "service": "api", "image": "acme/api", "state": "running"},
        {"name": "shop-db-1", "service": "db", "image": "postgres:16", "state": "running"}])
    snap.roles = schemas.to_frame("roles", [
        {"service": "api", "role": "backend", "port": 8000, "ports": [8000],
         "decided_by": "declared", "confidence": "high", "ambiguous": False},
        {"service": "db", "role": "database", "port": 5432, "ports": [5432],
         "decided_by": "software", "confidence": "high", "ambiguous": False}])
    mine = tmp_path / "policy.yml"
    mine.write_text("rules:\n  - {from: payments, to: db, action: deny}\n"
                    "  - {from: backend, to: cache, port: cache, action: allow}\n"
                    "external: {development: []}\n")
    d = diagnose(snap, environment="development", policy=mine, live=False)
    row = d.findings.set_index("id").loc["RD-POL-005"]
    assert row["severity"] == "warning"
    assert "service 'payments'" in row["evidence"] and "role 'cache'" in row["evidence"]
    default = diagnose(snap, environment="development", live=False)
    assert default.findings.set_index("id").loc["RD-POL-005", "severity"] == "info"
    assert "RD-NAME-001" not in set(default.findings["id"])
