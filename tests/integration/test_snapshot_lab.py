"""revivadiag.snapshot() against the real lab, in both variants: frames, schemas, files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import revivadiag as rd
from revivadiag.collect.snapshot import FRAME_NAMES, SWARM_FRAMES
from revivadiag.lab import LabInstance
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def snap_current(lab_current: LabInstance) -> rd.Snapshot:
    """One snapshot of the shared `current` lab for this module."""
    return rd.snapshot(project=lab_current.prefix, samples=5)


@pytest.fixture(scope="module")
def snap_target(lab_target: LabInstance) -> rd.Snapshot:
    """One snapshot of the shared `target` lab for this module."""
    return rd.snapshot(project=lab_target.prefix, samples=5)


@pytest.fixture(params=["current", "target"])
def case(request: pytest.FixtureRequest) -> tuple[LabInstance, rd.Snapshot]:
    """(lab, its snapshot) for each variant."""
    lab: LabInstance = request.getfixturevalue(f"lab_{request.param}")
    snap: rd.Snapshot = request.getfixturevalue(f"snap_{request.param}")
    return lab, snap


def test_every_frame_matches_its_schema(case: tuple[LabInstance, rd.Snapshot]) -> None:
    """All nine frames validate against schemas.py, and the probe frames are not empty."""
    _, snap = case
    for name, frame in snap.frames().items():
        validate(name, frame)
    for name in ("containers", "networks", "endpoints", "env", "dns", "reachability",
                 "latency", "health"):
        assert not snap[name].empty, f"{name} is empty; notes: {snap.meta.notes}"


def test_containers_frame(case: tuple[LabInstance, rd.Snapshot]) -> None:
    """The four lab containers with compose identity, state, health and start time."""
    lab, snap = case
    frame = snap.containers.set_index("service")
    assert sorted(frame.index) == ["backend", "database", "frontend", "redis"]
    for service, name in lab.containers.items():
        row = frame.loc[service]
        assert (row["name"], row["project"], row["number"]) == (name, lab.prefix, 1)
        assert (row["state"], row["health"]) == ("running", "healthy")
        assert row["pid"] > 0 and row["started_at"].tzname() == "UTC"
    assert "5432/tcp" in frame.loc["database", "exposed_ports"]


def test_networks_and_endpoints(case: tuple[LabInstance, rd.Snapshot]) -> None:
    """The lab's networks, and each container's address and resolvable names on them."""
    lab, snap = case
    assert sorted(snap.networks["name"]) == sorted(lab.networks)
    assert (snap.networks["project"] == lab.prefix).all()
    for row in snap.endpoints.itertuples():
        assert row.ipv4, row
        assert row.container in row.dns_names and row.service in row.dns_names


def test_ports_match_the_published_host_ports(case: tuple[LabInstance, rd.Snapshot]) -> None:
    """One binding per published service, on 127.0.0.1, at the lab's host port."""
    lab, snap = case
    got = {r.service: (r.host_ip, r.host_port) for r in snap.ports.itertuples()}
    assert got == {s: ("127.0.0.1", p) for s, p in lab.ports.items()}


def test_env_is_redacted(snap_current: rd.Snapshot) -> None:
    """Passwords and secrets are *** and flagged; ordinary values are kept."""
    env = snap_current.env.set_index(["service", "key"])
    for key in ("DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET"):
        assert env.loc[("backend", key), "value"] == "***"
        assert bool(env.loc[("backend", key), "is_sensitive"])
    assert env.loc[("backend", "APP_ENV"), "value"] == "development"


def test_meta(snap_current: rd.Snapshot, lab_current: LabInstance) -> None:
    """Project, engine, method and per-collector durations are recorded."""
    meta = snap_current.meta
    assert meta.project == lab_current.prefix
    assert meta.engine_version and meta.api_version
    assert meta.method == "setns"
    # the API frames share one step, the Swarm frames another; the engines frame is the
    # run's own record
    api = {"containers", "networks", "endpoints", "ports", "env"}
    assert set(FRAME_NAMES) - api - set(SWARM_FRAMES) - {"engines"} <= set(meta.duration_s)
    assert {"api_frames", "swarm"} <= set(meta.duration_s)
    assert meta.duration_s["total"] > 0
    assert meta.notes == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_and_load(snap_current: rd.Snapshot, tmp_path: Path, fmt: str) -> None:
    """A real snapshot written and loaded back gives equal frames."""
    snap_current.write(tmp_path, format=fmt)
    loaded = rd.Snapshot.load(tmp_path)
    assert loaded.meta == snap_current.meta
    for name, frame in snap_current.frames().items():
        pd.testing.assert_frame_equal(loaded[name], frame, check_exact=False)
    assert (tmp_path / f"latency.samples.{fmt}").is_file()
    assert len(loaded.latency.attrs["samples"]) == len(snap_current.latency.attrs["samples"])


def test_unknown_project_lists_the_projects_seen(lab_current: LabInstance) -> None:
    """An unknown project is ProjectNotFound listing the projects seen (the lab's among them)."""
    with pytest.raises(rd.ProjectNotFound) as info:
        rd.snapshot(project="no-such-project-x1")
    assert lab_current.prefix in info.value.known


def test_unreachable_engine_is_typed() -> None:
    """A socket where no engine answers is EngineUnreachable naming the address."""
    with pytest.raises(rd.EngineUnreachable, match=r"nonexistent\.sock"):
        rd.snapshot(docker_host="unix:///nonexistent.sock")


def test_roles_are_learned_not_guessed_from_names(case: tuple[LabInstance, rd.Snapshot]) -> None:
    """The roles come from the stack (processes, listening sockets, nginx's /api upstream),
    never from the seed's names; the learned paths answered."""
    _, snap = case
    rows = snap.roles.set_index("service")
    assert rows["role"].to_dict() == {"backend": "backend", "database": "database",
                                      "frontend": "proxy", "redis": "cache"}
    assert rows["decided_by"].to_dict() == {"backend": "proxy", "database": "software",
                                            "frontend": "software", "redis": "software"}
    assert rows["software"].to_dict() == {"backend": "", "database": "postgres",
                                          "frontend": "nginx", "redis": "redis"}
    assert rows["port"].to_dict() == {"backend": 3011, "database": 5432, "frontend": 3010,
                                      "redis": 6379}
    assert list(rows.loc["backend", "ports"]) == [3011]
    assert not rows["ambiguous"].any()
    assert (rows.loc["backend", "http_path"], rows.loc["frontend", "http_path"]) == (
        "/api/health", "/api/health")
    assert "roles" in snap.meta.duration_s
