"""`revivadiag snapshot` as a subprocess: one JSON object on stdout, files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from revivadiag.collect.snapshot import FRAME_NAMES
from revivadiag.lab import LabInstance

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "revivadiag", "snapshot", *args],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, **(env or {})})


def test_json_to_stdout_is_one_object_with_every_frame(lab_current: LabInstance) -> None:
    """stdout is exactly one JSON object: frame name -> list of records; nothing else."""
    proc = _cli("--project", lab_current.prefix, "--samples", "3", "--json", "-")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)  # fails on anything but one JSON document
    assert list(data) == list(FRAME_NAMES)
    assert all(isinstance(v, list) for v in data.values())
    assert {r["name"] for r in data["containers"]} == set(lab_current.containers.values())
    for name in ("dns", "reachability", "latency", "health"):
        assert data[name], f"{name} empty; stderr: {proc.stderr[-1000:]}"
    assert "\r" not in proc.stderr  # no progress bar when stderr is not a terminal


def test_out_dir_csv_with_progress(lab_current: LabInstance, tmp_path: Path) -> None:
    """--out writes every frame plus snapshot.json and meta.json; --progress draws on stderr."""
    out = tmp_path / "snap"
    proc = _cli("--project", lab_current.prefix, "--samples", "3", "--out", str(out),
                "--format", "csv", "--progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""
    names = {p.name for p in out.iterdir()}
    assert {f"{n}.csv" for n in FRAME_NAMES} | {"snapshot.json", "meta.json"} <= names
    assert json.loads((out / "meta.json").read_text())["project"] == lab_current.prefix
    assert "step/s" in proc.stderr  # tqdm drew its bar


def test_unknown_project_exits_2(lab_current: LabInstance) -> None:
    """An unknown project is a typed error naming the projects seen, exit code 2."""
    proc = _cli("--project", "no-such-project-x1", "--json", "-")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "no compose project named 'no-such-project-x1'" in proc.stderr
    assert lab_current.prefix in proc.stderr


def test_unreachable_engine_exits_2() -> None:
    """DOCKER_HOST pointing at no engine: EngineUnreachable, exit code 2, nothing on stdout."""
    proc = _cli("--json", "-", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "no Docker Engine answers at unix:///nonexistent.sock" in proc.stderr


def test_docker_host_option_overrides_environment(lab_current: LabInstance) -> None:
    """--docker-host wins over a broken DOCKER_HOST."""
    proc = _cli("--project", lab_current.prefix, "--samples", "2",
                "--docker-host", "unix:///var/run/docker.sock", "--json", "-",
                env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["containers"]
