"""The shop stack's config, compose files, nginx sites and recipes, and --no-publish (no engine).

The compose files are checked as YAML here (PyYAML resolves the anchors and merge keys the way
Compose does); tests/integration/test_lab_shop.py runs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from revivadiag import seed
from revivadiag.cli import main
from revivadiag.collect.nginx_conf import keepalive_verdict, parse_files, resolution_verdict
from revivadiag.errors import ParameterError
from revivadiag.lab import LabConfig
from revivadiag.lab.compose import SHOP_DIR, compose_argv, compose_env, compose_files, without_ports
from revivadiag.lab.config import (
    CONTAINER_PORTS,
    DEFAULT_HOST_PORTS,
    DEFAULT_PREFIX,
    SHOP_STACK,
    parse_port_option,
)
from revivadiag.lab.images import RECIPES, SHOP_RECIPES, SHOP_SERVICE_RECIPES, stack_images

SHOP = {"proxy", "web", "api", "worker", "db", "cache"}


def load(form: str) -> dict[str, Any]:
    """shop/<form>.yml, parsed (anchors and merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load((SHOP_DIR / f"{form}.yml").read_text(encoding="utf-8"))
    return data


def networks_of(spec: dict[str, Any]) -> list[str]:
    """A service's networks, whichever form (list or mapping) the file uses."""
    nets = spec.get("networks", ["default"])
    return sorted(nets if isinstance(nets, list) else nets.keys())


def test_seed_names_come_from_the_seed_module() -> None:
    """lab/config.py repeats none of the seed's values: it takes them from revivadiag.seed."""
    assert (CONTAINER_PORTS, DEFAULT_HOST_PORTS, DEFAULT_PREFIX) == (
        seed.SERVICE_PORTS, seed.HOST_PORTS, seed.PROJECT)
    text = (Path(seed.__file__).parent / "lab" / "config.py").read_text(encoding="utf-8")
    assert not re.search(r"\b(3010|3011|5435|6383)\b|revivatech", text)


@pytest.mark.parametrize(
    ("variant", "published", "networks"),
    [("shop-current", ("proxy", "web", "api", "db", "cache"), ("p_default", "p_edge")),
     ("shop-target", ("proxy",), ("p_front", "p_data", "p_cache", "p_edge"))],
)
def test_shop_config(variant: str, published: tuple[str, ...], networks: tuple[str, ...]) -> None:
    """Compose v1's default container names, published services and networks per variant."""
    cfg = LabConfig(prefix="p", variant=variant)
    assert cfg.container_names == {s: f"p_{s}_1" for s in SHOP_STACK.services}
    assert cfg.published_services == published
    assert cfg.networks == networks and cfg.external_networks == ("p_edge",)
    assert set(cfg.ports) == {"proxy", "web", "api", "db", "cache"}


@pytest.mark.parametrize("variant", ["current", "target", "shop-current", "shop-target"])
def test_no_publish_publishes_nothing(variant: str) -> None:
    """publish=False: no published service in any variant; it survives the state file."""
    cfg = LabConfig(prefix="p", variant=variant, profile="production", publish=False)
    assert (cfg.published_services, cfg.published_ports) == ((), {})
    assert LabConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"variant": "shop-blue"}, "variant"), ({"variant": "shop-current", "ports": {"frontend": 1}},
                                              "port service"),
     ({"variant": "shop-target", "ports": {"worker": 9000}}, "port service"),
     ({"variant": "shop-target", "ports": {"proxy": 8000}}, "api port"),
     ({"variant": "current", "ports": {"proxy": 18080}}, "port service"),
     ({"variant": "shop-current", "publish": "no"}, "publish")],
)
def test_bad_shop_config(kwargs: dict[str, object], name: str) -> None:
    """Unknown variant, a port for a service the stack lacks (or the worker, which has no
    port), clashing ports, a non-boolean publish: ParameterError naming it."""
    with pytest.raises(ParameterError) as info:
        LabConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == name


def test_port_option_follows_the_variant() -> None:
    """--port names the services of the chosen variant's stack."""
    assert parse_port_option("db=15432", "shop-current") == ("db", 15432)
    with pytest.raises(ParameterError, match="bad port service 'db'"):
        parse_port_option("db=15432", "current")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["lab", "up", "--variant", "shop"], "bad variant 'shop': expected one of current, target, "
                                          "shop-current, shop-target"),
     (["lab", "up", "--variant", "shop-target", "--port", "frontend=1234"],
      "bad port service 'frontend'"),
     (["lab", "up", "--variant", "shop-current", "--port", "web=3000", "--port", "api=3000"],
      "already used by web")],
)
def test_cli_bad_shop_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed errors with exit 2, before any engine is contacted."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_shop_compose_files_and_env() -> None:
    """The shop's files live in compose/shop; the env names its external network and ports."""
    cfg = LabConfig(prefix="abc", variant="shop-target", ports={"proxy": 18080})
    assert [f.relative_to(SHOP_DIR).as_posix()
            for f in compose_files("shop-target", "production")] == ["target.yml"]
    env = compose_env(cfg, {"DATABASE_PASSWORD": "pw"})
    assert (env["EDGE_NETWORK"], env["PROXY_HOST_PORT"], env["APP_ENV"],
            env["DATABASE_PASSWORD"]) == ("abc_edge", "18080", "development", "pw")


