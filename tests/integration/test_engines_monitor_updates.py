"""On a second dockerd of this machine: ``revivadiag monitor`` over two engines and a dead one,
and a single-node Swarm stack whose ``start-first`` updates hurt (RD-SWM-007) and whose
client holds connections to a VIP and to a task (the ``connections`` frame).

The shared engine is never put into Swarm mode (:func:`engines_support.swarm_mode` leaves it
again on the second engine, whatever happens).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from engines_support import SecondEngine, Sshd, free_port, lab_on, second_engine, swarm_mode

import revivadiag as rd
from revivadiag.analyze.diagnosis import diagnose
from revivadiag.analyze.swarm import idle_pools, mtu_findings, update_order_findings
from revivadiag.collect.swarm_step import interface_mtu
from revivadiag.engine.engines import EngineSpec
from revivadiag.engine.hostnet import host_interfaces
from revivadiag.engine.netprobe.ifaces import interfaces
from revivadiag.lab import LabInstance
from revivadiag.lab.config import LabConfig
from revivadiag.lab.images import base_tag, service_tag, stack_images
from revivadiag.lab.swarm import stack_deploy, stack_rm
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration
SHARED = "unix:///var/run/docker.sock"
WAIT_S = 120.0
IMAGE = service_tag("redis")  # Redis with its append-only file in /data; python3 inside


@pytest.fixture(scope="module")
def second(lab_images: object) -> Iterator[SecondEngine]:
    """A private dockerd holding the seed stack's images."""
    with second_engine([*stack_images(LabConfig().stack), base_tag()]) as eng:
        yield eng


# --- monitor over several engines --------------------------------------------------------


