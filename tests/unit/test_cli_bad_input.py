"""Bad input to `revivadiag snapshot` and `revivadiag diagnose`, as a user types it: exit 2,
one line naming the problem, no traceback, nothing written. Every case fails before the engine
is asked anything, so no engine is needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: a place no one (root included) can create files in
UNWRITABLE = Path("/proc/revivadiag-test-out")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, from ``cwd``; DOCKER_HOST points nowhere so that a
    run that got past its input checks could not reach an engine by accident."""
    env = {k: v for k, v in os.environ.items() if k != "REVIVADIAG_PROJECT"}
    env["DOCKER_HOST"] = f"unix://{cwd}/no-engine.sock"
    return subprocess.run([sys.executable, "-m", "revivadiag", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, env=env)


def assert_input_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("revivadiag: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("command", ["snapshot", "diagnose"])
@pytest.mark.parametrize(
    ("out", "needle"),
    [("a-file", "a-file: it is a file, not a directory"),
     ("a-file/sub", "a-file is a file, not a directory"),
     (str(UNWRITABLE), "cannot create files in /proc")],
)
def test_out_that_cannot_be_a_directory(tmp_path: Path, command: str, out: str,
                                        needle: str) -> None:
    """--out naming an existing file, a path under a file, or an unwritable place."""
    (tmp_path / "a-file").write_text("keep me\n")
    before = listing(tmp_path)
    proc = run(command, "--out", out, cwd=tmp_path)
    assert_input_error(proc, needle)
    assert listing(tmp_path) == before
    assert (tmp_path / "a-file").read_text() == "keep me\n"


@pytest.mark.parametrize(("command", "option"), [("snapshot", "--json"),
                                                  ("diagnose", "--junit")])
def test_output_file_that_is_a_directory(tmp_path: Path, command: str, option: str) -> None:
    """--json FILE / --junit FILE naming a directory."""
    (tmp_path / "adir").mkdir()
    proc = run(command, option, "adir", cwd=tmp_path)
    assert_input_error(proc, "adir: it is a directory, not a file")


COMPOSE = {
    "missing.yml": (None, "missing.yml: no such file"),
    "malformed.yml": ("services:\n  a: [\n", "malformed.yml: line 3, column 1: not valid YAML"),
    "bad-port.yml": ("services: {a: {image: x, ports: ['x:y:z:w']}}\n", "ports"),
    "unknown-key.yml": ("services: {a: {image: x}}\nfoo: 1\n", "foo"),
    "empty.yml": ("", "empty.yml: the file is empty"),
}


@pytest.mark.parametrize("name", sorted(COMPOSE))
def test_compose_file_parameter_is_checked_first(tmp_path: Path, name: str) -> None:
    """-p compose_file with a missing, malformed or invalid file (relative to the current
    directory): an error naming the file, before the runbook or the engine is touched."""
    text, needle = COMPOSE[name]
    if text is not None:
        (tmp_path / name).write_text(text)
    proc = run("diagnose", "--out", "report", "-p", "compose_file", name, cwd=tmp_path)
    assert_input_error(proc, needle)
    assert f"compose file {tmp_path / name}" in proc.stderr
    assert not (tmp_path / "report").exists()


def test_valid_compose_file_passes_the_check(tmp_path: Path) -> None:
    """A good file gets past the compose check: the run then fails on the missing engine
    (exit 2 naming the engine), still before writing anything."""
    (tmp_path / "ok.yml").write_text("services: {a: {image: x}}\n")
    proc = run("diagnose", "--out", "report", "-p", "compose_file", "ok.yml", cwd=tmp_path)
    assert_input_error(proc, "no Docker Engine answers")
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--docker-host", "ftp://x"], "bad docker host 'ftp://x'"),
    (["--context", "rdt-no-such-context"], "no such Docker context"),
    (["--docker-host", "ssh://h", "--ssh-config", "no-such-file"], "no such file"),
])
def test_monitor_bad_engine_options(tmp_path: Path, args: list[str], needle: str) -> None:
    """`monitor` takes the engine options of `snapshot`: a bad one is exit 2, one line."""
    proc = run("monitor", "--duration", "1", *args, cwd=tmp_path)
    assert_input_error(proc, needle)
