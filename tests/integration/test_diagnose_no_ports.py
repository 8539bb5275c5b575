"""`revivadiag diagnose` on a Compose project that is not the lab and publishes no host port.

The test writes the project itself (three services from the lab's base image on two
networks, no `ports:`, a secret in one service's environment), starts it with the machine's
Compose CLI under a unique project name, runs the real command, and removes the project.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from revivadiag.collect.compose_cli import find_compose_cli
from revivadiag.lab import BuildReport
from revivadiag.lab.images import base_tag

pytestmark = pytest.mark.integration

COMPOSE = """\
x-app: &app
  image: {image}
  init: true
  labels:
    io.example.team: shop
services:
  web:
    <<: *app
    command: ["python3", "-m", "http.server", "8080"]
    networks: [front]
    x-revivadiag:
      role: proxy
  api:
    <<: *app
    command: ["python3", "-m", "http.server", "8000"]
    expose: ["8000"]
    environment:
      API_PASSWORD: ${{NOPORT_API_PASSWORD:?}}
    networks: [front, back]
  worker:
    <<: *app
    command: ["sleep", "900"]
    networks: [back]
networks:
  front: {{}}
  back: {{}}
"""


@dataclass
class Project:
    """The running project: its name, compose file and the secret it was given."""

    name: str
    file: Path
    secret: str


@pytest.fixture(scope="module")
def no_ports_project(engine: docker.DockerClient, lab_images: BuildReport,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The project, up; removed with its networks afterwards."""
    cli = find_compose_cli()
    if cli is None:
        pytest.fail("no Compose CLI installed (the lab needs one too)")
    folder = tmp_path_factory.mktemp("noports")
    file = folder / "compose.yml"
    file.write_text(COMPOSE.format(image=base_tag()))
    project = Project(f"rdt{secrets.token_hex(4)}", file, secrets.token_hex(16))
    env = {**os.environ, "NOPORT_API_PASSWORD": project.secret}
    base = [*cli.argv, "-p", project.name, "-f", str(file)]
    try:
        up = subprocess.run([*base, "up", "-d"], env=env, check=False, capture_output=True,
                            text=True, timeout=180)
        if up.returncode != 0:
            pytest.fail(f"compose up failed: {up.stderr[-2000:]}")
        yield project
    finally:
        subprocess.run([*base, "down", "-t", "1"], env=env, check=False, capture_output=True,
                       timeout=180)


@pytest.fixture(scope="module")
def run(no_ports_project: Project, tmp_path_factory: pytest.TempPathFactory
        ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The real `revivadiag diagnose` on it (the compose file given, so the declared topology
    is read by the Compose CLI)."""
    out = tmp_path_factory.mktemp("diag-noports") / "report"
    env = {k: v for k, v in os.environ.items() if k != "REVIVADIAG_PROJECT"}
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "diagnose", "--out", str(out),
         "-p", "project", no_ports_project.name, "-p", "samples", "3",
         "-p", "compose_file", str(no_ports_project.file)],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    return proc, out


def test_diagnose_runs_to_the_end(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Exit 0 or 1 (findings, not a tool failure), and the report and findings written."""
    proc, out = run
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "ArrowInvalid" not in proc.stderr
    for name in ("diagnose.ipynb", "report.html", "findings.json"):
        assert (out / name).stat().st_size > 0, name
    findings = json.loads((out / "findings.json").read_text())
    assert findings["passed"] is (proc.returncode == 0)


def test_overview_and_declared_topology(run: tuple[subprocess.CompletedProcess[str], Path],
                                        no_ports_project: Project) -> None:
    """Every container is in the overview with an empty `published` cell, and the declared
    topology was read from the compose file (not 'declared unavailable')."""
    _, out = run
    notebook = (out / "diagnose.ipynb").read_text()
    for service in ("web", "api", "worker"):
        assert f"{no_ports_project.name}_{service}_1" in notebook or \
            f"{no_ports_project.name}-{service}-1" in notebook
    assert "declared unavailable" not in notebook
    assert "io.example.team=shop" in notebook


def test_no_secret_in_any_output(run: tuple[subprocess.CompletedProcess[str], Path],
                                 no_ports_project: Project) -> None:
    """The secret in the api's environment is in no file written and not on the terminal."""
    proc, out = run
    assert no_ports_project.secret not in proc.stdout + proc.stderr
    leaks = [p.name for p in out.iterdir()
             if p.is_file() and no_ports_project.secret in p.read_text(errors="replace")]
    assert leaks == []
