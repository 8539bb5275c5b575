"""The runbook's overview table: one row per container, also for a project that publishes
no port and a container on no network."""

from __future__ import annotations

import json

from revivadiag import schemas
from revivadiag.collect.snapshot import Snapshot
from revivadiag.runbook.diagnose import overview, overview_frame


def _snapshot(ports: list[dict[str, object]]) -> Snapshot:
    snap = Snapshot.empty("shop")
    snap.containers = schemas.to_frame("containers", [
        {"name": "shop-web-1", "service": "web", "state": "running", "health": "none",
         "labels": json.dumps({"com.docker.compose.service": "web", "team": "ops"})},
        {"name": "shop-db-1", "service": "db", "state": "running", "health": "healthy",
         "labels": None},
    ])
    snap.endpoints = schemas.to_frame("endpoints", [
        {"container": "shop-web-1", "service": "web", "network": "shop_front"},
        {"container": "shop-web-1", "service": "web", "network": "shop_back"},
    ])
    snap.ports = schemas.to_frame("ports", ports)
    return snap


def test_overview_of_a_project_without_published_ports() -> None:
    """An empty ports frame gives empty `published` cells, not an ArrowInvalid."""
    snap = _snapshot([])
    assert snap.ports.empty
    frame = overview_frame(snap)
    rows = frame[["name", "networks", "published", "labels"]].to_dict("records")
    assert rows == [
        {"name": "shop-db-1", "networks": "", "published": "", "labels": ""},
        {"name": "shop-web-1", "networks": "shop_back, shop_front", "published": "",
         "labels": "team=ops"},
    ]
    assert "shop-web-1" in overview(snap).to_html()


def test_overview_lists_published_ports() -> None:
    """Published ports appear as host_ip:host_port->container_port, sorted."""
    snap = _snapshot([
        {"container": "shop-web-1", "service": "web", "container_port": 443, "protocol": "tcp",
         "host_ip": "127.0.0.1", "host_port": 8443},
        {"container": "shop-web-1", "service": "web", "container_port": 80, "protocol": "tcp",
         "host_ip": "127.0.0.1", "host_port": 8080},
    ])
    published = dict(zip(overview_frame(snap)["name"], overview_frame(snap)["published"],
                         strict=True))
    assert published == {"shop-db-1": "", "shop-web-1": "127.0.0.1:8080->80, 127.0.0.1:8443->443"}
