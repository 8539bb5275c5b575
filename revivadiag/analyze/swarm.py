"""Findings about several engines and Swarm, as pure functions of a snapshot's frames.

Each function returns ``(finding id, evidence)`` pairs for :func:`~revivadiag.analyze.findings.
build_findings` (``extra=``); the catalogue there holds titles and remediations:

- RD-ENG-001 an engine did not answer (``engines``),
- RD-SWM-001 a VIP answers nothing while the service's tasks do (``reachability`` rows to a
  VIP vs to ``tasks.<service>``): on a kernel without IPVS every VIP does this,
- RD-SWM-002 replicas running short of desired (``swarm_services``),
- RD-SWM-003 a node's load balancer holds a task the manager does not run: a stale backend
  (``swarm_lb`` vs ``swarm_tasks``),
- RD-SWM-004 a running task missing from a node's load balancer: divergence,
- RD-SWM-005 pooled connections idle long enough to cross IPVS's 900 s idle timeout, with no
  TCP keepalive below it (a ``sockets`` table: :func:`idle_pool_findings`),
- RD-SWM-006 an overlay's MTU larger than the path allows (``networks`` vs ``engines``).

>>> import pandas as pd
>>> from revivadiag.schemas import to_frame
>>> services = to_frame("swarm_services", [{"service": "api", "replicas_desired": 3,
...                                         "replicas_running": 1, "endpoint_mode": "vip"}])
>>> replica_findings(services)
[('RD-SWM-002', 'api: 1 of 3 replicas running')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

#: IPVS drops a connection idle this long (the kernel's ip_vs tcp timeout)
IPVS_IDLE_TIMEOUT_S = 900
#: a pooled connection idle this long is on its way to the IPVS timeout
IDLE_WARNING_S = 300
#: VXLAN's encapsulation: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
VXLAN_OVERHEAD = 50
#: an overlay's MTU when its driver options set none (1500 - VXLAN_OVERHEAD)
DEFAULT_OVERLAY_MTU = 1450

Finding = tuple[str, str]


def engine_findings(engines: pd.DataFrame) -> list[Finding]:
    """RD-ENG-001 for every engine that did not answer (or failed)."""
    return [("RD-ENG-001", f"{r['engine']}: {r['status']}: {r['error']}")
            for r in engines.to_dict("records") if r["status"] in ("unreachable", "error")]


def replica_findings(services: pd.DataFrame) -> list[Finding]:
    """RD-SWM-002 for services running fewer replicas than desired."""
    out = []
    for r in services.to_dict("records"):
        want, have = r["replicas_desired"], r["replicas_running"]
        if pd.notna(want) and pd.notna(have) and int(have) < int(want):
            out.append(("RD-SWM-002", f"{r['service']}: {int(have)} of {int(want)} replicas "
                                      "running"))
    return out


def vip_findings(services: pd.DataFrame, reachability: pd.DataFrame,
                 kernel_ipvs: bool | None = None) -> list[Finding]:
    """RD-SWM-001: a service whose VIP did not open from a source where one of its tasks did.

    ``kernel_ipvs``: whether this host's kernel has IPVS (None: unknown), said in the evidence.
    """
    vips = {str(v).rsplit(":", 1)[-1].split("/", 1)[0]: str(r["service"])
            for r in services.to_dict("records") for v in r["vips"]}
    if not vips or reachability.empty:
        return []
    out = []
    rows = reachability.to_dict("records")
    for r in rows:
        if str(r["target_ip"]) not in vips or r["outcome"] == "open":
            continue
        svc = vips[str(r["target_ip"])]
        tasks_open = [t for t in rows if t["source"] == r["source"]
                      and t["target_host"] == f"tasks.{svc}" and t["outcome"] == "open"]
        if not tasks_open:
            continue
        why = {True: "", False: "; this kernel has no IPVS (CONFIG_IP_VS is not set), which "
               "VIP load balancing needs", None: ""}[kernel_ipvs]
        out.append(("RD-SWM-001", f"{r['source_service']} -> {svc} VIP {r['target_ip']}:"
                                  f"{r['target_port']}: {r['outcome']}, while "
                                  f"{len(tasks_open)} task(s) of it answer on "
                                  f"{tasks_open[0]['target_ip']}{why}"))
    return out


def lb_findings(lb: pd.DataFrame, tasks: pd.DataFrame,
                services: pd.DataFrame | None = None) -> list[Finding]:
    """RD-SWM-003 (stale) and RD-SWM-004 (missing): each node's view of a network's endpoints
    against the tasks the manager says run there.

    A task the manager runs is expected in the view of every node holding the network (the
    view lists the service's tasks across the swarm). Tasks whose service is ``dnsrr`` are
    expected too (they get DNS entries, not LB ones, in the same table).
    """
    if lb.empty and tasks.empty:
        return []
    running = tasks[(tasks["state"] == "running") & (tasks["desired_state"] == "running")]
    want: dict[tuple[str, str], set[str]] = {}
    for r in running.to_dict("records"):
        for addr in r["addresses"]:
            net = str(addr).split(":", 1)[0]
            want.setdefault((net, str(r["service"])), set()).add(str(r["task_id"]))
    out: list[Finding] = []
    views = lb.groupby(["engine", "node_id", "network"]) if len(lb) else []
    seen_nets: dict[tuple[str, str], set[str]] = {}
    for (engine, node, net), view in views:
        seen_nets.setdefault((str(engine), str(node)), set()).add(str(net))
        have: dict[str, set[str]] = {}
        for r in view.to_dict("records"):
            have.setdefault(str(r["service"]), set()).add(str(r["task_id"]))
        for svc, ids in have.items():
            for tid in sorted(ids - want.get((str(net), svc), set())):
                ip = view[view["task_id"] == tid]["endpoint_ip"].iloc[0]
                out.append(("RD-SWM-003", f"node {node or engine} network {net}: {svc} task "
                                          f"{tid[:12]} ({ip}) is not running on the manager's "
                                          "books"))
        for (wnet, svc), ids in want.items():
            if wnet != net:
                continue
            for tid in sorted(ids - have.get(svc, set())):
                out.append(("RD-SWM-004", f"node {node or engine} network {net}: running {svc} "
                                          f"task {tid[:12]} is missing from its endpoints"))
    return out


def mtu_findings(networks: pd.DataFrame, engines: pd.DataFrame,
                 overlay_mtu: Mapping[str, int] | None = None) -> list[Finding]:
    """RD-SWM-006: an overlay network's MTU plus VXLAN's 50 bytes exceeds a node's path MTU.

    ``overlay_mtu``: network name -> MTU its driver options set (default 1450).
    """
    overlays = networks[networks["driver"] == "overlay"]
    paths = engines.dropna(subset=["host_mtu"]) if "host_mtu" in engines else engines.iloc[0:0]
    out = []
    for net in sorted(set(overlays["name"])):
        mtu = int((overlay_mtu or {}).get(net, DEFAULT_OVERLAY_MTU))
        for e in paths.to_dict("records"):
            if mtu + VXLAN_OVERHEAD > int(e["host_mtu"]):
                out.append(("RD-SWM-006", f"{net}: MTU {mtu} + {VXLAN_OVERHEAD} (VXLAN) > "
                                          f"{int(e['host_mtu'])} on {e['engine']}'s interface "
                                          f"{e['node_addr']}: set "
                                          f"com.docker.network.driver.mtu="
                                          f"{int(e['host_mtu']) - VXLAN_OVERHEAD}"))
    return out


def idle_pool_findings(sockets: pd.DataFrame, roles: Mapping[str, str],
                       through_vip: set[str] | None = None) -> list[Finding]:
    """RD-SWM-005 from a socket table (columns ``service``, ``peer_service``, ``state``,
    ``idle_s``, ``keepalive_s``: seconds until the next keepalive probe, NA when the socket
    has no keepalive timer): established connections from a backend to a database or cache
    idle for :data:`IDLE_WARNING_S` or longer, with no keepalive below the 900 s IPVS timeout.

    ``roles`` maps service -> role; ``through_vip`` names the peer services reached by VIP
    (None: assume all are).

    >>> t = pd.DataFrame([{"service": "api", "peer_service": "db", "state": "ESTAB",
    ...                    "idle_s": 610.0, "keepalive_s": None}])
    >>> idle_pool_findings(t, {"api": "backend", "db": "database"})[0][0]
    'RD-SWM-005'
    """
    out = []
    for r in sockets.to_dict("records"):
        if r.get("state") not in ("ESTAB", "ESTABLISHED"):
            continue
        if roles.get(str(r["service"])) not in ("backend", "worker"):
            continue
        if roles.get(str(r["peer_service"])) not in ("database", "cache"):
            continue
        if through_vip is not None and str(r["peer_service"]) not in through_vip:
            continue
        ka = r.get("keepalive_s")
        no_keepalive = ka is None or pd.isna(ka) or float(ka) >= IPVS_IDLE_TIMEOUT_S
        idle = float(r.get("idle_s") or 0)
        if idle >= IDLE_WARNING_S and no_keepalive:
            out.append(("RD-SWM-005", f"{r['service']} -> {r['peer_service']}: a pooled "
                                      f"connection idle {idle:.0f} s, "
                                      + ("no TCP keepalive" if ka is None or pd.isna(ka)
                                         else f"keepalive in {float(ka):.0f} s")))
    return out


def swarm_findings(snapshot: Any, kernel_ipvs: bool | None = None,
                   sockets: pd.DataFrame | None = None) -> list[Finding]:
    """Every finding of this module over one snapshot (its ``engines`` and ``swarm_*``
    frames; ``sockets`` optional)."""
    if kernel_ipvs is None and "ipvs" in snapshot.engines and len(snapshot.engines):
        known = snapshot.engines["ipvs"].dropna()
        kernel_ipvs = None if known.empty else bool(known.all())
    out = engine_findings(snapshot.engines)
    out += replica_findings(snapshot.swarm_services)
    out += vip_findings(snapshot.swarm_services, snapshot.reachability, kernel_ipvs)
    out += lb_findings(snapshot.swarm_lb, snapshot.swarm_tasks, snapshot.swarm_services)
    out += mtu_findings(snapshot.networks, snapshot.engines)
    if sockets is not None and len(sockets):
        roles = {str(r["service"]): str(r["role"]) for r in snapshot.roles.to_dict("records")}
        vip_services = {str(r["service"]) for r in snapshot.swarm_services.to_dict("records")
                        if r["endpoint_mode"] == "vip"}
        out += idle_pool_findings(sockets, roles, vip_services)
    return out
