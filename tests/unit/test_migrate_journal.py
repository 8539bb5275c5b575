"""The migration journal file (append, replay, torn-line repair) and the project lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revivadiag.errors import JournalError, MigrationLocked, MigrationNotFound
from revivadiag.migrate import journal as jr
from revivadiag.migrate.lock import ProjectLock, holder, lock_path
from revivadiag.migrate.model import StepStatus


def _started(j: jr.Journal) -> None:
    j.append("started", plan="p", plan_sha256="sha256:x", fingerprint="sha256:f",
             mode="blue-green", who="ops@h", project="proj",
             steps=[{"id": "a", "kind": "network.create"}, {"id": "b", "kind": "sql"}])


def test_append_is_one_line_each_and_replays(tmp_path: Path) -> None:
    """Each append is one JSON line with a growing seq; replay gives the step statuses."""
    j = jr.Journal.create("proj", "m1", tmp_path)
    _started(j)
    j.append("approved", who="rev", how="cli")
    j.append("intent", step="a", kind="network.create", migration_type="network_change",
             before={"x": None}, undo={"remove": ["x"]})
    j.append("result", step="a", result={"x": "id1"})
    j.append("intent", step="b", kind="sql", migration_type="database_migration",
             before={}, undo={})
    lines = (tmp_path / "proj" / "m1.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    st = jr.Journal.open("proj", "m1", tmp_path).state()
    assert (st.approved_by, st.status) == ("rev", StepStatus.IN_PROGRESS)
    assert {k: str(v.status) for k, v in st.steps.items()} == {"a": "completed",
                                                              "b": "in_progress"}
    assert st.interrupted() is not None and st.interrupted().id == "b"  # type: ignore[union-attr]


@pytest.mark.parametrize("tail", [b'{"seq": 4, "ev', b'{"seq": 4, "ev\n'])
def test_torn_last_line_is_cut_and_noted(tmp_path: Path, tail: bytes) -> None:
    """A crash mid-write leaves a torn last line: open() cuts it and appends a note."""
    j = jr.Journal.create("proj", "m1", tmp_path)
    _started(j)
    j.append("approved", who="rev", how="cli")
    with open(j.path, "ab") as fh:
        fh.write(tail)
    again = jr.Journal.open("proj", "m1", tmp_path)
    assert [r["event"] for r in again.records] == ["started", "approved", "note"]
    assert again.records[-1]["text"] == f"repaired: torn last line ({len(tail)} bytes) dropped"
    assert all(json.loads(line) for line in j.path.read_text().splitlines())


def test_a_bad_line_before_the_last_is_corruption(tmp_path: Path) -> None:
    """Only the last line can be torn by a crash; anything else is a JournalError."""
    j = jr.Journal.create("proj", "m1", tmp_path)
    _started(j)
    with open(j.path, "ab") as fh:
        fh.write(b"garbage\n")
    j.append("note", text="later")
    with pytest.raises(JournalError, match="line 2 is not a JSON object"):
        jr.Journal.open("proj", "m1", tmp_path)


def test_unknown_id_and_bad_names(tmp_path: Path) -> None:
    """Typed errors for an unknown id (known ones listed), a path-like id, an existing id."""
    jr.Journal.create("proj", "m1", tmp_path)
    with pytest.raises(MigrationNotFound, match="known: m1"):
        jr.Journal.open("proj", "m2", tmp_path)
    with pytest.raises(JournalError, match="bad migration id"):
        jr.Journal.create("proj", "../../etc", tmp_path)
    with pytest.raises(JournalError, match="exists"):
        jr.Journal.create("proj", "m1", tmp_path)


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$REVIVADIAG_MIGRATIONS_DIR wins, then $XDG_STATE_HOME."""
    monkeypatch.delenv(jr.ROOT_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert jr.journal_root() == tmp_path / "state" / "revivadiag" / "migrations"
    monkeypatch.setenv(jr.ROOT_ENV, str(tmp_path / "j"))
    assert jr.project_dir("p") == tmp_path / "j" / "p"


def test_mirror_rows_and_sql(tmp_path: Path) -> None:
    """One row per started step plus the approval, stable UUIDs, every quote doubled."""
    j = jr.Journal.create("proj", "m1", tmp_path)
    _started(j)
    j.append("approved", who="rev", how="cli")
    j.append("intent", step="a", kind="network.create", migration_type="network_change",
             before={"name": "it's"}, undo={"remove": ["x"]})
    j.append("failed", step="a", error="boom 'quoted'")
    rows = jr.step_rows(j.state())
    assert [(r["migration_type"], r["status"]) for r in rows] == [
        ("approval", "completed"), ("network_change", "failed")]
    assert rows[1]["id"] == jr.row_id("m1", "a")
    assert rows[1]["rollback_data"]["before"] == {"name": "it's"}
    sql = jr.upsert_sql(rows)
    assert "boom ''quoted''" in sql and "it''s" in sql
    assert sql.count("ON CONFLICT (id) DO UPDATE") == 2
    assert "CREATE INDEX IF NOT EXISTS idx_config_migrations_type" in sql


HOLD = """
import sys, time
from revivadiag.migrate.lock import ProjectLock
ProjectLock("proj", "m-held", sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_lock_refuses_a_second_run_and_dies_with_its_holder(tmp_path: Path) -> None:
    """A held lock refuses with pid and migration id; SIGKILL of the holder frees it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(MigrationLocked, match=f"migration m-held, pid {proc.pid} on "):
            ProjectLock("proj", "m2", tmp_path).acquire()
        assert (holder(lock_path("proj", tmp_path)) or {}).get("pid") == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 5
    while holder(lock_path("proj", tmp_path)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with ProjectLock("proj", "m2", tmp_path) as lock:
        assert (holder(lock.path) or {}).get("migration_id") == "m2"
    assert holder(lock_path("proj", tmp_path)) is None
