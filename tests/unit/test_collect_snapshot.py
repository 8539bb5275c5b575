"""Snapshot: JSON records, write + load round trips (Parquet and CSV), CLI options."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from revivadiag.cli import build_parser
from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.env import parse_env
from revivadiag.collect.health_rules import docker_row
from revivadiag.collect.networks import parse_endpoints, parse_networks
from revivadiag.collect.pipeline import methods_used, scrub_columns
from revivadiag.collect.snapshot import FRAME_NAMES, Snapshot, SnapshotMeta, records
from revivadiag.errors import ParameterError
from revivadiag.redact import Scrubber
from revivadiag.schemas import to_frame, validate

DATA = json.loads((Path(__file__).parent / "data" / "docker_inspect_snapdev.json").read_text())
INSPECTS = DATA["containers"]


def _snapshot() -> Snapshot:
    """A snapshot built from the recorded inspect dicts plus hand-made probe rows."""
    snap = Snapshot.empty(project="snapdev")
    snap.meta = SnapshotMeta(project="snapdev", taken_at="2026-11-27T09:00:00+00:00",
                             duration_s={"inventory": 0.01}, notes=["a note"])
    snap.containers = parse_containers(INSPECTS, DATA["summaries"][:1], "snapdev")
    snap.networks = parse_networks(DATA["networks"])
    snap.endpoints = parse_endpoints(INSPECTS)
    snap.ports = parse_ports(INSPECTS)
    snap.env = parse_env(INSPECTS)
    snap.dns = to_frame("dns", [
        {"source": "snapdev_web_1", "source_service": "web", "query": "db",
         "query_kind": "service", "answers": ["172.19.0.2"], "rcode": "NOERROR",
         "latency_ms": 0.5, "method": "setns", "error_type": ""},
        {"source": "snapdev_web_1", "source_service": "web", "query": "nope",
         "query_kind": "other", "answers": [], "rcode": "NXDOMAIN", "latency_ms": None,
         "method": "setns", "error_type": "DNS_RESOLUTION_FAILED"}])
    snap.reachability = to_frame("reachability", [
        {"source": "a", "source_service": "a", "target": "b", "target_service": "b",
         "target_host": "b", "target_ip": "", "target_port": 5432, "outcome": "unresolvable",
         "connect_ms": None, "attempts": 1, "error_type": "DNS_RESOLUTION_FAILED",
         "error": "NXDOMAIN", "method": "setns"}])
    snap.health = to_frame("health", [docker_row(i, "x", Scrubber()) for i in INSPECTS])
    snap.roles = to_frame("roles", [
        {"service": "web", "role": "backend", "port": 3011, "ports": [3011, 9090],
         "software": "", "decided_by": "proxy", "evidence": "p forwards /api/ to web:3011",
         "confidence": "high", "ambiguous": False, "alternatives": "", "http_path": "/health"},
        {"service": "job", "role": "worker", "port": None, "ports": [], "decided_by": "traffic",
         "confidence": "medium", "ambiguous": False}])
    return snap


def test_every_frame_matches_its_schema() -> None:
    """All nine frames validate, empty or not."""
    for snap in (Snapshot.empty("p"), _snapshot()):
        for name, frame in snap.frames().items():
            validate(name, frame)


def test_to_json_is_json_safe() -> None:
    """Every frame name is a key; timestamps ISO, NA -> null, lists stay lists."""
    data = _snapshot().to_json()
    assert list(data) == list(FRAME_NAMES)
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    web = next(r for r in back["containers"] if r["name"] == "snapdev_web_1")
    assert web["started_at"].startswith("2026-11-27T09:07:01.240062")
    assert web["exposed_ports"] == ["3011/tcp"]
    removed = next(r for r in back["containers"] if r["state"] == "removed")
    assert removed["started_at"] is None and removed["restart_count"] is None
    assert back["dns"][1]["answers"] == [] and back["dns"][1]["latency_ms"] is None
    assert back["roles"][0]["ports"] == [3011, 9090]  # port numbers stay numbers
    assert back["roles"][1]["port"] is None


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_and_load_round_trip(tmp_path: Path, fmt: str) -> None:
    """load(write(snap)) gives equal frames and metadata."""
    snap = _snapshot()
    written = snap.write(tmp_path, format=fmt)
    names = sorted(p.name for p in written)
    assert names == sorted([f"{n}.{fmt}" for n in FRAME_NAMES] + ["meta.json", "snapshot.json"])
    loaded = Snapshot.load(tmp_path)
    assert loaded.meta == snap.meta
    for name, frame in snap.frames().items():
        pd.testing.assert_frame_equal(loaded[name], frame)
    assert json.loads((tmp_path / "snapshot.json").read_text()) == snap.to_json()


def test_csv_keeps_strings_that_look_like_missing(tmp_path: Path) -> None:
    """A value 'NA' or 'null' in a string column survives a CSV round trip."""
    snap = Snapshot.empty("p")
    snap.env = to_frame("env", [{"container": "c", "service": "s", "key": "K", "value": "NA",
                                 "is_sensitive": False}])
    snap.write(tmp_path, format="csv")
    assert Snapshot.load(tmp_path).env.iloc[0]["value"] == "NA"


def test_bad_format_and_missing_dir(tmp_path: Path) -> None:
    """Typed errors name the problem."""
    with pytest.raises(ParameterError, match="format"):
        Snapshot.empty().write(tmp_path, format="xlsx")
    with pytest.raises(ParameterError, match=r"meta\.json"):
        Snapshot.load(tmp_path / "nothing")


def test_getitem_and_records() -> None:
    """snap['dns'] is the frame; an unknown frame is a KeyError naming the frames."""
    snap = _snapshot()
    assert snap["dns"] is snap.dns
    with pytest.raises(KeyError, match="frames: containers"):
        snap["nope"]
    assert records("ports", snap.ports)[0]["host_port"] == 39011


def test_cli_options_parse() -> None:
    """The snapshot subcommand takes every documented option."""
    args = build_parser().parse_args([
        "snapshot", "--project", "p", "--out", "d", "--format", "csv", "--json", "-",
        "--docker-host", "tcp://127.0.0.1:2375", "--method", "exec", "--samples", "5"])
    assert (args.project, str(args.out), args.format, args.json_out, args.docker_hosts,
            args.method, args.samples) == ("p", "d", "csv", "-", ["tcp://127.0.0.1:2375"],
                                           "exec", 5)


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--method", "magic"],
                                  ["--format", "xlsx"]])
def test_cli_rejects_bad_options(argv: list[str]) -> None:
    """Bad option values are usage errors (exit 2)."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["snapshot", *argv])
    assert info.value.code == 2


