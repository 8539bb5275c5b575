"""Declared topology from compose files: variables, .env, lenient mode, inference from live
facts, and the runbook's reading of the containers' labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from topology_queries import edges_of, nodes_of

from revivadiag.collect.compose import active_profiles, files_from_labels, load_compose
from revivadiag.collect.compose_vars import (
    infer_env,
    interpolate,
    merge_files,
    read_dotenv,
    read_files,
    template_regex,
)
from revivadiag.errors import ComposeFileError
from revivadiag.lab.compose import COMPOSE_DIR
from revivadiag.render.topology import graph_from_compose
from revivadiag.runbook.diagnose import user_labels

CURRENT = [COMPOSE_DIR / "current.yml"]
TARGET_DEV = [COMPOSE_DIR / "target.yml", COMPOSE_DIR / "target.development.yml"]


@pytest.mark.parametrize(
    ("text", "env", "result"),
    [("${A}", {"A": "1"}, "1"), ("${A:-d}", {}, "d"), ("${A:-d}", {"A": ""}, "d"),
     ("${A-d}", {"A": ""}, ""), ("$A/$$B", {"A": "x"}, "x/$B"), ("${A:?}", {"A": "v"}, "v")],
)
def test_interpolate(text: str, env: dict[str, str], result: str) -> None:
    """Compose's substitution forms."""
    assert interpolate(text, env, "f") == result


def test_required_variable_missing() -> None:
    """A missing ${X:?} is an error naming the variable."""
    with pytest.raises(ComposeFileError, match="required variable P is missing: say P"):
        interpolate("${P:?say P}", {}, "f")


def test_dotenv_beside_the_file(tmp_path: Path) -> None:
    """A .env beside the compose file supplies variables; the caller's env wins."""
    (tmp_path / ".env").write_text("# c\nexport PORT=8080\nNAME='web app'\nBAD LINE\n")
    (tmp_path / "c.yml").write_text("services:\n  w:\n    image: x\n    ports: ['${PORT}:80']\n"
                                    "    container_name: ${NAME}\n")
    assert read_dotenv(tmp_path / ".env") == {"PORT": "8080", "NAME": "web app"}
    model = load_compose(tmp_path / "c.yml", env={"NAME": "override"})
    assert model.services["w"].ports[0].host_port == 8080
    assert model.services["w"].container_name == "override"


def test_template_regex_repeated_variable() -> None:
    """A variable used twice must match the same text both times."""
    rx = template_regex("${P}-${P}")
    assert rx is not None
    assert rx.match("a-a") and not rx.match("a-b")
    assert template_regex("plain") is None


def test_infer_env_from_the_lab_files() -> None:
    """Prefix and host ports of a running lab are read off names, ports and networks."""
    data = merge_files(read_files(TARGET_DEV))
    env = infer_env(
        data,
        container_names={"frontend": "demo_frontend", "backend": "demo_backend"},
        ports=[("frontend", 3010, "127.0.0.1", 13010), ("database", 5432, "127.0.0.1", 15435)],
        networks=["demo_frontend_net", "demo_backend_net", "other_net"],
    )
    assert env == {"LAB_PREFIX": "demo", "FRONTEND_HOST_PORT": "13010",
                   "DATABASE_HOST_PORT": "15435"}


def test_lab_current_declared_graph() -> None:
    """The current lab's file (read by the Compose CLI where installed): one flat network,
    every denied path a declared violation."""
    from revivadiag.analyze.policy import load_policy

    g = graph_from_compose(CURRENT, project="demo", env={"LAB_PREFIX": "demo"}, strict=False,
                           policy=load_policy())
    assert nodes_of(g, "network") == ["network:demo_network"]
    assert g.nodes["service:database"]["label"] == "demo_new_database"
    assert nodes_of(g, "port") == []  # host ports unknown in lenient mode: not published
    violations = {(g.nodes[u]["service"], g.nodes[v]["service"])
                  for u, v, d in edges_of(g, "expected") if d["status"] == "violation"}
    assert ("frontend", "database") in violations


def test_lab_target_declared_graph_with_inferred_ports() -> None:
    """The target lab's files with inferred values: split networks, the ports published."""
    env = {"LAB_PREFIX": "demo", "FRONTEND_HOST_PORT": "13010", "BACKEND_HOST_PORT": "13011",
           "DATABASE_HOST_PORT": "15435", "REDIS_HOST_PORT": "16383"}
    g = graph_from_compose(TARGET_DEV, project="demo", env=env, strict=False)
    assert nodes_of(g, "network") == ["network:demo_backend_net", "network:demo_cache_net",
                                      "network:demo_frontend_net"]
    assert "port:127.0.0.1:15435/tcp" in g
    attach = {(g.nodes[u]["service"], v) for u, v, _ in edges_of(g, "attachment")}
    assert ("frontend", "network:demo_backend_net") not in attach
    assert ("redis", "network:demo_cache_net") in attach
    assert ("database", "network:demo_cache_net") not in attach


def test_compose_files_from_labels() -> None:
    """config_files are read from the labels, relative ones against working_dir."""
    import pandas as pd

    labels = ('{"com.docker.compose.project.config_files": "a.yml,/abs/b.yml", '
              '"com.docker.compose.project.working_dir": "/srv/app"}')
    frame = pd.DataFrame({"labels": ["{}", None, labels]})
    assert files_from_labels(frame["labels"]) == ([Path("/srv/app/a.yml"), Path("/abs/b.yml")],
                                                  Path("/srv/app"))
    assert files_from_labels(["not json", "[1]"]) == ([], None)


def test_active_profiles_and_user_labels() -> None:
    """Profiles of running services are active; only user-set labels are shown."""
    data = {"services": {"a": {"profiles": ["dev", "x"]}, "b": {"profiles": ["prod"]}}}
    assert active_profiles(data, {"a"}) == ["dev", "x"]
    assert user_labels('{"io.revivadiag.lab": "1", "b": "2", "a": "<1>"}') == "a=<1>; b=2"
    assert user_labels("broken") == ""


def test_declared_project_of_a_running_lab_snapshot() -> None:
    """The files named by the labels, read with the prefix and host ports inferred from the
    live names and ports and the running services' profiles; unknown secrets stay unknown."""
    from revivadiag import schemas
    from revivadiag.collect.compose import declared_project
    from revivadiag.collect.snapshot import Snapshot

    labels = json.dumps({
        "com.docker.compose.project.config_files": "target.yml,target.development.yml",
        "com.docker.compose.project.working_dir": str(COMPOSE_DIR)})
    snap = Snapshot.empty("demo")
    snap.containers = schemas.to_frame("containers", [
        {"name": f"demo_{s}", "service": s, "labels": labels}
        for s in ("frontend", "backend", "database", "redis")])
    snap.ports = schemas.to_frame("ports", [
        {"container": "demo_frontend", "service": "frontend", "container_port": 3010,
         "host_ip": "127.0.0.1", "host_port": 13010}])
    snap.networks = schemas.to_frame("networks", [{"name": "demo_frontend_net"}])
    doc = declared_project(snap)
    assert doc is not None
    services = doc.data["services"]
    assert services["frontend"]["container_name"] == "demo_frontend"
    assert services["frontend"]["ports"][0]["published"] == "13010"
    assert services["backend"]["ports"][0]["published"] == "0"  # not published now: unknown
    assert doc.data["networks"]["backend_net"]["name"] == "demo_backend_net"
    assert services["backend"]["environment"]["DATABASE_PASSWORD"] == "***"
