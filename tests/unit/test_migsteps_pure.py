"""Pure parts of the step kinds: captured states hold no secret value and give the container
back from live sources, compose services become the create bodies Compose would make, step
parameters are checked when a step is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from revivadiag.collect.compose_cli import ComposeCli
from revivadiag.errors import PlanError, StepError
from revivadiag.migrate.model import StepSpec
from revivadiag.migrate.readiness import compare_fingerprints
from revivadiag.migrate.steps import KINDS, build
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.compose_target import Target

SECRET = "hunter2-very-secret"


def inspect_dict() -> dict[str, object]:
    return {
        "Id": "abcdef0123456789" * 4,
        "Name": "/p_backend",
        "Image": "sha256:img",
        "State": {"Status": "running", "Running": True},
        "Config": {
            "Hostname": "abcdef012345",
            "Image": "lab-backend:latest",
            "Env": [f"DATABASE_PASSWORD={SECRET}", "APP_ENV=dev",
                    f"DATABASE_URL=postgresql://u:{SECRET}@p_db:5432/x"],
            "Cmd": ["server", f"--password={SECRET}"],
            "Labels": {"com.docker.compose.service": "backend",
                       "com.docker.compose.project": "p", "x.api-token": SECRET},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000},
        },
        "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}, "NetworkMode": "p_b",
                       "Binds": ["p_data:/data:rw"]},
        "NetworkSettings": {"Networks": {
            "p_a": {"Aliases": ["backend", "abcdef012345"], "IPAddress": "10.0.0.2"},
            "p_b": {"Aliases": ["backend"], "IPAddress": "10.0.1.2"}}},
        "Mounts": [{"Type": "volume", "Name": "p_data", "Destination": "/data", "RW": True}],
    }


def test_captured_state_has_no_secret_and_keeps_the_shape() -> None:
    state = eng.container_state(inspect_dict())
    text = json.dumps(state)
    assert SECRET not in text
    assert [k for k, _ in state["env"]] == ["DATABASE_PASSWORD", "APP_ENV", "DATABASE_URL"]
    assert all(v.startswith("sha256:") for _, v in state["env"])
    assert state["networks"]["p_a"]["aliases"] == ["backend"]  # the short id is the engine's
    assert "Hostname" not in state["config"]  # default hostname: the new container's own id
    assert state["config"]["Cmd"][0] == "server"
    assert state["config"]["Cmd"][1] == {"secret": eng.value_hash(f"--password={SECRET}")}
    assert state["config"]["Labels"]["x.api-token"] == {"secret": eng.value_hash(SECRET)}
    assert state["mounts"] == [{"type": "volume", "name": "p_data", "source": "",
                                "destination": "/data", "rw": True}]


def test_recreating_from_state_takes_values_from_a_live_source() -> None:
    state = eng.container_state(inspect_dict())
    spec = eng.spec_from_state(state, [inspect_dict()])
    assert f"DATABASE_PASSWORD={SECRET}" in spec.body["Env"]
    assert spec.body["Cmd"] == ["server", f"--password={SECRET}"]
    assert spec.body["Labels"]["x.api-token"] == SECRET
    assert list(spec.networks) == ["p_b", "p_a"]  # created on its NetworkMode first
    assert SECRET not in repr(spec)


def test_recreating_refuses_when_no_source_holds_a_value() -> None:
    state = eng.container_state(inspect_dict())
    other = inspect_dict()
    other["Config"]["Env"] = ["APP_ENV=dev"]  # type: ignore[index]
    with pytest.raises(StepError, match="DATABASE_URL is held by no live container"):
        eng.spec_from_state(state, [other])


def target(model: dict[str, Any]) -> Target:
    return Target("p", (Path("/x/target.yml"),), Path("/x"), ComposeCli(("docker-compose",),
                  "1.29.2"), model, {"api": "h4sh"})


def test_compose_service_becomes_the_create_body_compose_would_make() -> None:
    model = {
        "services": {"api": {
            "image": "shop-api:latest", "command": "python3 /app/main.py",
            "environment": {"A": "1", "UNSET": None}, "labels": {"l": "v"},
            "healthcheck": {"test": "curl -f http://127.0.0.1:8000/", "interval": "2s",
                            "timeout": "3s", "retries": 5},
            "ports": ["127.0.0.1:18000:8000/tcp"], "restart": "unless-stopped",
            "volumes": ["db_data:/data:rw", "./conf:/etc/conf:ro"],
            "networks": {"front": None, "data": {"aliases": ["backend-api"]}},
            "depends_on": {"db": {"condition": "service_healthy"}},
            "logging": {"driver": "json-file", "options": {"max-size": "1m"}}}},
        "networks": {"front": {}, "data": {"name": "custom_data"}},
        "volumes": {"db_data": {}},
    }
    spec = target(model).spec("api", "p_api_1", step_id="s1")
    body = spec.body
    assert body["Cmd"] == ["python3", "/app/main.py"]
    assert body["Env"] == ["A=1"]
    assert body["Labels"]["com.docker.compose.config-hash"] == "h4sh"
    assert body["Labels"]["com.docker.compose.service"] == "api"
    assert body["Labels"]["io.revivadiag.migrate.step"] == "s1"
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://127.0.0.1:8000/"],
                                   "Interval": 2_000_000_000, "Timeout": 3_000_000_000,
                                   "Retries": 5}
    assert body["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1",
                                                                "HostPort": "18000"}]}
    assert body["HostConfig"]["Binds"] == ["p_db_data:/data:rw", "/x/conf:/etc/conf:ro"]
    assert spec.networks == {"custom_data": ["api", "backend-api"], "p_front": ["api"]}
    assert "PortBindings" not in spec.without_ports().body["HostConfig"]


def test_compose_keys_the_switch_cannot_reproduce_are_named() -> None:
    model = {"services": {"api": {"image": "x", "secrets": ["s"], "links": ["db"]}}}
    with pytest.raises(StepError, match="links, secrets"):
        target(model).spec("api", "p_api_1")
    with pytest.raises(StepError, match="no service 'web'"):
        target(model).spec("web", "p_web_1")


def test_build_checks_kinds_and_parameters() -> None:
    assert set(KINDS) == {"readiness", "service.replace", "network.create", "network.connect",
                          "network.disconnect", "network.remove", "config.env", "proxy.reload",
                          "sql", "verify", "cleanup"}
    with pytest.raises(PlanError, match="needs 'service'"):
        build(StepSpec("x", "service.replace", {}))
    with pytest.raises(PlanError, match="must be a bool"):
        build(StepSpec("x", "service.replace", {"service": "db", "stateful": "yes"}))
    with pytest.raises(PlanError, match="takes no parameter 'colour'"):
        build(StepSpec("x", "network.remove", {"network": "n", "colour": "red"}))
    step = build(StepSpec("x", "network.connect", {"container": "c", "network": "n",
                                                   "aliases": ["a"]}))
    assert step.inverse({"container": "c", "network": "n", "aliases": None}) == {
        "container": "c", "network": "n", "restore_aliases": None}


def test_fingerprints_compare_tables_and_redis_sample() -> None:
    before = {"tables": {"public.users": {"rows": 2, "checksum": "a"},
                         "public.configuration_migrations": {"rows": 0, "checksum": ""}},
              "redis": {"keys": 3, "sample": {"k1": "h1", "k2": "h2"}}}
    same = json.loads(json.dumps(before))
    same["tables"]["public.configuration_migrations"] = {"rows": 5, "checksum": "z"}
    same["redis"]["keys"] = 4  # more keys (new sessions) is fine
    assert compare_fingerprints(before, same) == []
    worse = json.loads(json.dumps(before))
    worse["tables"].pop("public.users")
    worse["redis"] = {"keys": 1, "sample": {"k1": "other"}}
    assert compare_fingerprints(before, worse) == [
        "public.users: missing", "redis: 3 keys -> 1", "redis key k1: value differs",
        "redis key k2: missing"]
