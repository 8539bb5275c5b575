"""`revivadiag migrate` / `migrations` as a user types them: typed errors (exit 2, one line,
no traceback, nothing written) and the journal listing. No engine is needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from revivadiag.migrate import journal as jr
from revivadiag.runbook.migrate import expand_steps


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{cwd}/no-engine.sock",
           "REVIVADIAG_MIGRATIONS_DIR": str(cwd / "journals")}
    return subprocess.run([sys.executable, "-m", "revivadiag", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize(("args", "needle"), [
    (["migrate", "run", "missing.yml"], "plan missing.yml: no such file"),
    (["migrate", "approve", "20260101T000000Z-x-0000"], "no migration '20260101T000000Z-x-0000'"),
    (["migrate", "rollback", "nope", "--direct"], "no migration 'nope'"),
    (["migrate", "approve", "../etc"], "bad migration id"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    """Exit 2, one `revivadiag: error:` line naming the problem, no traceback, no journal."""
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("revivadiag: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "journals").exists() or not any((tmp_path / "journals").rglob("*.jsonl"))


def test_migrations_lists_the_journal_and_approve_records_who(tmp_path: Path) -> None:
    """`migrations` shows a run awaiting approval; `migrate approve` records it (who, when)."""
    j = jr.Journal.create("proj", "m1", tmp_path / "journals")
    j.append("started", plan="demo", plan_path="plan.yml", mode="blue-green", who="ops@h",
             project="proj", steps=[{"id": "a", "kind": "sql"}])
    listing = run("migrations", cwd=tmp_path)
    assert listing.returncode == 0
    assert "awaiting approval" in listing.stdout and "0/1" in listing.stdout
    approved = run("migrate", "approve", "m1", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert "--resume m1" in approved.stderr
    st = jr.Journal.open("proj", "m1", tmp_path / "journals").state()
    assert st.approved and st.approved_by
    listing = run("migrations", "--json", cwd=tmp_path)
    assert '"status": "pending"' in listing.stdout


def test_runbook_step_cell_expands_to_one_cell_per_step() -> None:
    """The template cell becomes a heading and a call per step, other cells untouched."""
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": []},
                    {"cell_type": "code", "metadata": {"tags": ["migrate-step"]},
                     "source": "rm.step_cell(session, None)", "outputs": [],
                     "execution_count": 3}]}
    out = expand_steps(nb, [("a", "sql"), ("b", "verify")])
    assert [c["source"] for c in out["cells"]] == [
        "x = 1", "### Step `a` (sql)", 'rm.step_cell(session, "a")', "### Step `b` (verify)",
        'rm.step_cell(session, "b")']
    assert len({c.get("id") for c in out["cells"][1:]}) == 4