def test_monitor_two_engines_and_a_dead_one(second: SecondEngine,
                                            lab_current: LabInstance) -> None:
    """`monitor --docker-host A --docker-host B --docker-host DEAD --json`: every service on
    both engines, each row naming its engine; the dead engine is a row saying so."""
    dead = f"tcp://127.0.0.1:{free_port()}"
    with lab_on(second, lab_current.prefix):
        proc = subprocess.run(
            [sys.executable, "-m", "revivadiag", "monitor", "--project", lab_current.prefix,
             "--docker-host", SHARED, "--docker-host", second.tcp_url, "--docker-host", dead,
             "--interval", "1", "--duration", "2", "--timeout", "3", "--json"],
            capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    cycles = [e for e in events if e["event"] == "cycle"]
    assert len(cycles) >= 2
    last = cycles[-1]["services"]
    services = set(lab_current.containers)
    for engine in (SHARED, second.tcp_url):
        rows = {r["service"]: r["status"] for r in last if r["engine"] == engine}
        assert set(rows) == services, (engine, last)
        assert set(rows.values()) <= {"healthy", "degraded"}, (engine, rows)
    [down] = [r for r in last if r["engine"] == dead]
    assert (down["service"], down["status"]) == ("", "unknown")
    assert down["detail"].startswith("engine unreachable")
    changes = [e for e in events if e["event"] == "status_change"]
    assert {e["engine"] for e in changes} == {SHARED, second.tcp_url}
    [summary] = [e for e in events if e["event"] == "summary"]
    assert {(r["engine"], r["service"]) for r in summary["services"]} == {
        (e, s) for e in (SHARED, second.tcp_url) for s in services}


def test_monitor_no_engine_answers_is_exit_2(lab_current: LabInstance) -> None:
    """Only dead engines: the tool failed (exit 2), naming the address."""
    dead = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "monitor", "--project", lab_current.prefix,
         "--docker-host", dead, "--interval", "1", "--duration", "1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and dead.split("//")[1] in proc.stderr, proc.stderr[-500:]


# --- Swarm: start-first updates, and connections to a VIP --------------------------------

CLIENT = """
import socket, time
held = None
while held is None:
    try:
        held = socket.create_connection(("tasks.cache", 6379), timeout=2)
    except OSError:
        time.sleep(1)
while True:
    try:
        socket.create_connection(("cache", 6379), timeout=30)
        time.sleep(3600)
    except OSError:
        pass
"""
HEALTHCHECK = ["CMD", "python3", "-c",
               "import socket; socket.create_connection(('127.0.0.1', 6379), 1)"]


def _stack_file(path: Path) -> Path:
    """cache: start-first, no healthcheck, its AOF on a volume (both harms); safe:
    start-first with a healthcheck, no volume; plain: stop-first on a volume; client: holds
    one connection to a task of cache and tries its VIP."""
    env = {"REDIS_PASSWORD": "rdt-not-a-secret"}
    start_first = {"update_config": {"order": "start-first"}}
    spec = {"version": "3.8", "services": {
        "cache": {"image": IMAGE, "environment": env, "volumes": ["cachedata:/data"],
                  "deploy": start_first},
        "safe": {"image": IMAGE, "environment": env, "deploy": start_first,
                 "healthcheck": {"test": HEALTHCHECK, "interval": "2s"}},
        "plain": {"image": IMAGE, "environment": env, "volumes": ["plaindata:/data"]},
        "client": {"image": IMAGE, "entrypoint": ["python3", "-c", CLIENT]}},
        "volumes": {"cachedata": {}, "plaindata": {}}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _converged(engine: SecondEngine, stack: str, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        reps = engine.docker("service", "ls", "--filter", f"label=com.docker.stack.namespace="
                             f"{stack}", "--format", "{{.Replicas}}").stdout.split()
        if len(reps) == count and all(r.split("/")[0] == r.split("/")[1] for r in reps):
            time.sleep(3)  # the client's first connect, the healthcheck's first run
            return
        time.sleep(1)
    raise AssertionError(f"{stack} did not converge: {reps}")


def _two_running_at_once(engine: SecondEngine, stack: str, service: str) -> set[str]:
    """Force an update of ``service`` and watch its containers: the ids seen running at the
    same moment (two during a start-first update), and the volumes they mount."""
    client = engine.client()
    engine.docker("service", "update", "--force", "--detach", f"{stack}_{service}")
    label = f"com.docker.swarm.service.name={stack}_{service}"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        running = client.containers.list(filters={"label": label})
        if len(running) >= 2:
            return {m.get("Name", "") for c in running for m in c.attrs["Mounts"]}
        time.sleep(0.05)
    return set()


@pytest.fixture
def swarm_stack(second: SecondEngine, tmp_path: Path) -> Iterator[tuple[SecondEngine, str]]:
    """The stack of :func:`_stack_file` deployed on the second engine in Swarm mode."""
    with swarm_mode(second) as engine:
        stack = f"rdt{secrets.token_hex(4)}"
        stack_deploy(stack, _stack_file(tmp_path / "stack.yml"), {}, engine.unix_url)
        try:
            _converged(engine, stack, 4)
            yield engine, stack
        finally:
            stack_rm(stack, engine.unix_url)


def test_start_first_updates_and_vip_connections(swarm_stack: tuple[SecondEngine, str]) -> None:
    """RD-SWM-007 names cache (no healthcheck, a volume) and neither safe nor plain; forcing an
    update really runs two cache tasks on one volume. The client's connection to a task is in
    the connections frame, its attempt at the VIP too (SYN_SENT: no IPVS here)."""
    engine, stack = swarm_stack
    snap = rd.snapshot(project=stack, docker_host=engine.unix_url, samples=1)
    svc = snap.swarm_services.set_index("service")
    assert svc.loc["cache", "update_order"] == "start-first"
    assert svc.loc["plain", "update_order"] == "stop-first"
    assert bool(svc.loc["safe", "healthcheck"]) and pd_na(svc.loc["cache", "healthcheck"])
    assert svc.loc["cache", "mounts"] == [f"volume:{stack}_cachedata:/data"]
    roles = dict(zip(snap.roles["service"], snap.roles["role"], strict=True))
    found = update_order_findings(snap.swarm_services, snap.containers, roles)
    assert [f[1].split(":")[0] for f in found] == [f"cache ({roles['cache']})"], found
    assert "no healthcheck" in found[0][1] and f"{stack}_cachedata" in found[0][1]
    findings = diagnose(snap, live=False).findings.set_index("id")
    assert "RD-SWM-007" in findings.index
    assert "order: stop-first" in findings.loc["RD-SWM-007", "remediation"]

    conns = snap.connections
    validate("connections", conns)
    mine = conns[(conns["service"] == "client") & (conns["peer_service"] == "cache")]
    vip = svc.loc["cache", "vips"][0].rsplit(":", 1)[1].split("/")[0]
    held = mine[mine["state"] == "ESTABLISHED"]
    assert len(held) == 1 and held["peer_kind"].iloc[0] == "container"
    assert held["peer_ip"].iloc[0] != vip and not bool(held["keepalive"].iloc[0])
    pending = mine[mine["peer_kind"] == "vip"]
    assert set(pending["peer_ip"]) == {vip} and set(pending["state"]) == {"SYN_SENT"}
    pools = idle_pools(conns).set_index(["service", "peer_service"])
    assert pools.loc[("client", "cache"), "unguarded"] == 1

    volumes = _two_running_at_once(engine, stack, "cache")
    assert volumes == {f"{stack}_cachedata"}, "no moment with two cache tasks on the volume"


def pd_na(value: object) -> bool:
    """True for a missing value (the spec says nothing about a healthcheck)."""
    import pandas as pd

    return bool(pd.isna(value))


# --- path MTU of a remote engine ---------------------------------------------------------


def _default_address() -> str:
    """The IPv4 address of the interface holding this host's default route (127.0.0.1 when
    there is none)."""
    out = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True,
                         text=True, check=False).stdout.split()
    dev = out[out.index("dev") + 1] if "dev" in out else "lo"
    return next((i["ipv4"] for i in interfaces() if i["name"] == dev and i["ipv4"]),
                "127.0.0.1")


def test_path_mtu_of_a_remote_engine(second: SecondEngine, tmp_path: Path) -> None:
    """A host-network sidecar reads the engine host's interfaces (the same as read here: the
    second engine runs on this host); over ssh:// the snapshot's engines row gets the MTU of
    the node address's interface that way, and an overlay too large for it is RD-SWM-006."""
    client = second.client()
    there, why = host_interfaces(client)
    assert why == ""
    here = {i["name"]: (i["mtu"], i["ipv4"]) for i in interfaces()}
    assert {i["name"]: (i["mtu"], i["ipv4"]) for i in there if i["name"] in ("lo", "eth0")} \
        == {k: v for k, v in here.items() if k in ("lo", "eth0")}
    assert not client.containers.list(all=True, filters={"name": "rdhostnet"})  # removed

    addr = _default_address()
    want = interface_mtu(addr)
    sshd = Sshd(Path(f"/tmp/rdt{secrets.token_hex(4)}"), docker_host=second.unix_url).start()
    try:
        url, config = sshd.client_config()
        with swarm_mode(second, advertise=addr):
            stack = f"rdt{secrets.token_hex(4)}"
            spec = {"version": "3.8", "services": {"cache": {
                "image": IMAGE, "environment": {"REDIS_PASSWORD": "rdt-not-a-secret"}}}}
            path = tmp_path / "mtu.yml"
            path.write_text(yaml.safe_dump(spec))
            stack_deploy(stack, path, {}, second.unix_url)
            try:
                _converged(second, stack, 1)
                snap = rd.snapshot(project=stack, samples=1,
                                   engines=[EngineSpec(url, ssh_config=config)])
            finally:
                stack_rm(stack, second.unix_url)
    finally:
        sshd.stop()
    row = snap.engines.iloc[0]
    assert (bool(row["local"]), row["node_addr"]) == (False, addr), row.to_dict()
    assert want is not None and row["host_mtu"] == want, snap.meta.notes
    overlays = snap.networks[snap.networks["driver"] == "overlay"]
    assert len(overlays) == 1
    found = mtu_findings(snap.networks, snap.engines)
    assert bool(found) == (want < 1450 + 50), found
