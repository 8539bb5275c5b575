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
- RD-SWM-005 connections through a VIP (IPVS, 900 s idle timeout) that no TCP keepalive
  guards below it (the ``connections`` frame: :func:`idle_pool_findings`; the same frame's
  :func:`idle_pools` summary holds outside Swarm, behind any NAT or stateful middlebox),
- RD-SWM-006 an overlay's MTU larger than the path allows (``networks`` vs ``engines``),
- RD-SWM-007 a ``start-first`` update or rollback where it hurts: no healthcheck, or a
  volume two tasks would share (``swarm_services``, ``containers``, ``roles``).

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

from revivadiag.schemas import to_frame

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


def unguarded(connections: pd.DataFrame, limit_s: float = IPVS_IDLE_TIMEOUT_S) -> pd.Series:
    """Per row of a ``connections`` frame: True when no keepalive probe goes out before
    ``limit_s`` of silence (keepalive off, or its first probe provably later:
    ``keepalive_after_s`` is a lower bound); False when it provably does (the lower bound and
    the namespace's ``tcp_keepalive_time`` both below); NA when unknown (another timer hides
    the keepalive state, or the socket may set a ``TCP_KEEPIDLE`` of its own below the
    namespace's default).

    >>> from revivadiag.schemas import to_frame
    >>> t = to_frame("connections", [{"keepalive": False}, {"keepalive": True,
    ...     "keepalive_after_s": 7200.0}, {"keepalive": True, "keepalive_after_s": 60.0,
    ...     "keepalive_time_s": 300}, {"keepalive": True, "keepalive_after_s": 60.0,
    ...     "keepalive_time_s": 7200}, {}])
    >>> unguarded(t).tolist()
    [True, True, False, <NA>, <NA>]
    """
    after = connections["keepalive_after_s"]
    default = connections["keepalive_time_s"]
    on = connections["keepalive"].eq(True).fillna(False)
    out = pd.Series(pd.NA, index=connections.index, dtype="boolean")
    out[connections["keepalive"].eq(False).fillna(False)] = True
    out[on & after.ge(limit_s).fillna(False)] = True
    out[on & after.lt(limit_s).fillna(False) & default.lt(limit_s).fillna(False)] = False
    return out


def idle_pools(connections: pd.DataFrame, limit_s: float = IPVS_IDLE_TIMEOUT_S) -> pd.DataFrame:
    """The ``idle_pools`` frame: a service's established outbound connections to one peer,
    grouped: how many, the longest idle, how many have keepalive on, and how many would be
    silent for ``limit_s`` with no keepalive probe (IPVS's 900 s by default; a NAT or cloud
    load balancer forgets idle flows after 4-10 minutes). Pure, works outside Swarm too.
    """
    live = connections[(connections["state"] == "ESTABLISHED")
                       & (connections["direction"] == "outbound")
                       & (connections["peer_kind"].isin(["container", "vip"]))]
    verdict = unguarded(live, limit_s)
    live = live.assign(_unguarded=verdict.fillna(False), _unknown=verdict.isna(),
                       _keepalive=live["keepalive"].fillna(False))
    rows = []
    keys = ["engine", "service", "role", "peer_service", "peer_role", "peer_kind"]
    for key, group in live.groupby(keys, dropna=False, sort=True):
        rec = dict(zip(keys, key, strict=True))
        rec.update(connections=len(group), max_idle_s=group["idle_s"].max(),
                   keepalive=int(group["_keepalive"].sum()),
                   max_keepalive_after_s=group["keepalive_after_s"].max(),
                   unguarded=int(group["_unguarded"].sum()),
                   unknown=int(group["_unknown"].sum()), limit_s=float(limit_s),
                   peer_ips=sorted(set(group["peer_ip"].astype(str))))
        rows.append(rec)
    return to_frame("idle_pools", rows)


def idle_pool_findings(connections: pd.DataFrame) -> list[Finding]:
    """RD-SWM-005 from a ``connections`` frame: established connections through a Swarm VIP
    (so through IPVS) that no keepalive probe guards below its 900 s idle timeout, from any
    service to a database or cache (a pool), or to any peer once idle for
    :data:`IDLE_WARNING_S`. One evidence line per service and peer.

    >>> from revivadiag.schemas import to_frame
    >>> t = to_frame("connections", [{"service": "api", "peer_service": "db",
    ...     "peer_role": "database", "peer_kind": "vip", "peer_ip": "10.0.1.5",
    ...     "peer_port": 5432, "direction": "outbound", "state": "ESTABLISHED",
    ...     "idle_s": 610.0, "keepalive": False}])
    >>> idle_pool_findings(t)[0][1]
    'api -> db via VIP 10.0.1.5: 1 connection(s), longest idle 610 s, no TCP keepalive'
    """
    pools = idle_pools(connections)
    out = []
    for r in pools[(pools["peer_kind"] == "vip") & (pools["unguarded"] > 0)].to_dict("records"):
        if r["peer_role"] not in ("database", "cache") and not (
                pd.notna(r["max_idle_s"]) and r["max_idle_s"] >= IDLE_WARNING_S):
            continue
        ka = ("no TCP keepalive" if not r["keepalive"] else
              f"first keepalive after {r['max_keepalive_after_s']:.0f} s idle (>= "
              f"{IPVS_IDLE_TIMEOUT_S} s)")
        idle = "" if pd.isna(r["max_idle_s"]) else f", longest idle {r['max_idle_s']:.0f} s"
        out.append(("RD-SWM-005", f"{r['service']} -> {r['peer_service']} via VIP "
                                  f"{', '.join(r['peer_ips'])}: {r['unguarded']} "
                                  f"connection(s){idle}, {ka}"))
    return out