def test_scrub_columns_masks_known_secrets_in_frames_and_attrs() -> None:
    """Free-text columns lose known secrets; raw samples riding in attrs too; dtypes kept."""
    health = to_frame("health", [{"service": "s", "check": "http", "status": "unhealthy",
                                  "detail": "auth pw-123456 failed"}])
    latency = to_frame("latency", [{"path": "direct", "url": "http://u:pw-123456@b/x"}])
    latency.attrs["samples"] = pd.DataFrame({"url": ["http://b/x"],
                                             "error": ["sent pw-123456"]})
    scrubber = Scrubber(["pw-123456"])
    got = scrub_columns(health, ("detail",), scrubber)
    assert got.iloc[0]["detail"] == "auth *** failed"
    validate("health", got)
    lat = scrub_columns(latency, ("url",), scrubber)
    assert lat.iloc[0]["url"] == "http://u:***@b/x"
    assert lat.attrs["samples"].iloc[0]["error"] == "sent ***"


def test_methods_used() -> None:
    """The probe methods that produced rows, first-seen order; host/api are not probe methods."""
    frames = {"dns": to_frame("dns", [{"method": "setns"}]),
              "health": to_frame("health", [{"method": "host"}, {"method": "exec"}])}
    assert methods_used(frames) == "setns,exec"


def test_an_older_snapshot_without_roles_loads(tmp_path: Path) -> None:
    """A directory written before the roles frame existed loads with an empty one."""
    snap = _snapshot()
    snap.write(tmp_path, format="csv")
    (tmp_path / "roles.csv").unlink()
    loaded = Snapshot.load(tmp_path)
    assert loaded.roles.empty and list(loaded.roles.columns) == list(snap.roles.columns)
