"""The lab's compose files, image recipes and the frontend's config rendering (no engine)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from revivadiag.lab.compose import COMPOSE_DIR
from revivadiag.lab.images import RECIPES, read_packages

LAB_DIR = COMPOSE_DIR.parent
SERVICES = {"frontend", "backend", "database", "redis"}


def load(name: str) -> dict[str, Any]:
    """One compose file, parsed."""
    data: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(("name", "infix"), [("current.yml", "_new_"), ("target.yml", "_")])
def test_services_and_container_names(name: str, infix: str) -> None:
    """Both variants define the same four services with the contract's container names."""
    services = load(name)["services"]
    assert set(services) == SERVICES
    assert {s: services[s]["container_name"] for s in services} == {
        s: f"${{LAB_PREFIX:?}}{infix}{s}" for s in services
    }


@pytest.mark.parametrize("name", ["current.yml", "target.yml"])
def test_every_service_has_a_healthcheck_and_labels(name: str) -> None:
    """Healthchecks and io.revivadiag labels on every service."""
    variant = name.removesuffix(".yml")
    for service in load(name)["services"].values():
        assert service["healthcheck"]["test"]
        assert service["labels"] == {"io.revivadiag.lab": "1", "io.revivadiag.variant": variant,
                                     "io.revivadiag.profile": "${APP_ENV:?}"}


def _published(files: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in SERVICES}
    for name in files:
        for svc, spec in load(name)["services"].items():
            out[svc] += spec.get("ports", [])
    return out


def test_ports_bind_loopback_and_target_base_publishes_only_the_frontend() -> None:
    """Every published port binds 127.0.0.1; target's base file publishes only 3010."""
    for name in ("current.yml", "target.yml", "target.development.yml"):
        for ports in _published([name]).values():
            assert all(p.startswith("127.0.0.1:") for p in ports)
    assert {s: len(p) for s, p in _published(["target.yml"]).items()} == {
        "frontend": 1, "backend": 0, "database": 0, "redis": 0}
    assert {s: len(p) for s, p in _published(["target.yml", "target.development.yml"]).items()} \
        == {s: 1 for s in SERVICES}
    assert {s: len(p) for s, p in _published(["current.yml"]).items()} == {s: 1 for s in SERVICES}


def test_target_networks_isolate_the_data_tier() -> None:
    """In target the frontend is only on frontend_net; the database only on backend_net and
    Redis only on cache_net, so neither reaches the other; the backend is on all three."""
    services = load("target.yml")["services"]
    assert {s: sorted(services[s]["networks"]) for s in services} == {
        "frontend": ["frontend_net"], "backend": ["backend_net", "cache_net", "frontend_net"],
        "database": ["backend_net"], "redis": ["cache_net"]}


def test_no_secret_or_mirror_is_written_in_the_lab() -> None:
    """Compose files take secrets only from the environment; no apt mirror host appears in
    any recipe (mmdebstrap uses the host's own sources)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in LAB_DIR.rglob("*")
                     if p.is_file() and p.suffix in {".yml", ".txt", "", ".py", ".sql"}
                     and "__pycache__" not in p.parts)
    assert not re.search(r"(deb|security)\.debian\.org|archive\.ubuntu|/debian/? bookworm", text)
    for name in ("current.yml", "target.yml"):
        for spec in load(name)["services"].values():
            for key, value in spec.get("environment", {}).items():
                if "PASSWORD" in key or "SECRET" in key or key == "REDISCLI_AUTH":
                    assert str(value).startswith("${"), (name, key)


def test_base_package_list() -> None:
    """The base image carries the servers, Python libraries and probe tools the lab needs."""
    packages = set(read_packages((RECIPES / "base" / "packages.txt").read_text()))
    assert {"postgresql-15", "redis-server", "nginx-light", "python3-aiohttp", "python3-psycopg",
            "python3-redis", "python3-dnspython", "busybox", "netcat-openbsd"} <= packages


def _frontend_entrypoint() -> ModuleType:
    path = RECIPES / "frontend" / "entrypoint.py"
    spec = importlib.util.spec_from_file_location("frontend_entrypoint", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _template(mode: str) -> str:
    return (RECIPES / "frontend" / f"nginx-{mode}.conf.tmpl").read_text(encoding="utf-8")


def test_current_proxy_bakes_the_container_name_without_keepalive() -> None:
    """current: proxy_pass names the backend container; no upstream block, no limit_req."""
    conf = _frontend_entrypoint().render(_template("current"), {"BACKEND_HOST": "p_new_backend"})
    assert "proxy_pass http://p_new_backend:3011;" in conf
    directives = [line.split()[0] for line in conf.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    assert {"upstream", "limit_req", "limit_req_zone", "keepalive"} & set(directives) == set()
    assert "$proxy_add_x_forwarded_for" in conf


def test_target_proxy_uses_keepalive_upstream_and_rate_limit() -> None:
    """target: upstream with keepalive, HTTP/1.1 with an empty Connection, limit_req on /api/."""
    module = _frontend_entrypoint()
    conf = module.render(_template("target"), {"RATE_LIMIT_RPS": "30", "RATE_LIMIT_BURST": "20"})
    assert "rate=30r/s" in conf and "burst=20 nodelay" in conf
    assert 'proxy_set_header Connection "";' in conf and "proxy_http_version 1.1;" in conf
    assert "X-Forwarded-For $remote_addr;" in conf
    assert module.upstream_conf("172.20.0.3:3011").splitlines()[1:3] == [
        "    server 172.20.0.3:3011 max_fails=0;", "    keepalive 32;"]


def test_render_refuses_missing_variables() -> None:
    """A template variable without a value stops the entrypoint with its name."""
    with pytest.raises(SystemExit, match="BACKEND_HOST"):
        _frontend_entrypoint().render(_template("current"), {})


def test_recipes_have_dockerfiles() -> None:
    """Each service recipe is a Dockerfile FROM the base image argument."""
    for service in SERVICES:
        text = (RECIPES / service / "Dockerfile").read_text(encoding="utf-8")
        assert "ARG BASE_IMAGE" in text and "FROM ${BASE_IMAGE}" in text
    assert Path(RECIPES / "base" / "Dockerfile.registry").exists()
