"""A two-node Swarm on this machine: the second node's dockerd runs in a network namespace of
its own (``nsenter --net``), joined to the first over a veth pair, so each node has its own
gossip port (7946) and VXLAN endpoint as on two hosts.

``ip netns exec`` cannot be used: it remounts /sys in a new mount namespace and dockerd then
finds no cgroup mounts ("Devices cgroup isn't mounted"); ``nsenter --net`` changes only the
network namespace. Taking the link down partitions the nodes, as a blocked gossip port does:
the manager moves on, the worker's view of the network goes stale, and the cross-check of each
node's endpoints against the manager's tasks reports it.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines_support import SecondEngine, free_pool, free_port

import revivadiag as rd
from revivadiag.analyze.swarm import lb_findings, swarm_findings
from revivadiag.lab.images import service_tag

pytestmark = pytest.mark.integration
WAIT_S = 90.0
IMAGE = service_tag("redis")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class TwoNodes:
    """Two dockerds, one per network namespace, in one swarm (see the module docstring)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns, self.veth = f"rdt{tag}", (f"rdt{tag}a", f"rdt{tag}b")
        self.addrs = ("192.168.251.1", "192.168.251.2")
        pool_a = free_pool()
        pool_b = free_pool((pool_a,))
        self.swarm_pool = free_pool((pool_a, pool_b))
        self.manager = SecondEngine(Path(f"/tmp/rdt{tag}m"), pool=pool_a)
        self.worker = SecondEngine(Path(f"/tmp/rdt{tag}w"), pool=pool_b,
                                   wrap=["nsenter", f"--net=/run/netns/{self.ns}"])
        self.stack = f"rdt{tag}"

    def start(self) -> TwoNodes:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
        _ip("link", "set", self.veth[1], "netns", self.ns)
        _ip("addr", "add", f"{self.addrs[0]}/30", "dev", self.veth[0])
        _ip("link", "set", self.veth[0], "up")
        for args in (("addr", "add", f"{self.addrs[1]}/30", "dev", self.veth[1]),
                     ("link", "set", self.veth[1], "up"), ("link", "set", "lo", "up")):
            _ip("netns", "exec", self.ns, "ip", *args)
        self.manager.start()
        self.worker.start()
        for node in (self.manager, self.worker):
            node.load_images([IMAGE])
        port = free_port()
        self.manager.docker("swarm", "init", "--advertise-addr", self.addrs[0], "--listen-addr",
                            f"{self.addrs[0]}:{port}", "--default-addr-pool", self.swarm_pool)
        token = self.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        self.worker.docker("swarm", "join", "--token", token, "--advertise-addr", self.addrs[1],
                           f"{self.addrs[0]}:{port}")
        return self

    def link(self, up: bool) -> None:
        _ip("link", "set", self.veth[0], "up" if up else "down")

    def stop(self) -> None:
        subprocess.run(["ip", "link", "set", self.veth[0], "up"], capture_output=True, check=False)
        for node in (self.worker, self.manager):  # stop() leaves the swarm first
            node.stop()
        subprocess.run(["ip", "link", "del", self.veth[0]], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)


@pytest.fixture(scope="module")
def two_nodes(lab_images: object) -> Iterator[TwoNodes]:
    nodes = TwoNodes()
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def _service(nodes: TwoNodes, name: str, mode: str) -> None:
    """A 2-replica service of the stack, one task per node, on the stack's overlay."""
    label = f"com.docker.stack.namespace={nodes.stack}"
    nodes.manager.docker("service", "create", "--detach", "-q", "--name",
                         f"{nodes.stack}_{name}", "--network", f"{nodes.stack}_net",
                         "--replicas", "2", "--replicas-max-per-node", "1", "--label", label,
                         "--container-label", label, "--endpoint-mode", mode,
                         "--env", "REDIS_PASSWORD=rdt-not-a-secret", IMAGE)


def _running(nodes: TwoNodes, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        lines = nodes.manager.docker("service", "ls", "--filter",
                                     f"label=com.docker.stack.namespace={nodes.stack}",
                                     "--format", "{{.Replicas}}").stdout.splitlines()
        out = [ln.split()[0] for ln in lines if ln.strip()]  # "2/2 (max 1 per node)"
        if len(out) == count and all(r.split("/")[0] == r.split("/")[1] for r in out):
            return
        time.sleep(1)
    raise AssertionError(f"services of {nodes.stack} did not converge")


def test_two_node_swarm_views_agree_then_diverge(two_nodes: TwoNodes) -> None:
    """Both nodes' endpoint views match the manager's tasks; after a partition and a task
    replaced on the manager's side, the worker's view is stale and misses the new task."""
    nodes = two_nodes
    engines = [nodes.manager.unix_url, nodes.worker.unix_url]
    nodes.manager.docker("network", "create", "-d", "overlay", "--attachable",
                         f"{nodes.stack}_net")
    _service(nodes, "cache", "dnsrr")
    _service(nodes, "api", "vip")
    _running(nodes, 2)
    snap = rd.snapshot(project=nodes.stack, engines=engines, samples=1)
    assert list(snap.engines["swarm_state"]) == ["active", "active"]
    assert list(snap.engines["manager"]) == [True, False]
    assert snap.swarm_tasks[snap.swarm_tasks["state"] == "running"]["node_id"].nunique() == 2
    views = snap.swarm_lb.groupby("engine")["task_id"].apply(set).to_dict()
    assert views[engines[0]] == views[engines[1]] and len(views[engines[0]]) == 4
    # VXLAN across the nodes: every task of the other service answers, wherever it runs
    tasks_rows = snap.reachability[snap.reachability["target_host"].str.startswith("tasks.")]
    assert len(tasks_rows) >= 4 and set(tasks_rows["outcome"]) == {"open"}
    assert not [f for f in lb_findings(snap.swarm_lb, snap.swarm_tasks)]
    assert "RD-SWM-001" in {f[0] for f in swarm_findings(snap)}  # the api's VIP, no IPVS

    nodes.link(up=False)
    try:
        nodes.manager.docker("service", "update", "--force", "--detach", "-q",
                             f"{nodes.stack}_cache")
        time.sleep(12)  # the manager notices the worker is gone and replaces its own task
        cut = rd.snapshot(project=nodes.stack, engines=engines, samples=1)
    finally:
        nodes.link(up=True)
    found = [f for f in lb_findings(cut.swarm_lb, cut.swarm_tasks)
             if cut.engines.iloc[1]["node_id"] in f[1]]
    kinds = {f[0] for f in found}
    assert kinds == {"RD-SWM-003", "RD-SWM-004"}, found
    assert not [f for f in lb_findings(cut.swarm_lb, cut.swarm_tasks)
                if cut.engines.iloc[0]["node_id"] in f[1]]
