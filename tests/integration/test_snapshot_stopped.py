"""A lab with a stopped container, and a container that vanishes mid-snapshot (own lab copy).

These tests break a lab, so they start their own isolated copy (never the shared fixtures)
and remove it afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import docker
import pytest

import revivadiag as rd
from conftest import start_isolated_lab
from revivadiag.collect.containers import parse_containers
from revivadiag.collect.health import collect_health
from revivadiag.collect.inventory import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    RawInventory,
    inspect_containers,
    list_project,
)
from revivadiag.engine.probe import ProbeEngine
from revivadiag.lab import LabInstance, down
from revivadiag.schemas import validate

pytestmark = [pytest.mark.integration, pytest.mark.destructive]
NOT_FOUND = "CONTAINER_NOT_FOUND"


@pytest.fixture(scope="module")
def broken_lab(engine: docker.DockerClient, lab_images: object) -> Iterator[LabInstance]:
    """An isolated `current` lab whose backend has been stopped."""
    lab = start_isolated_lab("current", client=engine)
    try:
        engine.containers.get(lab.containers["backend"]).stop(timeout=5)
        yield lab
    finally:
        down(lab.prefix, volumes=True, client=engine)


@pytest.fixture(scope="module")
def broken_snap(broken_lab: LabInstance) -> rd.Snapshot:
    """A snapshot of that lab."""
    return rd.snapshot(project=broken_lab.prefix, samples=3)


def test_frames_still_match_their_schemas(broken_snap: rd.Snapshot) -> None:
    """Nothing raised, every frame validates, nothing was silently dropped."""
    for name, frame in broken_snap.frames().items():
        validate(name, frame)
    for name in ("containers", "networks", "endpoints", "env", "dns", "reachability", "health"):
        assert not broken_snap[name].empty, name


def test_no_collector_gave_up(broken_snap: rd.Snapshot) -> None:
    """Every probe collector returned rows (with error types) rather than failing whole."""
    assert broken_snap.meta.notes == []
    latency = broken_snap.latency
    assert not latency.empty
    direct = latency[latency["path"] == "direct"]
    assert (direct["error_type"] != "").all()


def test_stopped_container_is_exited(broken_snap: rd.Snapshot, broken_lab: LabInstance) -> None:
    """The stopped backend shows state exited and pid 0; the others still run."""
    states = dict(zip(broken_snap.containers["service"], broken_snap.containers["state"],
                      strict=True))
    assert states == {"backend": "exited", "database": "running", "frontend": "running",
                      "redis": "running"}
    backend = broken_snap.containers.set_index("service").loc["backend"]
    assert backend["pid"] == 0
    assert backend["name"] == broken_lab.containers["backend"]


def test_probes_from_and_to_it_carry_error_types(broken_snap: rd.Snapshot,
                                                 broken_lab: LabInstance) -> None:
    """DNS and reachability rows that involve the stopped backend carry an error type."""
    name = broken_lab.containers["backend"]
    dns_from = broken_snap.dns[broken_snap.dns["source"] == name]
    assert not dns_from.empty and set(dns_from["error_type"]) == {NOT_FOUND}
    reach = broken_snap.reachability
    from_it = reach[reach["source"] == name]
    assert not from_it.empty and set(from_it["error_type"]) == {NOT_FOUND}
    to_it = reach[(reach["target"] == name) & (reach["source"] != name)]
    assert not to_it.empty
    assert "open" not in set(to_it["outcome"])
    assert (to_it["error_type"] != "").all(), to_it[["outcome", "error_type", "error"]]


def test_health_says_what_is_down(broken_snap: rd.Snapshot) -> None:
    """Backend HTTP unhealthy with an error type; the database, whose only user is down, is
    checked from its own namespace and is fine; outside still fine."""
    health = broken_snap.health
    rows = {r["check"]: r for r in health[health["check"] != "docker"].to_dict("records")}
    assert rows["http"]["status"] == "unhealthy" and rows["http"]["error_type"]
    assert (rows["postgres_internal"]["status"], rows["postgres_internal"]["method"]) == (
        "healthy", "setns")
    assert broken_snap.roles.set_index("service").loc["backend", "role"] == "backend"
    assert rows["postgres_external"]["status"] == "healthy"
    docker_backend = health[(health["check"] == "docker") & (health["service"] == "backend")]
    assert docker_backend.iloc[0]["status"] == "unhealthy"
    assert docker_backend.iloc[0]["error_type"] == NOT_FOUND
    assert "exited" in docker_backend.iloc[0]["detail"]


def test_container_vanishing_mid_snapshot(engine: docker.DockerClient,
                                          broken_lab: LabInstance) -> None:
    """Listed, then removed before its inspect: a `removed` row and CONTAINER_NOT_FOUND rows."""
    extra_name = f"{broken_lab.prefix}_extra_{secrets.token_hex(3)}"
    extra = engine.containers.run(
        "revivadiag/lab-backend:latest", entrypoint=["sleep", "120"], name=extra_name,
        labels={PROJECT_LABEL: broken_lab.prefix, SERVICE_LABEL: "extra"},
        network=broken_lab.networks[0], detach=True)
    try:
        project, summaries, _ = list_project(engine, broken_lab.prefix)
        assert extra_name in {s["Names"][0].lstrip("/") for s in summaries}
        extra.remove(force=True)
        inv = RawInventory(project=project)
        inspect_containers(engine, summaries, inv)
        assert [s["Names"][0].lstrip("/") for s in inv.vanished] == [extra_name]
        frame = parse_containers(inv.containers, inv.vanished, project)
        assert frame.set_index("name").loc[extra_name, "state"] == "removed"
        health = collect_health(inv, ProbeEngine(engine))
        gone = health[health["container"] == extra_name]
        assert gone[["status", "error_type"]].values.tolist() == [["unhealthy", NOT_FOUND]]
        results = ProbeEngine(engine).run({summaries[0]["Id"]: [], extra.id: [
            {"kind": "dns", "name": "database"}]})
        assert results[extra.id][0]["error_type"] == NOT_FOUND
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            extra.remove(force=True)
