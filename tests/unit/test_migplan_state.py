"""Pure parts of the live state (parsing, hashing, fingerprint, diffs) and of the planner."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from revivadiag.migrate.planner import (
    ServiceChange,
    _env_changes,
    _volume_specs,
    default_name,
    replacement_order,
)
from revivadiag.migrate.state import (
    ProjectState,
    diff_parts,
    diff_states,
    parse_container,
    parse_network,
)

SALT = b"s" * 32


def inspect(name: str = "p_new_db", env: list[str] | None = None, ip: str = "10.0.0.2",
            ident: str = "abcdef1234567890", health: str = "healthy") -> dict[str, Any]:
    """A container inspect dict as the engine gives it."""
    return {
        "Name": f"/{name}", "Id": ident, "Image": "sha256:img",
        "Config": {"Env": env if env is not None else ["DB_PASSWORD=hunter2!", "HOST=db"],
                   "Labels": {"com.docker.compose.service": "db",
                              "com.docker.compose.project": "p"},
                   "Image": "pg:15", "Healthcheck": {"Test": ["CMD", "true"]}},
        "State": {"Status": "running", "Health": {"Status": health}},
        "NetworkSettings": {"Networks": {"p_net": {"Aliases": ["db", ident[:12]],
                                                   "IPAddress": ip, "NetworkID": "n1"}}},
        "Mounts": [{"Type": "volume", "Name": "p_data", "Destination": "/data", "RW": True},
                   {"Type": "bind", "Source": "/srv/conf", "Destination": "/conf",
                    "RW": False}],
    }


def state(*containers: dict[str, Any]) -> ProjectState:
    net = parse_network({"Name": "p_net", "Id": "n1", "Driver": "bridge",
                         "Labels": {"com.docker.compose.project": "p"}})
    return ProjectState("p", [parse_container(c, SALT) for c in containers], [net], [])


def test_no_secret_value_is_kept() -> None:
    """Environment values are keyed hashes: the password appears nowhere in the state."""
    s = state(inspect())
    text = json.dumps(s.to_dict()) + s.frames()["env"].to_json()
    assert "hunter2" not in text
    assert sorted(s.containers[0].env) == ["DB_PASSWORD", "HOST"]
    assert s.containers[0].has_healthcheck and s.containers[0].volumes == ["p_data"]
    assert s.containers[0].networks["p_net"].aliases == ["db"]  # the short-id alias dropped


def test_fingerprint_ignores_ids_addresses_and_health() -> None:
    """A recreated container (new id, new IP, starting) with the same config: same print."""
    a = state(inspect())
    b = state(inspect(ip="10.0.0.9", ident="fedcba0987654321", health="starting"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint().startswith("sha256:") and len(a.fingerprint()) == 71


@pytest.mark.parametrize("changed", [
    {"env": ["DB_PASSWORD=other", "HOST=db"]},
    {"env": ["DB_PASSWORD=hunter2!"]},
    {"name": "p_db"},
])
def test_fingerprint_follows_what_a_plan_depends_on(changed: dict[str, Any]) -> None:
    """A changed secret value, a dropped variable or a rename change the fingerprint."""
    a, b = state(inspect()), state(inspect(**changed))
    assert a.fingerprint() != b.fingerprint()
    assert diff_parts(a.fingerprint_parts(), b.fingerprint_parts())


def test_diff_shows_a_rename_as_one_field() -> None:
    """A service's container renamed: one row 'name', keyed by the service."""
    rows = diff_states(state(inspect()), state(inspect(name="p_db")))
    assert rows[["object", "field", "before", "after"]].values.tolist() == [
        ["container db", "name", "p_new_db", "p_db"]]
    assert diff_states(state(inspect()), state(inspect())).empty


def test_state_round_trips_through_json() -> None:
    """to_dict / from_dict keep everything (the journal stores states as JSON)."""
    s = state(inspect())
    again = ProjectState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.fingerprint() == s.fingerprint()


def test_frames_have_their_columns() -> None:
    """Every frame carries its documented columns, one row per fact."""
    frames = state(inspect()).frames()
    assert list(frames["mounts"]["destination"]) == ["/data", "/conf"]
    assert list(frames["endpoints"]["network"]) == ["p_net"]
    assert list(frames["networks"]["name"]) == ["p_net"]
    assert frames["volumes"].empty and list(frames["volumes"].columns) == ["name", "driver"]


def test_replacement_order_follows_depends_on_then_roles() -> None:
    """What is depended on first; without depends_on, stores first and the proxy last."""
    ch = [ServiceChange(s, r, s, s, r in ("database", "cache")) for s, r in
          [("edge", "proxy"), ("app", "backend"), ("pg", "database"), ("kv", "cache"),
           ("jobs", "worker")]]
    assert [c.service for c in replacement_order(ch, {})] == ["kv", "pg", "app", "jobs", "edge"]
    # depends_on wins over the role rank (here a store depends on an app)
    got = [c.service for c in replacement_order(ch, {"kv": ["app"], "app": ["pg"]})]
    assert got.index("pg") < got.index("app") < got.index("kv")


def test_default_names_follow_the_compose_cli() -> None:
    """Compose v1 names p_svc_N, v2 p-svc-N."""
    assert default_name("p", "api", "docker-compose 1.29.2", 2) == "p_api_2"
    assert default_name("p", "api", "docker compose 2.24.6") == "p-api-1"


def test_env_changes_compare_secrets_only_by_presence() -> None:
    """Redacted values compare equal; added, dropped and changed plain values are named."""
    live = {"PATH": "/bin", "DB_PASSWORD": "x", "HOST": "old", "GONE": "1"}
    image = {"PATH": "/bin"}
    target = {"DB_PASSWORD": "***", "HOST": "new", "NEW": None}
    assert _env_changes(live, image, target) == [
        "environment: sets NEW", "environment: drops GONE", "environment: changes HOST"]
    assert _env_changes({"PATH": "/bin", "A": "1"}, image, {"A": "1"}) == []


def test_volume_specs_name_volumes_as_the_engine_does() -> None:
    """A named volume gets its engine name, a bind keeps its source."""
    spec = {"volumes": ["data:/var/lib/x:rw", "/srv/a.conf:/etc/a.conf:ro",
                        {"type": "volume", "source": "logs", "target": "/logs"}]}
    assert _volume_specs(spec, "p", {"data": {}, "logs": {"name": "shared_logs"}}) == {
        ("volume", "p_data", "/var/lib/x"), ("bind", "/srv/a.conf", "/etc/a.conf"),
        ("volume", "shared_logs", "/logs")}


def test_diff_parts_names_each_change() -> None:
    """Gone, new and changed objects, sorted."""
    a = {"container x": "1", "network n": "2", "project": "p"}
    b = {"container x": "9", "project": "p", "volume v": "3"}
    assert diff_parts(a, b) == ["container x changed", "network n is gone", "volume v is new"]
    assert diff_parts(a, dict(a)) == []


def test_replace_helper_is_dataclass_replace() -> None:
    """ContainerState is a frozen dataclass (copies via dataclasses.replace)."""
    c = state(inspect()).containers[0]
    assert replace(c, status="exited").planned()["running"] is False
