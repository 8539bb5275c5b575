"""Several engines at once, and Swarm, against a real second dockerd on this machine.

The second engine (:class:`engines_support.SecondEngine`) gets the lab's images copied from the
shared engine (``docker save | docker load``). The shared engine is never put into Swarm mode:
only the second one is, inside the ``swarm_engine`` fixture, which always leaves Swarm mode
and removes ``docker_gwbridge`` again.
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
from engines_support import SecondEngine, Sshd, free_port, lab_on, second_engine, swarm_mode

import revivadiag as rd
from revivadiag.analyze.diagnosis import diagnose
from revivadiag.analyze.swarm import lb_findings, swarm_findings
from revivadiag.engine.engines import EngineSpec
from revivadiag.lab import LabInstance
from revivadiag.lab.compose import compose_env, compose_files
from revivadiag.lab.config import LabConfig
from revivadiag.lab.images import base_tag, stack_images
from revivadiag.lab.state import generate_secrets
from revivadiag.lab.swarm import stack_deploy, stack_rm, write_swarm_ready

pytestmark = pytest.mark.integration
DEPLOY_WAIT_S = 180.0


@pytest.fixture(scope="module")
def second(lab_images: object) -> Iterator[SecondEngine]:
    """A private dockerd with the seed stack's images and the probe image."""
    with second_engine([*stack_images(LabConfig().stack), base_tag()]) as eng:
        yield eng


@pytest.fixture(scope="module")
def second_lab(second: SecondEngine, lab_current: LabInstance) -> Iterator[LabConfig]:
    """The `current` lab under the same project name as ``lab_current``, on the second
    engine (no published port: the shared lab holds them)."""
    with lab_on(second, lab_current.prefix) as config:
        yield config


@pytest.fixture(scope="module")
def sshd(second: SecondEngine) -> Iterator[Sshd]:
    """OpenSSH's sshd on 127.0.0.1 whose sessions reach the second engine."""
    root = Path(f"/tmp/rdt{secrets.token_hex(4)}")
    server = Sshd(root, docker_host=second.unix_url).start()
    try:
        yield server
    finally:
        server.stop()


SHARED = "unix:///var/run/docker.sock"


def test_two_engines_over_tcp(second: SecondEngine, second_lab: LabConfig,
                              lab_current: LabInstance) -> None:
    """The shared engine and the second one over tcp://: one set of frames, two engines."""
    snap = rd.snapshot(project=lab_current.prefix, engines=[SHARED, second.tcp_url], samples=2)
    assert list(snap.engines["engine"]) == [SHARED, second.tcp_url]
    assert set(snap.engines["status"]) == {"ok"}
    assert snap.containers.groupby("engine")["name"].apply(sorted).to_dict() == {
        SHARED: sorted(lab_current.containers.values()),
        second.tcp_url: sorted(lab_current.containers.values())}
    for name in ("dns", "reachability", "health"):
        assert set(snap[name]["engine"]) == {SHARED, second.tcp_url}, name
    # the second engine's own addresses are in its rows, not the shared engine's
    ips = snap.endpoints.groupby("engine")["ipv4"].apply(set).to_dict()
    assert not ips[SHARED] & ips[second.tcp_url]
    assert all(ip.startswith(second.pool.split(".0.0/")[0] + ".") for ip in ips[second.tcp_url])


def test_two_engines_one_over_ssh(second: SecondEngine, second_lab: LabConfig, sshd: Sshd,
                                  lab_current: LabInstance) -> None:
    """ssh:// through a real sshd: one connection for the whole snapshot, sidecar probes."""
    url, config = sshd.client_config()
    before = sshd.connections()
    snap = rd.snapshot(project=lab_current.prefix, samples=2,
                       engines=[SHARED, EngineSpec(url, ssh_config=config)])
    assert list(snap.engines["status"]) == ["ok", "ok"], snap.engines["error"].tolist()
    remote = snap.engines[snap.engines["engine"] == url].iloc[0]
    assert (bool(remote["local"]), remote["method"]) == (False, "sidecar")
    assert sorted(snap.containers[snap.containers["engine"] == url]["name"]) == sorted(
        lab_current.containers.values())
    probed = snap.dns[snap.dns["engine"] == url]
    assert len(probed) and set(probed["method"]) == {"sidecar"}
    assert (probed["rcode"] == "NOERROR").any()
    assert sshd.connections() - before == 1  # one SSH connection, many channels


