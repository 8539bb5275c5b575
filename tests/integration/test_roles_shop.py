"""Roles, health, latency and KPIs on the lab's second stack (shop: proxy, web, api on 8000,
worker with no port, db, cache), in both variants and with no published port at all.

Nothing on the shop names a role: every role must come from the stack itself.
"""

from __future__ import annotations

import pandas as pd
import pytest

import revivadiag as rd
from revivadiag.analyze.diagnosis import diagnose
from revivadiag.lab import LabInstance

pytestmark = pytest.mark.integration

ROLES = {"api": "backend", "cache": "cache", "db": "database", "proxy": "proxy", "web": "other",
         "worker": "worker"}
PORTS = {"api": 8000, "cache": 6379, "db": 5432, "proxy": 80, "web": 3000}


@pytest.fixture(scope="module")
def snaps(request: pytest.FixtureRequest) -> dict[str, rd.Snapshot]:
    """One snapshot per shop lab (taken when first asked for)."""
    return {}


def snap_of(request: pytest.FixtureRequest, snaps: dict[str, rd.Snapshot],
            fixture: str) -> tuple[LabInstance, rd.Snapshot]:
    lab: LabInstance = request.getfixturevalue(fixture)
    if fixture not in snaps:
        snaps[fixture] = rd.snapshot(project=lab.prefix, samples=5)
    return lab, snaps[fixture]


@pytest.mark.parametrize("fixture", ["lab_shop_current", "lab_shop_target",
                                     "lab_shop_unpublished"])
def test_roles_latency_and_health(request: pytest.FixtureRequest,
                                  snaps: dict[str, rd.Snapshot], fixture: str) -> None:
    """The roles from the stack; latency measured direct and through the proxy on the
    learned paths; every store checked with the credentials of the services using it."""
    _, snap = snap_of(request, snaps, fixture)
    rows = snap.roles.set_index("service")
    assert rows["role"].to_dict() == ROLES
    assert rows["port"].dropna().astype(int).to_dict() == PORTS
    assert rows.loc["api", "decided_by"] == "proxy" and rows.loc["api", "route"] == "/api/"
    assert rows.loc["worker", "decided_by"] == "traffic"
    assert (rows.loc["db", "software"], rows.loc["proxy", "software"]) == ("postgres", "nginx")
    assert not rows["ambiguous"].any() and "none" not in set(rows["decided_by"])
    total = snap.latency[(snap.latency["phase"] == "total") & (snap.latency["source"] != "host")]
    assert dict(zip(total["path"], total["url"], strict=True)) == {
        "direct": "http://api:8000/healthz", "proxy": "http://127.0.0.1:80/api/healthz"}
    assert set(total["errors"]) == {0} and set(total["samples"]) == {5}
    health = snap.health.set_index(["service", "check"])["status"].to_dict()
    for key in (("api", "http"), ("db", "postgres_internal"), ("cache", "redis_internal")):
        assert health[key] == "healthy", (key, snap.health.to_dict("records"))
    assert health[("worker", "docker")] == "unknown"  # no healthcheck: not an error


def test_current_findings_are_the_shops_mistakes(request: pytest.FixtureRequest,
                                                 snaps: dict[str, rd.Snapshot]) -> None:
    """Flat network: the proxy reaches db and cache; the stores published (an error in
    production); the hard-coded localhost URL; no naming finding on Compose's names."""
    _, snap = snap_of(request, snaps, "lab_shop_current")
    d = diagnose(snap, environment="production", requests=30, burst=10)
    ids = set(d.findings["id"])
    assert {"RD-NET-001", "RD-PORT-001", "RD-CFG-001", "RD-POL-001"} <= ids
    assert not ids & {"RD-NAME-001", "RD-ROLE-001", "RD-POL-005"}
    ports = d.checks[d.checks["check_id"] == "published-ports"].set_index("subject")
    failing = " ".join(ports[ports["status"] == "fail"]["evidence"])
    assert "the database db:5432" in failing and "the cache cache:6379" in failing
    assert d.findings.set_index("id").loc["RD-PORT-001", "severity"] == "error"


@pytest.mark.parametrize("fixture", ["lab_shop_target", "lab_shop_unpublished"])
def test_every_kpi_is_measured(request: pytest.FixtureRequest, snaps: dict[str, rd.Snapshot],
                               fixture: str) -> None:
    """All five KPIs measured, through the published proxy or, with nothing published,
    through the proxy container's own address."""
    lab, snap = snap_of(request, snaps, fixture)
    d = diagnose(snap, environment="development", requests=30, burst=10)
    kpis = d.kpis.set_index("kpi")
    assert kpis["value"].notna().all(), kpis["detail"].to_dict()
    assert d.reuse is not None and d.reuse.answered == 30
    assert d.reuse.url.startswith("http://127.0.0.1:") == bool(lab.ports)
    assert not set(d.findings["id"]) & {"RD-NAME-001", "RD-ROLE-001"}
    if fixture == "lab_shop_target":  # networks by role: nothing open that should not be
        assert not set(d.findings["id"]) & {"RD-NET-001", "RD-NET-002", "RD-PORT-001"}
        declared = d.violations[d.violations["basis"] == "declared"]
        assert len(declared) and set(declared["verdict"]) == {"ok"}
        assert pd.notna(kpis.loc["connection_reuse", "value"])