#: roles whose data directory one server process must own
STATEFUL_ROLES = ("database", "cache")


def _has_healthcheck(service: Mapping[str, Any], containers: pd.DataFrame) -> bool | None:
    """The spec's word, else what its containers show (an image HEALTHCHECK), else None."""
    declared = service.get("healthcheck")
    if declared is not None and not pd.isna(declared):
        return bool(declared)
    mine = containers[(containers["service"] == service["service"])
                      & (containers["state"] == "running")]
    if mine.empty:
        return None
    return bool(mine["health"].isin(["healthy", "unhealthy", "starting"]).any())


def update_order_findings(services: pd.DataFrame, containers: pd.DataFrame,
                          roles: Mapping[str, str] | None = None) -> list[Finding]:
    """RD-SWM-007: a service updated (or rolled back) ``start-first`` where that hurts: it
    has no healthcheck (the new task joins the service's VIP or DNS as soon as its process
    starts, ready or not, and the old one is stopped then), or it mounts a volume or bind
    (the old and the new task run on it at once: a database's data directory cannot serve two
    servers). The endpoint mode and stop grace period are said in the evidence.

    >>> from revivadiag.schemas import to_frame
    >>> svc = to_frame("swarm_services", [{"service": "db", "update_order": "start-first",
    ...     "rollback_order": "stop-first", "healthcheck": True, "endpoint_mode": "vip",
    ...     "mounts": ["volume:shop_pg:/var/lib/postgresql"]}])
    >>> [(f[0], f[1][:47]) for f in update_order_findings(svc, to_frame("containers", []),
    ...                                                   {"db": "database"})]
    [('RD-SWM-007', 'db (database): update order start-first; mounts')]
    """
    out = []
    for r in services.to_dict("records"):
        when = [k for k, col in (("update", "update_order"), ("rollback", "rollback_order"))
                if r.get(col) == "start-first"]
        if not when:
            continue
        role = (roles or {}).get(str(r["service"]), "")
        reasons = []
        volumes = [m for m in r["mounts"] if str(m).split(":", 1)[0] in ("volume", "bind")]
        if volumes:
            reasons.append(f"mounts {', '.join(volumes)}: the old and the new task run on it at "
                           "once" + (f" (a {role} cannot share its data)"
                                     if role in STATEFUL_ROLES else ""))
        health = _has_healthcheck(r, containers)
        if health is False:
            reasons.append("no healthcheck: the new task takes traffic as soon as its process "
                           "starts, ready or not, and the old task is stopped then")
        if not reasons:
            continue
        grace = r.get("stop_grace_s")
        grace_text = "10 s (default)" if grace is None or pd.isna(grace) else f"{grace:g} s"
        mode = ("VIP: connections already open to the old task stay on it until it stops"
                if r.get("endpoint_mode") == "vip" else "dnsrr: clients keep the old address "
                "until they resolve again")
        out.append(("RD-SWM-007", f"{r['service']}{f' ({role})' if role else ''}: "
                                  f"{' and '.join(w + ' order' for w in when)} start-first; "
                                  f"{'; '.join(reasons)}; {mode}; stop grace {grace_text}"))
    return out


def swarm_findings(snapshot: Any, kernel_ipvs: bool | None = None) -> list[Finding]:
    """Every finding of this module over one snapshot (its ``engines``, ``swarm_*`` and
    ``connections`` frames)."""
    if kernel_ipvs is None and "ipvs" in snapshot.engines and len(snapshot.engines):
        known = snapshot.engines["ipvs"].dropna()
        kernel_ipvs = None if known.empty else bool(known.all())
    out = engine_findings(snapshot.engines)
    out += replica_findings(snapshot.swarm_services)
    out += vip_findings(snapshot.swarm_services, snapshot.reachability, kernel_ipvs)
    out += lb_findings(snapshot.swarm_lb, snapshot.swarm_tasks, snapshot.swarm_services)
    roles = {str(r["service"]): str(r["role"]) for r in snapshot.roles.to_dict("records")}
    out += update_order_findings(snapshot.swarm_services, snapshot.containers, roles)
    out += mtu_findings(snapshot.networks, snapshot.engines)
    connections = getattr(snapshot, "connections", None)
    if connections is not None and len(connections):
        out += idle_pool_findings(connections)
    return out