def test_engine_that_does_not_answer_is_rows(lab_current: LabInstance) -> None:
    """A dead engine among several gives an `engines` row and a finding, not an abort."""
    dead = f"tcp://127.0.0.1:{free_port()}"
    snap = rd.snapshot(project=lab_current.prefix, engines=[SHARED, dead], samples=2)
    rows = snap.engines.set_index("engine")
    assert (rows.loc[SHARED, "status"], rows.loc[dead, "status"]) == ("ok", "unreachable")
    assert "no Docker Engine answers" in rows.loc[dead, "error"]
    assert set(snap.containers["engine"]) == {SHARED}
    assert [f[0] for f in swarm_findings(snap)] == ["RD-ENG-001"]


def test_cli_snapshot_two_engines_json(second: SecondEngine, second_lab: LabConfig, sshd: Sshd,
                                       lab_current: LabInstance) -> None:
    """`revivadiag snapshot --docker-host A --docker-host ssh://B --ssh-config F --json -`."""
    url, config = sshd.client_config()
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "snapshot", "--project", lab_current.prefix,
         "--docker-host", SHARED, "--docker-host", url, "--ssh-config", str(config),
         "--samples", "2", "--json", "-"], capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-800:]
    data = json.loads(proc.stdout)
    assert {r["engine"] for r in data["containers"]} == {SHARED, url}
    assert [r["status"] for r in data["engines"]] == ["ok", "ok"]


# --- Swarm -------------------------------------------------------------------------------


@pytest.fixture
def swarm_engine(second: SecondEngine) -> Iterator[SecondEngine]:
    """The second engine as a single-node swarm for one test; always left again."""
    with swarm_mode(second) as engine:
        yield engine


def _deploy(engine: SecondEngine, mode: str, tmp: Path) -> str:
    stack = f"rdt{secrets.token_hex(4)}"
    config = LabConfig(prefix=stack, variant="current")
    spec = write_swarm_ready(compose_files("current", "development"), tmp / "stack.yml", mode)
    stack_deploy(stack, spec, compose_env(config, generate_secrets()), engine.unix_url)
    return stack


def _wait_tasks(engine: SecondEngine, stack: str, services: set[str]) -> None:
    """Until a task of each of ``services`` runs (and is healthy)."""
    client = engine.client()
    deadline = time.monotonic() + DEPLOY_WAIT_S
    while time.monotonic() < deadline:
        up = {c.labels.get("com.docker.swarm.service.name", "").removeprefix(stack + "_")
              for c in client.containers.list(filters={"label": f"com.docker.stack.namespace="
                                                               f"{stack}"})
              if c.attrs["State"].get("Health", {}).get("Status", "healthy") == "healthy"}
        if services <= up:
            return
        time.sleep(1)
    state = engine.docker("stack", "ps", "--no-trunc", "--format",
                          "{{.Name}} {{.CurrentState}} {{.Error}}", stack, check=False).stdout
    raise AssertionError(f"{stack}: {services} not all running:\n{state[-1500:]}")


