"""Topology graphs from snapshot frames and compose mappings: nodes, edges, attributes."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from topology_queries import edges_of, nodes_of

from revivadiag import schemas
from revivadiag.analyze.policy import load_policy
from revivadiag.errors import ComposeFileError
from revivadiag.render.topology import classify, graph_from_compose, graph_from_snapshot

SERVICES = ("frontend", "backend", "database", "redis")
PORTS = {"frontend": 3010, "backend": 3011, "database": 5432, "redis": 6379}


def flat_snapshot(prefix: str = "lab", outcome: dict[tuple[str, str], str] | None = None) -> Any:
    """The `current` shape: one flat network, every host port published, every path open."""
    outcome = outcome or {}
    names = {s: f"{prefix}_new_{s}" for s in SERVICES}
    containers = schemas.to_frame(
        "containers",
        [
            {
                "name": names[s],
                "project": prefix,
                "service": s,
                "state": "running",
                "health": "healthy" if s != "redis" else "none",
                "labels": "{}",
            }
            for s in SERVICES
        ],
    )
    networks = schemas.to_frame(
        "networks", [{"name": f"{prefix}_default", "driver": "bridge", "internal": False}]
    )
    endpoints = schemas.to_frame(
        "endpoints",
        [
            {
                "container": names[s],
                "service": s,
                "network": f"{prefix}_default",
                "ipv4": f"172.30.0.{i + 2}",
            }
            for i, s in enumerate(SERVICES)
        ],
    )
    host = {"frontend": 3010, "backend": 3011, "database": 5435, "redis": 6383}
    ports = schemas.to_frame(
        "ports",
        [
            {
                "container": names[s],
                "service": s,
                "container_port": PORTS[s],
                "protocol": "tcp",
                "host_ip": "127.0.0.1",
                "host_port": host[s],
            }
            for s in SERVICES
        ],
    )
    reach = schemas.to_frame(
        "reachability",
        [
            {
                "source": names[a],
                "source_service": a,
                "target": names[b],
                "target_service": b,
                "target_port": PORTS[b],
                "outcome": outcome.get((a, b), "open"),
                "connect_ms": 0.25,
                "method": "setns",
            }
            for a in SERVICES
            for b in SERVICES
            if a != b
        ],
    )
    return SimpleNamespace(
        containers=containers,
        networks=networks,
        endpoints=endpoints,
        ports=ports,
        reachability=reach,
        metadata={"project": prefix},
    )


def test_snapshot_nodes() -> None:
    """Containers, networks and published ports become typed nodes with their attributes."""
    g = graph_from_snapshot(flat_snapshot())
    assert nodes_of(g, "container") == sorted(f"container:lab_new_{s}" for s in SERVICES)
    assert nodes_of(g, "network") == ["network:lab_default"]
    assert nodes_of(g, "port") == sorted(
        f"port:127.0.0.1:{p}/tcp" for p in (3010, 3011, 5435, 6383)
    )
    node = g.nodes["container:lab_new_backend"]
    assert (node["service"], node["state"], node["health"]) == ("backend", "running", "healthy")
    assert g.graph["project"] == "lab"


def test_snapshot_attachment_and_published_edges() -> None:
    """Each container is attached to its network; each host port points at its container."""
    g = graph_from_snapshot(flat_snapshot())
    attached = [(u, v) for u, v, _ in edges_of(g, "attachment")]
    assert attached == sorted((f"container:lab_new_{s}", "network:lab_default") for s in SERVICES)
    published = {(u, d["container_port"]) for u, _, d in edges_of(g, "published")}
    assert ("port:127.0.0.1:5435/tcp", 5432) in published


def test_observed_edges_classified_by_policy() -> None:
    """Frontend reaching the database is a violation; allowed paths are allowed."""
    g = graph_from_snapshot(flat_snapshot(), policy=load_policy())
    data = g.get_edge_data("container:lab_new_frontend", "container:lab_new_database")
    assert data["observed:5432"]["status"] == "violation"
    assert data["observed:5432"]["verdict"] == "violation"
    assert data["observed:5432"]["connect_ms"] == 0.25
    ok = g.get_edge_data("container:lab_new_backend", "container:lab_new_database")
    assert ok["observed:5432"]["status"] == "allowed"
    unjudged = g.get_edge_data("container:lab_new_database", "container:lab_new_backend")
    assert (unjudged["observed:3011"]["status"], unjudged["observed:3011"]["verdict"]) == (
        "allowed",
        "",
    )


def test_expected_edges_from_policy() -> None:
    """Every policy rule between services present becomes an expected edge."""
    g = graph_from_snapshot(flat_snapshot(), policy=load_policy())
    expected = {
        (g.nodes[u]["service"], g.nodes[v]["service"], d["port"], d["action"])
        for u, v, d in edges_of(g, "expected")
    }
    assert ("frontend", "database", None, "deny") in expected
    assert ("backend", "redis", 6379, "allow") in expected
    assert len(expected) == 6


def test_denied_path_that_times_out_is_denied() -> None:
    """A denied path that is dropped is `denied`; an allowed one that is closed is a violation."""
    snap = flat_snapshot(
        outcome={("frontend", "redis"): "timeout", ("backend", "redis"): "refused"}
    )
    g = graph_from_snapshot(snap, policy=load_policy())
    drop = g.get_edge_data("container:lab_new_frontend", "container:lab_new_redis")["observed:6379"]
    assert (drop["status"], drop["verdict"]) == ("denied", "ok")
    blocked = g.get_edge_data("container:lab_new_backend", "container:lab_new_redis")[
        "observed:6379"
    ]
    assert (blocked["status"], blocked["verdict"]) == ("violation", "blocked")


@pytest.mark.parametrize(
    ("outcome", "expected", "result"),
    [
        ("open", "allow", ("allowed", "ok")),
        ("open", "deny", ("violation", "violation")),
        ("timeout", "deny", ("denied", "ok")),
        ("refused", "deny", ("denied", "refused_not_dropped")),
        ("refused", "allow", ("violation", "blocked")),
        ("error", "deny", ("unknown", "inconclusive")),
        ("open", None, ("allowed", "")),
        ("unresolvable", None, ("denied", "")),
        ("error", None, ("unknown", "")),
    ],
)
def test_classify(outcome: str, expected: str | None, result: tuple[str, str]) -> None:
    """Every (outcome, expected) pair maps to one status and verdict."""
    assert classify(outcome, expected) == result


def test_snapshot_without_frames_gives_empty_graph() -> None:
    """An object without frames yields an empty graph, not an error."""
    g = graph_from_snapshot(SimpleNamespace())
    assert g.number_of_nodes() == 0


def test_observed_edge_carries_its_status() -> None:
    """An observed edge the policy forbids is a violation, between the labelled nodes."""
    g = graph_from_snapshot(flat_snapshot(), policy=load_policy())
    statuses = [d.get("status") for u, v, d in edges_of(g, "observed")
                if (g.nodes[u].get("label"), g.nodes[v].get("label"))
                == ("lab_new_frontend", "lab_new_database")]
    assert statuses == ["violation"]


# ---------------------------------------------------------------- compose

SPLIT = {
    "name": "ignored-when-project-given",
    "services": {
        "frontend": {
            "image": "lab/frontend",
            "container_name": "${PREFIX:-revivatech}_frontend",
            "ports": ["127.0.0.1:3010:3010"],
            "networks": ["edge"],
        },
        "backend": {
            "networks": {"edge": None, "data": {"aliases": ["api"]}},
            "ports": [{"target": 3011, "published": 3011, "host_ip": "127.0.0.1"}],
            "profiles": ["development"],
        },
        "database": {"networks": ["data"], "ports": ["5435:5432"], "profiles": ["development"]},
        "redis": {"networks": ["data"]},
        "tool": {"network_mode": "service:backend", "profiles": ["debug"]},
    },
    "networks": {"edge": None, "data": {"internal": True}},
}


def test_compose_services_networks_ports() -> None:
    """Declared services, networks (named as Compose names them) and ports become nodes."""
    g = graph_from_compose(SPLIT, project="lab", profiles=["development"], env={})
    assert nodes_of(g, "service") == [f"service:{s}" for s in sorted(SERVICES)]
    assert nodes_of(g, "network") == ["network:lab_data", "network:lab_edge"]
    assert g.nodes["network:lab_data"]["internal"] is True
    assert g.nodes["service:frontend"]["label"] == "revivatech_frontend"
    ports = {(u, v) for u, v, _ in edges_of(g, "published")}
    assert ("port:0.0.0.0:5435/tcp", "service:database") in ports
    assert ("port:127.0.0.1:3011/tcp", "service:backend") in ports
    attach = {(u, v) for u, v, _ in edges_of(g, "attachment")}
    assert {
        ("service:backend", "network:lab_edge"),
        ("service:backend", "network:lab_data"),
    } <= attach


def test_compose_profiles_filter_services() -> None:
    """Services whose profiles are not active are left out, as Compose does."""
    g = graph_from_compose(SPLIT, project="lab", env={"PREFIX": "x"})
    assert nodes_of(g, "service") == ["service:frontend", "service:redis"]
    assert g.nodes["service:frontend"]["label"] == "x_frontend"


def test_compose_declared_policy_status() -> None:
    """Policy edges are judged from shared networks: split networks give no violation."""
    g = graph_from_compose(
        SPLIT, project="lab", profiles=["development"], env={}, policy=load_policy()
    )
    statuses = {
        (g.nodes[u]["service"], g.nodes[v]["service"]): d["status"]
        for u, v, d in edges_of(g, "expected")
    }
    assert statuses[("frontend", "database")] == "denied"
    assert statuses[("backend", "database")] == "allowed"
    assert statuses[("frontend", "backend")] == "allowed"
    assert statuses[("database", "redis")] == "violation"  # same `data` network


def test_compose_flat_network_violations() -> None:
    """With the implicit default network every denied path is a declared violation."""
    flat = {"services": {s: {"image": "x"} for s in SERVICES}}
    g = graph_from_compose(flat, project="lab", policy=load_policy())
    assert nodes_of(g, "network") == ["network:lab_default"]
    violations = sorted(
        (g.nodes[u]["service"], g.nodes[v]["service"])
        for u, v, d in edges_of(g, "expected")
        if d["status"] == "violation"
    )
    assert violations == [("database", "redis"), ("frontend", "database"), ("frontend", "redis")]


def test_compose_from_file(tmp_path: Path) -> None:
    """A compose file on disk is read; the project defaults to its folder name."""
    folder = tmp_path / "My_Stack"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n")
    g = graph_from_compose(folder / "docker-compose.yml", env={})
    assert g.graph["project"] == "my_stack"
    assert nodes_of(g, "network") == ["network:my_stack_default"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services:\n  web: [unclosed\n  x: 1\n", "line 3"),
        ("- just\n- a list\n", "expected a mapping at the top level"),
        ("", "empty"),
        ("version: '2'\n", "no 'services:' mapping"),
        ("services:\n  web: 3\n", "services.web: expected a mapping"),
        ("services:\n  web:\n    ports: ['80:abc']\n", "services.web.ports[0]: bad port spec"),
        ("services:\n  web:\n    ports: ['70000:80']\n", "outside 1..65535"),
        ("services:\n  web:\n    networks: [back]\n", "network 'back' is not declared"),
        ("services:\n  web:\n    ports: [{published: 80}]\n", "services.web.ports[0].target"),
        ("services:\n  web:\n    image: ${IMG:?set IMG}\n", "required variable IMG"),
        ("services:\n  web:\n    ports: '80:80'\n", "services.web.ports: expected a list"),
    ],
)
def test_compose_errors_name_the_problem(tmp_path: Path, text: str, message: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed compose file raises ComposeFileError naming the file and the problem:
    the Compose CLI's words where one is installed, the built-in reader's (checked here by
    their text) without one."""
    path = tmp_path / "compose.yml"
    path.write_text(text)
    with pytest.raises(ComposeFileError) as info:
        graph_from_compose(path, env={})
    assert info.value.path == str(path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no Compose CLI: the built-in reader
    with pytest.raises(ComposeFileError, match=re.escape(message)) as info:
        graph_from_compose(path, env={})
    assert info.value.path == str(path)


def test_compose_missing_file(tmp_path: Path) -> None:
    """A missing file is a ComposeFileError, not an OSError."""
    with pytest.raises(ComposeFileError, match="no such file"):
        graph_from_compose(tmp_path / "nope.yml")


def test_compose_merge_of_two_files(tmp_path: Path) -> None:
    """An override file adds ports and changes networks, as `-f a -f b` does."""
    (tmp_path / "a.yml").write_text("services:\n  web:\n    image: x\n    ports: ['8080:80']\n")
    (tmp_path / "b.yml").write_text(
        "services:\n  web:\n    ports: ['8443:443']\n    networks: [x]\nnetworks:\n  x: {}\n"
    )
    g = graph_from_compose([tmp_path / "a.yml", tmp_path / "b.yml"], project="p", env={})
    assert nodes_of(g, "port") == ["port:0.0.0.0:8080/tcp", "port:0.0.0.0:8443/tcp"]
    assert nodes_of(g, "network") == ["network:p_x"]


def test_compose_escaped_dollar() -> None:
    """`$$` stays a literal dollar sign; `${X-d}` keeps an empty X."""
    g = graph_from_compose({"services": {"w": {"container_name": "a$$b${X-d}"}}}, env={"X": ""})
    assert g.nodes["service:w"]["label"] == "a$b"
