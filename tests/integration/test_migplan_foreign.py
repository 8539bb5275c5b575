"""make_plan on a stack that is not the lab's: services ``web``, ``api`` and ``db`` on
Compose's default names, listening on 4000 and 8000, publishing nothing, no proxy, no role
label. The plan must come from this stack alone (nothing in the planner knows the lab)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from revivadiag.lab.lifecycle import unique_prefix
from revivadiag.migrate.plan import check_fresh, dump_plan, validate_plan
from revivadiag.migrate.planner import make_plan
from revivadiag.migrate.state import capture_state

pytestmark = pytest.mark.integration

CURRENT = """
services:
  db:
    image: revivadiag/lab-shop-postgres:latest
    entrypoint: ["sleep", "infinity"]
    volumes: [pgdata:/var/lib/postgresql/data]
  api:
    image: revivadiag/lab-shop-api:latest
    entrypoint: ["sleep", "infinity"]
    expose: ["8000"]
    environment: {DB_HOST: db, LOG_LEVEL: info}
    depends_on: [db]
  web:
    image: revivadiag/lab-shop-web:latest
    entrypoint: ["sleep", "infinity"]
    expose: ["4000"]
    environment: {API_URL: "http://api:8000"}
    depends_on: [api]
volumes:
  pgdata: {}
"""



def target_of(current: str) -> str:
    """The target: networks front (web, api) and back (api, db), the database reached by its
    new alias ``database``."""
    data = yaml.safe_load(current)
    services = data["services"]
    services["db"]["networks"] = {"back": {"aliases": ["database"]}}
    services["api"]["networks"] = ["front", "back"]
    services["api"]["environment"]["DB_HOST"] = "database"
    services["web"]["networks"] = ["front"]
    data["networks"] = {"front": {}, "back": {}}
    return str(yaml.safe_dump(data, sort_keys=False))


def compose(directory: Path, project: str, *args: str) -> None:
    subprocess.run(["docker-compose", "-p", project, "-f", str(directory / "current.yml"),
                    *args], cwd=directory, check=True, capture_output=True, timeout=120)


@pytest.fixture
def foreign(engine: docker.DockerClient, lab_images: object,
            tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stack running as project ``rdt<hex>`` from tmp_path (removed afterwards)."""
    (tmp_path / "current.yml").write_text(CURRENT)
    (tmp_path / "target.yml").write_text(target_of(CURRENT))
    project = unique_prefix()
    compose(tmp_path, project, "up", "-d")
    try:
        yield project, tmp_path
    finally:
        compose(tmp_path, project, "down", "-v")


def test_plan_for_a_stack_shaped_otherwise(engine: docker.DockerClient,
                                           foreign: tuple[str, Path]) -> None:
    """Networks front/back created and default removed; db (a store, by its image) first and
    stateful, then api, then web, each keeping Compose's default name; no proxy reload."""
    project, directory = foreign
    plan = make_plan(engine, project, [directory / "target.yml"], compose_env={},
                     plan_dir=directory)
    steps = [(s.kind, dict(s.params)) for s in plan.steps]
    assert steps == [
        ("readiness", {}),
        ("network.create", {"network": f"{project}_back", "compose_key": "back"}),
        ("network.create", {"network": f"{project}_front", "compose_key": "front"}),
        ("service.replace", {"service": "db", "from": f"{project}_db_1",
                             "to": f"{project}_db_1", "stateful": True,
                             "volumes": [f"{project}_pgdata"]}),
        ("service.replace", {"service": "api", "from": f"{project}_api_1",
                             "to": f"{project}_api_1"}),
        ("service.replace", {"service": "web", "from": f"{project}_web_1",
                             "to": f"{project}_web_1"}),
        ("network.remove", {"network": f"{project}_default"}),
        ("verify", {}),
        ("cleanup", {}),
    ]
    why = plan.comments["replace-api"][0]
    assert "environment: changes DB_HOST" in why and f"{project}_back" in why
    assert "aliases" not in why  # the alias is new with the network, not on an old one
    assert plan.target.compose_files == ["target.yml"]
    before = capture_state(engine, project)
    validate_plan(plan, engine)
    check_fresh(plan, engine)
    assert capture_state(engine, project) == before
    assert "lab" not in dump_plan(plan).replace("revivadiag/lab-shop", "")
