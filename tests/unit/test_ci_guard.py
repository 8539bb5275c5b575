"""Under CI=true a skip is a failure (the root conftest's hook); locally it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPING = '''
import pytest

def test_needs_a_tool():
    pytest.skip("no such tool")

@pytest.mark.skipif(True, reason="needs root")
def test_needs_root():
    pass

def test_runs():
    pass
'''


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
         "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_skips_fail_under_ci(tmp_path: Path, ci: str) -> None:
    """Both a skip() call and a skipif marker fail, naming the reason."""
    proc = _run(tmp_path, ci)
    assert proc.returncode == 1, proc.stdout
    assert "CI=true: a test may not skip in CI (Skipped: no such tool)" in proc.stdout
    assert "CI=true: a test may not skip in CI (Skipped: needs root)" in proc.stdout
    assert "1 failed, 1 passed, 1 error" in proc.stdout


def test_skips_stay_skips_locally(tmp_path: Path) -> None:
    """Without CI=true the same file passes with two skips."""
    proc = _run(tmp_path, "")
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 2 skipped" in proc.stdout
