"""The ``connections`` frame on the real lab: the backend's pooled PostgreSQL and Redis
connections, read from the kernel's socket table in its network namespace, agree with what
``ss -tino`` shows there (run from the host with ``nsenter --net``), by setns and by sidecar.
"""

from __future__ import annotations

import re
import subprocess

import docker
import pandas as pd
import pytest

import revivadiag as rd
from revivadiag.analyze.swarm import idle_pool_findings, idle_pools
from revivadiag.collect.sockets import collect_connections
from revivadiag.engine.probe import ProbeEngine
from revivadiag.lab import LabInstance
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration


def _ss(pid: int) -> dict[tuple[str, int, str, int], str]:
    """4-tuple -> timer kind of the established connections in ``pid``'s namespace."""
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ss", "-tinoH", "-4",
                          "state", "established"], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    rows = {}
    for line in out.splitlines():
        if line.startswith((" ", "\t")):
            continue
        parts = line.split()
        (lip, lport), (rip, rport) = (p.rsplit(":", 1) for p in parts[2:4])
        timer = re.search(r"timer:\((\w+),", line)
        rows[(lip, int(lport), rip, int(rport))] = timer.group(1) if timer else "off"
    return rows


@pytest.fixture(scope="module")
def snap(lab_current: LabInstance) -> rd.Snapshot:
    return rd.snapshot(project=lab_current.prefix, samples=2)


def _backend(snap: rd.Snapshot) -> tuple[str, int]:
    """The backend's container (by role) and its pid."""
    service = snap.roles.set_index("role").loc["backend", "service"]
    row = snap.containers[snap.containers["service"] == service].iloc[0]
    return str(row["name"]), int(row["pid"])


def _tuples(frame: pd.DataFrame, container: str) -> dict[tuple[str, int, str, int], bool]:
    rows = frame[(frame["container"] == container) & (frame["state"] == "ESTABLISHED")]
    return {(r["local_ip"], int(r["local_port"]), r["peer_ip"], int(r["peer_port"])):
            bool(r["keepalive"]) for r in rows.to_dict("records")}


def test_snapshot_has_the_backends_pools(snap: rd.Snapshot) -> None:
    """Outbound connections from the backend to the database and the cache, peers mapped to
    their services and roles; keepalive as ss sees it."""
    validate("connections", snap.connections)
    assert "connections" in snap.meta.duration_s
    name, pid = _backend(snap)
    mine = snap.connections[(snap.connections["container"] == name)
                            & (snap.connections["direction"] == "outbound")]
    assert {"database", "cache"} <= set(mine["peer_role"]), mine.to_string()
    assert set(mine["engine"]) == {snap.engines.iloc[0]["engine"]}
    assert set(mine["method"]) == {"setns"}
    seen = _ss(pid)
    ours = _tuples(snap.connections, name)
    both = set(seen) & set(ours)  # a pool may open or close one in between
    assert len(both) >= 2 and len(both) >= 0.8 * len(seen), (seen, ours)
    for key in both:
        assert ours[key] == (seen[key] == "keepalive"), key
    sysctl = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "cat",
                             "/proc/sys/net/ipv4/tcp_keepalive_time"], capture_output=True,
                            text=True, check=True, timeout=10).stdout.strip()
    assert set(mine["keepalive_time_s"]) == {int(sysctl)}
    # the other end sees the same connection as inbound
    peers = snap.connections[snap.connections["direction"] == "inbound"]
    back = {(r["peer_ip"], int(r["peer_port"]), r["local_ip"], int(r["local_port"]))
            for r in peers.to_dict("records")}
    assert both & back


def test_idle_pools_on_the_lab(snap: rd.Snapshot) -> None:
    """The pool summary: every connection counted, unguarded = those without keepalive below
    the limit; no RD-SWM-005 off Swarm (no VIP on the path)."""
    name, _ = _backend(snap)
    pools = idle_pools(snap.connections)
    validate("idle_pools", pools)
    mine = pools[pools["service"] == snap.connections.set_index("container")
                 .loc[name, "service"].iloc[0]]
    est = snap.connections[(snap.connections["container"] == name)
                           & (snap.connections["state"] == "ESTABLISHED")
                           & (snap.connections["direction"] == "outbound")
                           & snap.connections["peer_kind"].eq("container")]
    assert int(mine["connections"].sum()) == len(est)
    no_ka = int((~est["keepalive"].fillna(True)).sum())
    long_ka = int((est["keepalive"].fillna(False) & (est["keepalive_after_s"] >= 900)).sum())
    assert int(mine["unguarded"].sum()) == no_ka + long_ka
    assert idle_pool_findings(snap.connections) == []


def test_sidecar_reads_the_same_table(snap: rd.Snapshot, engine: docker.DockerClient) -> None:
    """The sidecar method (the way on a remote engine) reads the same connections."""
    name, pid = _backend(snap)
    with ProbeEngine(engine, method="sidecar") as prober:
        frame = collect_connections(lambda b, k: prober.run(b, known=k),
                                    snap.containers[snap.containers["name"] == name],
                                    snap.endpoints, snap.roles)
    assert set(frame["method"]) == {"sidecar"} and set(frame["error"]) == {""}
    seen = _ss(pid)
    ours = _tuples(frame, name)
    assert len(set(seen) & set(ours)) >= 0.8 * len(seen) >= 1