def test_swarm_vip_mode_without_ipvs(swarm_engine: SecondEngine, tmp_path: Path) -> None:
    """VIP mode on this kernel: VIPs answer nothing, tasks do; findings say why and what to do."""
    stack = _deploy(swarm_engine, "vip", tmp_path)
    try:
        _wait_tasks(swarm_engine, stack, {"database", "redis"})
        time.sleep(3)  # the backend's first task starts meanwhile
        snap = rd.snapshot(project=stack, docker_host=swarm_engine.unix_url, samples=2)
        svc = snap.swarm_services.set_index("service")
        assert set(svc["endpoint_mode"]) == {"vip"}
        assert all(len(v) == 1 for v in svc["vips"])
        assert snap.engines.iloc[0]["swarm_state"] == "active"
        assert bool(snap.engines.iloc[0]["manager"])
        dns = snap.dns[snap.dns["query_kind"].isin(["swarm_service", "swarm_tasks"])]
        db_vip = svc.loc["database", "vips"][0].rsplit(":", 1)[1].split("/")[0]
        by_query = {q: set(g["answers"].sum()) for q, g in dns.groupby("query")}
        shown = dns[["source_service", "query", "answers", "rcode", "error"]].to_string()
        assert by_query["database"] == {db_vip}, shown
        task_ips = {a.rsplit(":", 1)[1].split("/")[0] for a in snap.swarm_tasks[
            (snap.swarm_tasks["service"] == "database")
            & (snap.swarm_tasks["state"] == "running")]["addresses"].sum()}
        assert by_query["tasks.database"] == task_ips
        reach = snap.reachability  # a frontend task that exits meanwhile gives CONTAINER_NOT_FOUND
        reach = reach[reach["error_type"] != "CONTAINER_NOT_FOUND"]
        to_vip = reach[reach["target_ip"] == db_vip]
        to_task = reach[reach["target_host"] == "tasks.database"]
        assert len(to_vip) and set(to_vip["outcome"]) != {"open"}
        assert len(to_task) and set(to_task["outcome"]) == {"open"}
        found = diagnose(snap, live=False).findings.set_index("id")
        assert "RD-SWM-001" in found.index
        assert "no IPVS" in found.loc["RD-SWM-001", "evidence"]
        assert "endpoint_mode: dnsrr" in found.loc["RD-SWM-001", "remediation"]
        # the node's view of the network holds exactly the tasks the manager runs
        assert not [f for f in lb_findings(snap.swarm_lb, snap.swarm_tasks)
                    if f[0] == "RD-SWM-003"]
    finally:
        stack_rm(stack, swarm_engine.unix_url)


def test_swarm_dnsrr_mode(swarm_engine: SecondEngine, tmp_path: Path) -> None:
    """dnsrr: no VIP, the service name answers the tasks, every replica runs, no VIP finding."""
    stack = _deploy(swarm_engine, "dnsrr", tmp_path)
    try:
        _wait_tasks(swarm_engine, stack, {"database", "redis", "backend", "frontend"})
        snap = rd.snapshot(project=stack, docker_host=swarm_engine.unix_url, samples=2)
        svc = snap.swarm_services.set_index("service")
        assert set(svc["endpoint_mode"]) == {"dnsrr"}
        assert all(v == [] for v in svc["vips"])
        assert (svc["replicas_running"] == svc["replicas_desired"]).all()
        dns = snap.dns[snap.dns["query_kind"] == "swarm_service"]
        db = dns[dns["query"] == "database"]
        running_db = snap.swarm_tasks[(snap.swarm_tasks["service"] == "database")
                                      & (snap.swarm_tasks["state"] == "running")]
        ips = {a.rsplit(":", 1)[1].split("/")[0] for a in running_db["addresses"].sum()}
        assert set(db["answers"].sum()) == ips
        tasks_rows = snap.reachability[snap.reachability["target_host"].str.startswith("tasks.")]
        assert len(tasks_rows) and set(tasks_rows["outcome"]) == {"open"}
        ids = set(swarm_findings(snap))
        assert not {f for f in ids if f[0] in ("RD-SWM-001", "RD-SWM-002")}
        # cross-check on real data of two moments: the view before a forced update still
        # lists the replaced task (stale), the tasks after it are missing from that view
        before = snap.swarm_lb
        swarm_engine.docker("service", "update", "--force", "--detach", f"{stack}_redis")
        _wait_replaced(swarm_engine, stack, "redis", set(before[before["service"] == "redis"]
                                                         ["task_id"]))
        after = rd.snapshot(project=stack, docker_host=swarm_engine.unix_url, samples=1)
        kinds = [f[0] for f in lb_findings(before, after.swarm_tasks) if "redis" in f[1]]
        assert kinds.count("RD-SWM-003") == 1 and kinds.count("RD-SWM-004") == 1
        assert not [f for f in lb_findings(after.swarm_lb, after.swarm_tasks) if "redis" in f[1]]
    finally:
        stack_rm(stack, swarm_engine.unix_url)


def _wait_replaced(engine: SecondEngine, stack: str, service: str, old: set[str]) -> None:
    deadline = time.monotonic() + DEPLOY_WAIT_S
    while time.monotonic() < deadline:
        out = engine.docker("service", "ps", "--filter", "desired-state=running", "--format",
                            "{{.ID}} {{.CurrentState}}", "--no-trunc", f"{stack}_{service}")
        rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip()]
        if rows and all(r[0] not in old and r[1] == "Running" for r in rows):
            time.sleep(2)
            return
        time.sleep(1)
    raise AssertionError(f"{stack}_{service} was not replaced")
