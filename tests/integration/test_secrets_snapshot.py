"""The lab's planted secrets appear nowhere in a snapshot: not in its files, not in its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import revivadiag as rd
from revivadiag.lab import LabInstance, read_secrets

pytestmark = pytest.mark.integration


def _secret_values(lab: LabInstance) -> dict[str, str]:
    values = read_secrets(lab.prefix)
    assert values.get("DATABASE_PASSWORD") and values.get("REDIS_PASSWORD")
    return {k: v for k, v in values.items() if v}


def _leaks(blob: bytes, secrets: dict[str, str]) -> list[str]:
    return [key for key, value in secrets.items() if value.encode() in blob]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("variant", ["current", "target"])
def test_no_secret_in_written_files(
    request: pytest.FixtureRequest, tmp_path: Path, fmt: str, variant: str
) -> None:
    """Grep the bytes of every file written: no secret value of the lab is there."""
    lab: LabInstance = request.getfixturevalue(f"lab_{variant}")
    secrets = _secret_values(lab)
    snap = rd.snapshot(project=lab.prefix, samples=3)
    written = snap.write(tmp_path, format=fmt)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) >= len(written) >= 11
    for path in files:
        assert _leaks(path.read_bytes(), secrets) == [], path.name
    # the secrets were really there to leak: the env frame masked them
    env = snap.env.set_index(["service", "key"])
    assert env.loc[("backend", "DATABASE_PASSWORD"), "value"] == "***"


def test_no_secret_in_cli_json(lab_current: LabInstance) -> None:
    """`revivadiag snapshot --json -` output (and its stderr) holds no secret value."""
    secrets = _secret_values(lab_current)
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "snapshot", "--project", lab_current.prefix,
         "--samples", "3", "--json", "-"],
        capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert _leaks(proc.stdout, secrets) == []
    assert _leaks(proc.stderr, secrets) == []
    assert json.loads(proc.stdout)["env"]


def test_repr_and_meta_hold_no_secret(lab_current: LabInstance) -> None:
    """Printing the snapshot, its metadata and every frame shows no secret value."""
    secrets = _secret_values(lab_current)
    snap = rd.snapshot(project=lab_current.prefix, samples=3)
    text = repr(snap) + repr(snap.meta) + "".join(f.to_string() for f in snap.frames().values())
    assert _leaks(text.encode(), secrets) == []
