"""The containers and ports frames, parsed from recorded inspect dicts (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from revivadiag.collect.containers import (
    STATE_REMOVED,
    compose_identity,
    parse_compose_name,
    parse_container,
    parse_containers,
    parse_ports,
    parse_started_at,
    redact_labels,
)
from revivadiag.redact import MASK
from revivadiag.schemas import validate

DATA = json.loads((Path(__file__).parent / "data" / "docker_inspect_snapdev.json").read_text())
WEB, DB, WORKER = DATA["containers"]


@pytest.mark.parametrize(
    ("name", "project", "expected"),
    [
        ("revivatech_backend_1", None, ("revivatech", "backend", 1)),
        ("revivatech-backend-2", None, ("revivatech", "backend", 2)),
        ("/revivatech_backend_1", None, ("revivatech", "backend", 1)),
        ("my-app-web-1", "my-app", ("my-app", "web", 1)),
        ("my_app_web_worker_3", "my_app", ("my_app", "web_worker", 3)),
        ("my-app-web-worker-3", "my-app", ("my-app", "web-worker", 3)),
        ("revivatech_new_backend", "revivatech", ("revivatech", "new_backend", None)),
        ("standalone", None, None),
        ("other_web_1", "revivatech", None),
    ],
)
def test_parse_compose_name(name: str, project: str | None, expected: Any) -> None:
    """Compose v1 (`_`) and v2 (`-`) names both give project, service and number."""
    assert parse_compose_name(name, project) == expected


def test_labels_win_over_the_name() -> None:
    """The compose labels, when present, are the identity."""
    assert compose_identity(WEB) == ("snapdev", "web", 1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("/p_api_2", ("p", "api", 2)), ("/p-api-2", ("p", "api", 2))],
)
def test_identity_from_name_when_labels_are_missing(name: str, expected: Any) -> None:
    """Without labels, v1 and v2 names are parsed."""
    inspect = {**WEB, "Name": name, "Config": {**WEB["Config"], "Labels": {}}}
    assert compose_identity(inspect, "p") == expected


def test_parse_running_container() -> None:
    """A running compose container: every column from the recorded inspect."""
    row = parse_container(WEB)
    assert (row["name"], row["project"], row["service"], row["number"]) == (
        "snapdev_web_1", "snapdev", "web", 1)
    assert (row["state"], row["health"], row["restart_count"]) == ("running", "none", 0)
    assert row["image"] == "snapdev-busybox:latest"
    assert row["pid"] == WEB["State"]["Pid"] and row["pid"] > 0
    assert row["exposed_ports"] == ["3011/tcp"]
    assert str(row["started_at"].tz) == "UTC"


def test_labels_are_redacted() -> None:
    """A label whose key looks secret is masked; ordinary labels are kept."""
    labels = json.loads(parse_container(WEB)["labels"])
    assert labels["com.example.api_token"] == MASK
    assert labels["com.docker.compose.service"] == "web"
    assert "tokval123" not in parse_container(WEB)["labels"]


def test_label_urls_lose_their_password() -> None:
    """A URL with credentials in a label keeps everything but the password."""
    got = redact_labels({"traefik.backend.url": "http://admin:pw9999@api:80/x"})
    assert got == {"traefik.backend.url": f"http://admin:{MASK}@api:80/x"}


def test_exited_container_without_labels() -> None:
    """An exited `docker run` container: state exited, pid 0, v2 name parsed."""
    row = parse_container(WORKER)
    assert (row["state"], row["pid"], row["exposed_ports"]) == ("exited", 0, [])
    assert (row["project"], row["service"], row["number"]) == ("snapdevtmp", "worker", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        ("2026-11-27T09:07:01.240062186Z", pd.Timestamp("2026-11-27T09:07:01.240062186", tz="UTC")),
        ("2026-11-27T10:07:01+01:00", pd.Timestamp("2026-11-27T09:07:01", tz="UTC")),
    ],
)
def test_parse_started_at(text: str, expected: pd.Timestamp | None) -> None:
    """Docker timestamps become UTC; the zero time becomes missing."""
    assert parse_started_at(text) == expected


def test_containers_frame_matches_schema_and_keeps_vanished() -> None:
    """The frame validates; a container gone before its inspect is a `removed` row."""
    frame = parse_containers([WEB, DB, WORKER], DATA["summaries"][:1], project="snapdev")
    validate("containers", frame)
    assert len(frame) == 4
    removed = frame[frame["state"] == STATE_REMOVED]
    assert len(removed) == 1
    assert removed.iloc[0]["pid"] == 0


def test_ports_frame() -> None:
    """Only host bindings become rows; unpublished exposed ports do not."""
    frame = parse_ports([WEB, DB, WORKER])
    validate("ports", frame)
    assert frame.to_dict(orient="records") == [{
        "container": "snapdev_web_1", "service": "web", "container_port": 3011,
        "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 39011, "engine": ""}]


def test_ports_with_null_and_multiple_bindings() -> None:
    """A port bound twice gives two rows; a null binding list gives none."""
    inspect = {**WEB, "NetworkSettings": {"Ports": {
        "53/udp": None,
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
    }}}
    frame = parse_ports([inspect])
    assert frame["host_ip"].tolist() == ["0.0.0.0", "::"]
    assert frame["container_port"].tolist() == [80, 80]
