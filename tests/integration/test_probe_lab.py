"""The probe collectors on the real reference lab (current and target variants)."""

from __future__ import annotations

import json
from typing import Any

import docker
import pandas as pd
import pytest

from revivadiag.analyze.kpis import proxy_overhead_kpi
from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.dns import collect_dns
from revivadiag.collect.inventory import gather
from revivadiag.collect.latency import collect_latency
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.reachability import collect_reachability
from revivadiag.engine.probe import ProbeEngine
from revivadiag.lab import LabInstance, read_secrets
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration


def frames(engine: docker.DockerClient, lab: LabInstance) -> dict[str, pd.DataFrame]:
    """containers, endpoints and ports frames of the lab (through the collectors' parsers)."""
    inv = gather(engine, lab.prefix)
    return {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
            "endpoints": parse_endpoints(inv.containers, inv.project),
            "ports": parse_ports(inv.containers, inv.project)}


def reach_of(engine: docker.DockerClient, lab: LabInstance) -> pd.DataFrame:
    f = frames(engine, lab)
    frame = collect_reachability(ProbeEngine(engine), f["containers"], f["endpoints"])
    validate("reachability", frame)
    return frame


def outcome(frame: pd.DataFrame, source: str, target: str, port: int) -> str:
    rows = frame[(frame.source_service == source) & (frame.target_service == target)
                 & (frame.target_port == port)]
    assert len(rows) == 1, rows
    return str(rows.iloc[0].outcome)


def test_current_frontend_reaches_the_database(engine: docker.DockerClient,
                                               lab_current: LabInstance) -> None:
    """current: one flat network, so the frontend's probe of PostgreSQL is open."""
    frame = reach_of(engine, lab_current)
    assert outcome(frame, "frontend", "database", 5432) == "open"
    assert outcome(frame, "frontend", "redis", 6379) == "open"
    assert outcome(frame, "backend", "database", 5432) == "open"


def test_target_frontend_cannot_reach_the_database(engine: docker.DockerClient,
                                                   lab_target: LabInstance) -> None:
    """target: split networks; the frontend cannot reach PostgreSQL, the backend can."""
    frame = reach_of(engine, lab_target)
    assert outcome(frame, "frontend", "database", 5432) != "open"
    assert outcome(frame, "frontend", "redis", 6379) != "open"
    assert outcome(frame, "backend", "database", 5432) == "open"
    assert outcome(frame, "frontend", "backend", 3011) == "open"
    row = frame[(frame.source_service == "frontend") & (frame.target_service == "database")].iloc[0]
    assert row.error_type and "L3 probe" in row.error


@pytest.mark.parametrize("variant", ["lab_current", "lab_target"])
def test_backend_resolves_every_service_to_its_shared_address(
        engine: docker.DockerClient, variant: str, request: pytest.FixtureRequest) -> None:
    """Every service name asked from the backend returns that container's IP on a network it
    shares with the backend (the backend itself is on both networks in target)."""
    lab: LabInstance = request.getfixturevalue(variant)
    f = frames(engine, lab)
    dns = collect_dns(ProbeEngine(engine), f["containers"], f["endpoints"])
    validate("dns", dns)
    eps = f["endpoints"]
    backend = lab.containers["backend"]
    backend_nets = set(eps[eps.container == backend].network)
    asked = dns[(dns.source == backend) & (dns.query_kind == "service")]
    assert set(asked["query"]) == {"frontend", "backend", "database", "redis"}
    for row in asked.itertuples():
        mine = eps[(eps.service == row.query) & eps.network.isin(backend_nets)]
        assert row.answers and set(row.answers) <= set(mine.ipv4), row.query
        assert (row.rcode, row.method) == ("NOERROR", "setns")


def test_latency_direct_and_through_the_proxy(engine: docker.DockerClient,
                                              lab_target: LabInstance) -> None:
    """N samples per path after warm-up, from the frontend's netns and from the host."""
    f = frames(engine, lab_target)
    frame = collect_latency(ProbeEngine(engine), f["containers"], f["ports"], samples=5)
    validate("latency", frame)
    total = frame[frame.phase == "total"]
    assert set(zip(total.path, total.source, strict=True)) >= {
        ("direct", lab_target.containers["frontend"]), ("proxy", lab_target.containers["frontend"]),
        ("proxy", "host")}
    assert set(total.samples) == {5} and set(total.errors) == {0}
    assert (total.p50_ms > 0).all() and (total.p99_ms >= total.p50_ms).all()
    samples = frame.attrs["samples"]
    assert len(samples) == 5 * len(total)
    assert not pd.isna(proxy_overhead_kpi(frame)["value"])


def service_jobs(secrets: dict[str, str], password_ok: bool) -> list[dict[str, Any]]:
    pg = secrets["DATABASE_PASSWORD"] if password_ok else "wrong-" + secrets["DATABASE_PASSWORD"]
    rd = secrets["REDIS_PASSWORD"] if password_ok else "wrong-" + secrets["REDIS_PASSWORD"]
    return [{"kind": "postgres", "host": "database", "port": 5432, "user": "revivatech",
             "password": pg, "dbname": "revivatech"},
            {"kind": "redis", "host": "redis", "port": 6379, "password": rd}]


def test_postgres_and_redis_from_the_backend(engine: docker.DockerClient,
                                             lab_target: LabInstance) -> None:
    """psycopg and AUTH+PING work from the backend's netns; a wrong password is reported as
    rejected credentials, and no password appears anywhere in the results."""
    secrets = read_secrets(lab_target.prefix)
    prober = ProbeEngine(engine)
    backend = lab_target.containers["backend"]
    good = prober.run({backend: service_jobs(secrets, True)})[backend]
    bad = prober.run({backend: service_jobs(secrets, False)})[backend]
    assert [r["ok"] for r in good] == [True, True], good
    assert [(r["ok"], r["auth_failed"]) for r in bad] == [(False, True), (False, True)], bad
    text = json.dumps(good + bad)
    for key in ("DATABASE_PASSWORD", "REDIS_PASSWORD"):
        assert secrets[key] not in text
