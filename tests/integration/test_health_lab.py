"""The health collector against the real lab: every path healthy, bad credentials named."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pandas as pd
import pytest

from revivadiag.collect.credentials import Credentials
from revivadiag.collect.health import collect_health, credentials_of, members
from revivadiag.collect.inventory import RawInventory, gather
from revivadiag.engine.probe import ProbeEngine
from revivadiag.lab import LabInstance, read_secrets
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration

CHECKS = ["http", "postgres_internal", "redis_internal", "postgres_external", "redis_external"]


@pytest.fixture(scope="module")
def prober(engine: docker.DockerClient) -> Iterator[ProbeEngine]:
    """A real probe engine (setns here: local engine, root)."""
    yield ProbeEngine(engine)


def _by_check(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    rows = frame[frame["check"] != "docker"]
    return {str(r["check"]): r for r in rows.to_dict(orient="records")}


@pytest.mark.parametrize("variant", ["current", "target"])
def test_every_path_is_healthy(request: pytest.FixtureRequest, engine: docker.DockerClient,
                               prober: ProbeEngine, variant: str) -> None:
    """Backend HTTP, PostgreSQL and Redis inside and outside the network, and Docker: healthy."""
    lab: LabInstance = request.getfixturevalue(f"lab_{variant}")
    frame = collect_health(gather(engine, lab.prefix), prober)
    validate("health", frame)
    rows = _by_check(frame)
    assert sorted(rows) == sorted(CHECKS)
    for check, row in rows.items():
        assert (row["status"], row["error_type"]) == ("healthy", ""), (check, row["detail"])
        assert float(str(row["response_ms"])) > 0
    assert rows["http"]["method"] == rows["postgres_internal"]["method"] == "setns"
    assert rows["postgres_external"]["method"] == "host"
    assert rows["postgres_external"]["target"] == f"127.0.0.1:{lab.ports['database']}"
    assert rows["postgres_internal"]["target"] == "database:5432"
    docker_rows = frame[frame["check"] == "docker"]
    assert sorted(docker_rows["container"]) == sorted(lab.containers.values())
    assert set(docker_rows["status"]) == {"healthy"}


def test_credentials_come_from_the_containers(engine: docker.DockerClient,
                                              lab_current: LabInstance) -> None:
    """The passwords read from the containers' env are the lab's planted ones."""
    secrets = read_secrets(lab_current.prefix)
    creds = credentials_of(members(gather(engine, lab_current.prefix)))
    assert creds.db_password == secrets["DATABASE_PASSWORD"]
    assert creds.redis_password == secrets["REDIS_PASSWORD"]
    assert secrets["DATABASE_PASSWORD"] not in repr(creds)


def test_wrong_credentials_are_unhealthy_with_a_clear_detail(
    engine: docker.DockerClient, prober: ProbeEngine, lab_current: LabInstance
) -> None:
    """Wrong passwords: each PostgreSQL and Redis path is unhealthy, the detail names why."""
    inv: RawInventory = gather(engine, lab_current.prefix)
    good = credentials_of(members(inv))
    wrong = Credentials(good.db_user, "wrong-db-password-1", good.db_name, "wrong-redis-pass-1")
    rows = _by_check(collect_health(inv, prober, credentials=wrong))
    for check in ("postgres_internal", "postgres_external", "redis_internal", "redis_external"):
        row = rows[check]
        detail = str(row["detail"])
        assert (row["status"], row["error_type"]) == ("unhealthy", ""), (check, detail)
        assert detail.startswith("CredentialsError: "), detail
        assert "rejected the credentials" in detail
        assert "wrong-db-password-1" not in detail and "wrong-redis-pass-1" not in detail
        assert good.db_password not in detail and good.redis_password not in detail
    assert "password authentication failed" in str(rows["postgres_external"]["detail"])
    assert rows["http"]["status"] == "healthy"  # the backend itself is fine


def test_unpublished_ports_are_unknown(engine: docker.DockerClient, prober: ProbeEngine,
                                       lab_target_production: LabInstance) -> None:
    """Target + production publishes only the frontend: the host paths cannot run."""
    rows = _by_check(collect_health(gather(engine, lab_target_production.prefix), prober))
    for check in ("postgres_external", "redis_external"):
        assert rows[check]["status"] == "unknown"
        assert "not published" in str(rows[check]["detail"])
    assert rows["postgres_internal"]["status"] == "healthy"


def test_remote_engine_skips_host_checks(engine: docker.DockerClient, prober: ProbeEngine,
                                         lab_current: LabInstance) -> None:
    """With a remote engine the published ports are not ours to probe: unknown, said why."""
    rows = _by_check(collect_health(gather(engine, lab_current.prefix), prober,
                                    local_engine=False))
    assert rows["redis_external"]["status"] == "unknown"
    assert "remote" in str(rows["redis_external"]["detail"])


def test_without_probe_engine_internal_checks_are_unknown(
    engine: docker.DockerClient, lab_current: LabInstance
) -> None:
    """No probe engine: internal paths unknown (with the reason), host paths still run."""
    rows = _by_check(collect_health(gather(engine, lab_current.prefix), None,
                                    why_no_prober="no probe engine in this test"))
    assert rows["postgres_internal"]["status"] == "unknown"
    assert rows["postgres_internal"]["detail"] == "no probe engine in this test"
    assert rows["postgres_external"]["status"] == "healthy"