def test_compose_features_real_projects_use() -> None:
    """x- anchors with merge keys, env_file, a profile-only service, depends_on conditions,
    an external network, an alias, a service with neither port nor healthcheck; no
    container_name and no role label anywhere."""
    for form in ("current", "target"):
        text = (SHOP_DIR / f"{form}.yml").read_text(encoding="utf-8")
        assert re.search(r"^x-common: &common$", text, re.MULTILINE)
        assert text.count("<<: *common") >= 4 and "<<: *healthcheck" in text
        services = load(form)["services"]
        assert set(services) == SHOP | {"tools"}
        assert services["tools"]["profiles"] == ["debug"]
        assert all("profiles" not in services[s] for s in SHOP)
        assert all(services[s]["env_file"] == "shop.env" for s in SHOP)
        assert (SHOP_DIR / "shop.env").is_file()
        assert services["api"]["depends_on"] == {"db": {"condition": "service_healthy"},
                                                 "cache": {"condition": "service_healthy"}}
        assert services["proxy"]["depends_on"]["api"] == {"condition": "service_healthy"}
        assert "ports" not in services["worker"] and "healthcheck" not in services["worker"]
        assert all("healthcheck" in services[s] for s in SHOP - {"worker"})
        assert load(form)["networks"]["edge"] == {"external": True,
                                                  "name": "${EDGE_NETWORK:-shop_edge}"}
        assert "edge" in networks_of(services["proxy"])
        db_nets = services["db"].get("networks", {"default": {"aliases": ["postgres"]}})
        assert any("postgres" in (n or {}).get("aliases", []) for n in db_nets.values())
        assert "@postgres:5432" in services["worker"]["environment"]["DATABASE_URL"]
        for spec in services.values():
            assert "container_name" not in spec
            assert not [k for k in spec.get("labels", {}) if "role" in k]


def test_shop_networks() -> None:
    """current: everything on the default network (the proxy also on edge); target: front
    (proxy, web, api), data (api, worker, db), cache (api, worker, cache)."""
    current = {s: networks_of(spec) for s, spec in load("current")["services"].items()
               if s in SHOP}
    assert current == {**{s: ["default"] for s in SHOP}, "proxy": ["default", "edge"]}
    target = {s: networks_of(spec) for s, spec in load("target")["services"].items() if s in SHOP}
    assert target == {"proxy": ["edge", "front"], "web": ["front"],
                      "api": ["cache", "data", "front"], "worker": ["cache", "data"],
                      "db": ["data"], "cache": ["cache"]}


def test_shop_ports_and_urls() -> None:
    """current publishes all but the worker on loopback and hard-codes the API's localhost URL;
    target publishes only the proxy and leaves the URL relative."""
    current, target = load("current")["services"], load("target")["services"]
    assert {s for s in SHOP if current[s].get("ports")} == SHOP - {"worker"}
    assert all(p.startswith("127.0.0.1:") for s in SHOP for p in current[s].get("ports", []))
    assert {s for s in SHOP if target[s].get("ports")} == {"proxy"}
    assert current["web"]["environment"]["VITE_API_URL"] == "http://localhost:8000"
    assert target["web"]["environment"]["VITE_API_URL"] == ""


def test_shop_secrets_come_from_the_environment() -> None:
    """Every password, key and credentialed URL is a ${...:?} reference; shop.env holds none."""
    for form in ("current", "target"):
        for spec in load(form)["services"].values():
            for key, value in (spec.get("environment") or {}).items():
                if re.search(r"PASSWORD|SECRET|KEY|AUTH|_URL$", key) and key != "VITE_API_URL":
                    assert "${" in str(value) and ":?}" in str(value), (form, key)
    env = (SHOP_DIR / "shop.env").read_text(encoding="utf-8")
    assert not re.search(r"PASSWORD|SECRET|KEY|://", env)


def test_without_ports_keeps_everything_else() -> None:
    """The --no-publish copy of a file drops only the ports."""
    data = load("current")
    stripped = without_ports(data)
    assert all("ports" not in spec for spec in stripped["services"].values())
    for name, spec in data["services"].items():
        assert {k: v for k, v in spec.items() if k != "ports"} == stripped["services"][name]
    assert stripped["networks"] == data["networks"]


