"""``audit-source --project P``: services, ports and container names of a real compose project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from revivadiag.cli import main
from revivadiag.lab.images import BuildReport
from revivadiag.lab.lifecycle import unique_prefix

PORT = 7311  # a port no default of the audit knows: only the project can name it


@pytest.fixture
def project(engine: docker.DockerClient, lab_images: BuildReport) -> Iterator[tuple[str, str]]:
    """A compose-labelled container (created, not started) exposing PORT: (project, name)."""
    name = unique_prefix()
    image = next(i.image for i in lab_images.images if "backend" in i.image)
    container = engine.containers.create(
        image, name=f"{name}-orders-api-1", command=["true"], ports={f"{PORT}/tcp": None},
        labels={"com.docker.compose.project": name, "com.docker.compose.service": "orders-api"})
    try:
        yield name, container.name
    finally:
        container.remove(force=True)


def test_project_teaches_ports_and_names(project: tuple[str, str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Without --project the port is unknown (no finding); with it, the URL and the name are."""
    name, container = project
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ts").write_text(f"fetch('http://localhost:{PORT}/orders')\n")
    (tmp_path / "worker.py").write_text(f"API = 'http://{container}:{PORT}'\n")
    assert main(["audit-source", str(tmp_path), "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["audit-source", str(tmp_path), "--format", "json", "--project", name]) == 1
    found = {(r["file"], r["kind"]): r["fix"] for r in json.loads(capsys.readouterr().out)}
    assert set(found) == {("src/a.ts", "backend_url"), ("worker.py", "container_name")}
    assert "'orders-api'" in found[("worker.py", "container_name")]


def test_unknown_project_is_exit_2(engine: docker.DockerClient, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A project no container carries: ProjectNotFound, exit 2."""
    assert main(["audit-source", str(tmp_path), "--project", unique_prefix()]) == 2
    assert "no compose project named" in capsys.readouterr().err
