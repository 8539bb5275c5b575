"""The journal's PostgreSQL mirror against a real lab database: the seed's table and indexes,
one row per step, and a database that goes away mid-run (as when it is being renamed): the
journal goes on, the table is reconciled once the database answers again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from revivadiag.lab import LabInstance, read_secrets
from revivadiag.migrate import journal as jr

pytestmark = [pytest.mark.integration, pytest.mark.destructive, pytest.mark.slow]


def psql(engine: docker.DockerClient, container: str, sql: str) -> list[str]:
    """Rows (``|``-separated) of a query run as the local superuser (peer auth)."""
    code, out = engine.containers.get(container).exec_run(
        ["psql", "-X", "-At", "-d", "revivatech", "-c", sql], user="postgres")
    assert code == 0, out
    return [line for line in out.decode().splitlines() if line]


def wait_healthy(engine: docker.DockerClient, name: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = engine.api.inspect_container(name)["State"]
        if (state.get("Health") or {}).get("Status") == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} not healthy in {timeout_s} s")


def test_mirror_follows_the_journal_through_a_database_outage(
        engine: docker.DockerClient, lab_factory: Callable[..., LabInstance],
        tmp_path: Path) -> None:
    """Rows mirror the journal; with the database stopped appends stay fast and the mirror
    says why it lags; once the database is back, flush reconciles every row."""
    lab: Any = lab_factory("target")
    db = lab.containers["database"]
    journal = jr.Journal.create(lab.prefix, "m-mirror", tmp_path)
    mirror = jr.PgMirror(engine, lab.prefix)
    journal.listeners.append(mirror)
    journal.append("started", plan="mirror-test", plan_sha256="sha256:x", fingerprint="f",
                   mode="blue-green", who="tester@host", project=lab.prefix,
                   steps=[{"id": "a", "kind": "network.create"}, {"id": "b", "kind": "sql"}])
    journal.append("approved", who="reviewer", how="cli")
    journal.append("intent", step="a", kind="network.create", migration_type="network_change",
                   before={"networks": {}}, undo={"remove": ["n"]})
    journal.append("result", step="a", result={"id": "n1"})
    assert mirror.flush(journal)
    rows = psql(engine, db, "SELECT id, migration_name, migration_type, status, created_by, "
                "rollback_data->'undo'->>'remove' FROM configuration_migrations "
                "WHERE migration_name = 'mirror-test' ORDER BY migration_type")
    assert rows == [
        f"{jr.row_id('m-mirror', 'approval')}|mirror-test|approval|completed|reviewer|",
        f"{jr.row_id('m-mirror', 'a')}|mirror-test|network_change|completed|tester@host|"
        '["n"]']
    indexes = psql(engine, db, "SELECT indexname FROM pg_indexes "
                   "WHERE tablename = 'configuration_migrations' ORDER BY indexname")
    assert indexes == ["configuration_migrations_pkey", "idx_config_migrations_status",
                       "idx_config_migrations_type"]

    engine.containers.get(db).stop(timeout=10)
    t0 = time.monotonic()
    journal.append("intent", step="b", kind="sql", migration_type="database_migration",
                   before={}, undo={})
    journal.append("failed", step="b", error="boom")
    assert time.monotonic() - t0 < 1.0  # appends never wait for the database
    assert not mirror.flush(journal)
    assert mirror.status.last_error
    for secret in read_secrets(lab.prefix).values():
        assert secret not in mirror.status.last_error
        assert secret not in journal.path.read_text()

    engine.containers.get(db).start()
    wait_healthy(engine, db)
    assert mirror.flush(journal, tries=(0.0, 2.0, 5.0))
    assert psql(engine, db, "SELECT id, status, error_message FROM configuration_migrations "
                "WHERE migration_type = 'database_migration'") == [
        f"{jr.row_id('m-mirror', 'b')}|failed|boom"]
    mirror.close()
