"""The networks, endpoints and env frames, parsed from recorded inspect dicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revivadiag.collect.env import parse_env, parse_env_rows
from revivadiag.collect.networks import (
    dns_names,
    first_ipv4_config,
    parse_endpoints,
    parse_networks,
)
from revivadiag.redact import MASK, project_scrubber, raw_env
from revivadiag.schemas import validate

DATA = json.loads((Path(__file__).parent / "data" / "docker_inspect_snapdev.json").read_text())
WEB, DB, WORKER = DATA["containers"]


def test_networks_frame() -> None:
    """Driver, first IPv4 subnet, gateway, internal flag and project label."""
    frame = parse_networks(DATA["networks"])
    validate("networks", frame)
    back = frame.set_index("name").loc["snapdev_back"]
    assert (back["driver"], back["subnet"], back["gateway"]) == (
        "bridge", "172.19.0.0/16", "172.19.0.1")
    assert bool(back["internal"]) is True
    assert back["project"] == "snapdev"


def test_first_ipv4_config_skips_ipv6() -> None:
    """An IPv6 subnet listed first is skipped."""
    net = {"IPAM": {"Config": [{"Subnet": "fd00::/64"}, {"Subnet": "10.1.0.0/24",
                                                         "Gateway": "10.1.0.1"}]}}
    assert first_ipv4_config(net) == ("10.1.0.0/24", "10.1.0.1")


def test_endpoints_frame() -> None:
    """One row per container x network, with aliases and resolvable names."""
    frame = parse_endpoints([WEB, DB, WORKER])
    validate("endpoints", frame)
    web = frame[(frame["container"] == "snapdev_web_1") & (frame["network"] == "snapdev_back")]
    row = web.iloc[0]
    assert row["ipv4"] == "172.19.0.3"
    assert set(row["aliases"]) == {"web", WEB["Id"][:12]}
    assert row["dns_names"] == ["snapdev_web_1", *row["aliases"]]
    db = frame[frame["container"] == "snapdev_db_1"].iloc[0]
    assert "postgres-alias" in db["dns_names"] and "db" in db["dns_names"]


def test_stopped_container_has_no_dns_names() -> None:
    """Docker's resolver answers nothing for a stopped container."""
    frame = parse_endpoints([WORKER])
    assert frame.iloc[0]["dns_names"] == []
    assert frame.iloc[0]["ipv4"] == ""


@pytest.mark.parametrize(
    ("network", "running", "expected"),
    [
        ("p_net", True, ["c", "svc", "0123456789ab"]),
        ("bridge", True, []),
        ("host", True, []),
        ("p_net", False, []),
    ],
)
def test_dns_names(network: str, running: bool, expected: list[str]) -> None:
    """Name, aliases and short id, deduplicated; none on built-in networks."""
    got = dns_names("c", "0123456789abcdef", network, ["svc", "0123456789ab"], running)
    assert got == expected


def test_env_redaction_from_recorded_inspect() -> None:
    """*_PASSWORD masked, URL credentials masked, plain values kept, flags set."""
    frame = parse_env([WEB, DB, WORKER], "snapdev")
    validate("env", frame)
    env = {(r.container, r.key): (r.value, r.is_sensitive) for r in frame.itertuples()}
    assert env[("snapdev_web_1", "DATABASE_PASSWORD")] == (MASK, True)
    assert env[("snapdev_web_1", "DATABASE_URL")] == (f"postgresql://app:{MASK}@db:5432/app", True)
    assert env[("snapdev_web_1", "PLAIN")] == ("hello", False)
    assert env[("snapdevtmp-worker-1", "API_TOKEN")] == (MASK, True)


def test_secret_seen_elsewhere_is_scrubbed_from_other_values() -> None:
    """A known password inside an innocent-looking variable is masked too."""
    frame = parse_env([WEB, WORKER])
    row = frame[frame["key"] == "REDIS_ARGS"].iloc[0]
    assert (row["value"], bool(row["is_sensitive"])) == (f"--requirepass {MASK}", True)


def test_no_secret_value_in_env_frame() -> None:
    """None of the recorded fake secrets appears anywhere in the frame."""
    text = parse_env([WEB, DB, WORKER]).to_json()
    for secret in ("devsecretpw", "devurlpw", "tok-abcdef"):
        assert secret not in text


def test_project_scrubber_and_raw_env() -> None:
    """The scrubber learns sensitive values and URL passwords; raw_env keeps them (memory)."""
    scrubber = project_scrubber([WEB])
    assert scrubber.scrub("x devsecretpw devurlpw") == f"x {MASK} {MASK}"
    assert raw_env(WEB)["DATABASE_PASSWORD"] == "devsecretpw"


def test_env_rows_keep_equals_signs_and_bare_keys() -> None:
    """`A=b=c` keeps `b=c`; a bare key has an empty value."""
    rows = parse_env_rows("c", "s", ["A=b=c", "BARE"])
    assert [(r["key"], r["value"]) for r in rows] == [("A", "b=c"), ("BARE", "")]