def test_no_publish_argv_uses_copies_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose_argv without ports: copies under the instance's state dir, the originals'
    directory as project directory (relative mounts and env_file still resolve)."""
    monkeypatch.setenv("REVIVADIAG_STATE_DIR", str(tmp_path))
    monkeypatch.setattr("revivadiag.lab.compose.compose_command", lambda: ("docker-compose",))
    argv = compose_argv(LabConfig(prefix="abc", variant="shop-current", publish=False), "up")
    copy = tmp_path / "labs" / "abc" / "compose" / "current.yml"
    assert argv == ["docker-compose", "-p", "abc", "--project-directory", str(SHOP_DIR),
                    "-f", str(copy), "up"]
    assert "ports:" not in copy.read_text(encoding="utf-8")
    # target.development.yml only adds ports, so its copy would be empty and is left out
    argv = compose_argv(LabConfig(prefix="abc", variant="target", publish=False), "up")
    assert [a for a in argv if a.endswith(".yml")] == [
        str(tmp_path / "labs" / "abc" / "compose" / "target.yml")]


def _site(form: str) -> dict[str, str]:
    return {"/etc/nginx/conf.d/default.conf":
            (SHOP_DIR / "nginx" / f"{form}.conf").read_text(encoding="utf-8")}


def test_current_site_resolves_once_without_keepalive() -> None:
    """shop-current's nginx: static names, no resolver, no keep-alive (the audit fails both)."""
    cfg = parse_files(_site("current"))
    assert {(p.location, p.url) for p in cfg.proxy_passes} == {
        ("/api/", "http://api:8000/"), ("/", "http://web:3000")}
    assert cfg.resolvers == [] and cfg.upstreams == {}
    assert resolution_verdict(cfg)[0] == "fail" and keepalive_verdict(cfg)[0] == "fail"


def test_target_site_re_resolves_the_api_and_pools_web() -> None:
    """shop-target's nginx: Docker's resolver with a variable proxy_pass for /api/ (re-resolved,
    but nginx 1.22 pools no connection for it), an upstream with keepalive and HTTP/1.1 for /
    (pooled, resolved once): each location passes one of the two audits."""
    cfg = parse_files(_site("target"))
    assert cfg.resolvers[0] == "127.0.0.11"
    api = next(p for p in cfg.proxy_passes if p.location == "/api/")
    assert api.uses_variable and api.http_version == "1.1"
    assert cfg.upstreams["web_app"].keepalive == 16
    web = next(p for p in cfg.proxy_passes if p.location == "/")
    assert (web.http_version, web.connection_header) == ("1.1", "")
    resolution, keepalive = resolution_verdict(cfg)[1], keepalive_verdict(cfg)[1]
    assert "location /api/" not in resolution and "location / ->" in resolution
    assert "location / ->" not in keepalive and "location /api/" in keepalive


def test_shop_recipes() -> None:
    """Each shop recipe builds FROM the base; api and worker share an image; the cache reuses
    the seed's Redis recipe; no image declares a HEALTHCHECK (the worker must have none)."""
    for recipe in SHOP_RECIPES:
        text = (RECIPES / recipe / "Dockerfile").read_text(encoding="utf-8")
        assert "ARG BASE_IMAGE" in text and "FROM ${BASE_IMAGE}" in text
        assert not re.search(r"^HEALTHCHECK", text, re.MULTILINE)
    assert SHOP_SERVICE_RECIPES["api"] == SHOP_SERVICE_RECIPES["worker"] == "shop-api"
    assert stack_images(SHOP_STACK) == [
        "revivadiag/lab-shop-postgres:latest", "revivadiag/lab-redis:latest",
        "revivadiag/lab-shop-api:latest", "revivadiag/lab-shop-web:latest",
        "revivadiag/lab-shop-nginx:latest"]


@pytest.mark.skipif(shutil.which("docker-compose") is None
                    and os.environ.get("CI", "").lower() != "true",  # CI: fail, never skip
                    reason="needs docker-compose")
@pytest.mark.parametrize("form", ["current", "target"])
def test_compose_v1_accepts_the_files(form: str) -> None:
    """`docker-compose config` (v1) validates each file; `tools` only exists with its profile
    active in the services `up` would start (checked by the integration tests)."""
    env = {"DATABASE_PASSWORD": "x", "REDIS_PASSWORD": "y", "JWT_SECRET": "z", "PATH": "/usr/bin"}
    proc = subprocess.run(
        ["docker-compose", "-p", "rdtunit", "-f", str(SHOP_DIR / f"{form}.yml"), "config"],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    merged = yaml.safe_load(proc.stdout)
    assert merged["services"]["api"]["environment"]["POSTGRES_DB"] == "shop"  # from env_file
    assert merged["services"]["db"]["healthcheck"]["interval"] == "2s"

