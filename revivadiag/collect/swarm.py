"""Swarm: services, tasks, nodes, each node's load-balancer view, and probes of VIPs and tasks.

:func:`gather_swarm` makes the API calls (the manager's ``/nodes``, ``/services``, ``/tasks``;
every node's ``/networks/{id}?verbose=true`` for the stack's overlay networks); the pure
``parse_*`` functions shape the ``swarm_*`` frames (:mod:`revivadiag.schemas`).
:func:`swarm_probe_jobs` plans, and :func:`swarm_probe_rows` shapes, the probes made from one
running task of each service: the service's name (its VIP, or its tasks' addresses under
``dnsrr``) and ``tasks.<service>`` asked of Docker's resolver, a TCP connect to the VIP and
to each task's address. Those rows join the ``dns`` (``query_kind`` ``swarm_service`` /
``swarm_tasks``) and ``reachability`` frames (a VIP row has an empty ``target`` and
``target_ip`` the VIP; a task row names the task's container).

A stack's containers carry ``com.docker.stack.namespace`` (the stack, read as the project)
and ``com.docker.swarm.service.name`` (``<stack>_<service>``).

>>> parse_task_name("shop_api.2.k3x9")
('shop_api', 2, 'k3x9')
>>> short_service("shop_api", "shop")
'api'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import pandas as pd
import requests.exceptions

from revivadiag.collect.inventory import STACK_LABEL
from revivadiag.engine.jobs import DOCKER_DNS, Job, Result
from revivadiag.schemas import to_frame

__all__ = ["STACK_LABEL", "gather_swarm", "parse_lb", "parse_nodes", "parse_services",
           "parse_tasks", "plan_probes", "probe_jobs", "probe_rows"]
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
#: probes of one service towards another: its name, tasks.<name>, the VIP and each task
MAX_TASKS_PER_SERVICE = 16

Raw = dict[str, Any]


@dataclass
class RawSwarm:
    """What one engine's API says about Swarm (memory only)."""

    engine: str
    state: str = "inactive"
    node_id: str = ""
    node_addr: str = ""
    manager: bool = False
    nodes: list[Raw] = field(default_factory=list)
    services: list[Raw] = field(default_factory=list)
    tasks: list[Raw] = field(default_factory=list)
    #: network id -> this node's verbose inspect of it
    lb: dict[str, Raw] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_task_name(name: str) -> tuple[str, int | None, str]:
    """(swarm service name, slot or None, task id) of ``<service>.<slot>.<id>``."""
    m = re.fullmatch(r"(.+)\.(\d+)\.(\w+)", name)
    if m:
        return m.group(1), int(m.group(2)), m.group(3)
    m = re.fullmatch(r"(.+)\.(\w+)\.(\w+)", name)  # a global service: <service>.<node>.<id>
    if m:
        return m.group(1), None, m.group(3)
    return name, None, ""


def short_service(full: str, stack: str) -> str:
    """``<stack>_<service>`` -> ``<service>``."""
    return full[len(stack) + 1:] if stack and full.startswith(stack + "_") else full


def gather_swarm(client: docker.DockerClient, engine: str, info: Mapping[str, Any],
                 stack: str, network_ids: Iterable[str]) -> RawSwarm:
    """The Swarm facts of one engine (``info`` is its ``/info``); the manager's lists only when
    it is a manager; each overlay network's verbose view on every active node."""
    sw = info.get("Swarm") or {}
    raw = RawSwarm(engine=engine, state=str(sw.get("LocalNodeState") or "inactive"),
                   node_id=str(sw.get("NodeID") or ""), node_addr=str(sw.get("NodeAddr") or ""),
                   manager=bool(sw.get("ControlAvailable")))
    if raw.state != "active":
        return raw
    try:
        if raw.manager:
            raw.nodes = list(client.api.nodes())
            raw.services = [s for s in client.api.services()
                            if ((s.get("Spec") or {}).get("Labels") or {}).get(STACK_LABEL)
                            == stack]
            ids = {s["ID"] for s in raw.services}
            raw.tasks = [t for t in client.api.tasks() if t.get("ServiceID") in ids]
        for nid in network_ids:
            try:
                net = client.api.inspect_network(nid, verbose=True)
            except docker.errors.NotFound:
                continue
            if net.get("Driver") == "overlay" or net.get("Scope") == "swarm":
                raw.lb[nid] = net
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raw.notes.append(f"swarm: {engine}: {type(exc).__name__}: {str(exc)[:200]}")
    return raw


def _image(text: str) -> str:
    return text.split("@", 1)[0]


def parse_nodes(raw: RawSwarm) -> pd.DataFrame:
    """The ``swarm_nodes`` frame of a manager's node list."""
    rows = []
    for n in raw.nodes:
        spec, status = n.get("Spec") or {}, n.get("Status") or {}
        mgr = n.get("ManagerStatus") or {}
        desc = n.get("Description") or {}
        rows.append({"engine": raw.engine, "node_id": str(n.get("ID", "")),
                     "hostname": str(desc.get("Hostname", "")),
                     "role": str(spec.get("Role", "")),
                     "availability": str(spec.get("Availability", "")),
                     "state": str(status.get("State", "")), "addr": str(status.get("Addr", "")),
                     "leader": bool(mgr.get("Leader", False)),
                     "engine_version": str((desc.get("Engine") or {}).get("EngineVersion", ""))})
    return to_frame("swarm_nodes", rows)


def _hostnames(raw: RawSwarm) -> dict[str, str]:
    return {str(n.get("ID")): str((n.get("Description") or {}).get("Hostname", ""))
            for n in raw.nodes}


def _network_names(raw: RawSwarm) -> dict[str, str]:
    names = {nid: str(net.get("Name", "")) for nid, net in raw.lb.items()}
    for t in raw.tasks:
        for att in t.get("NetworksAttachments") or []:
            net = att.get("Network") or {}
            names.setdefault(str(net.get("ID", "")), str((net.get("Spec") or {}).get("Name", "")))
    return names


def parse_services(raw: RawSwarm, stack: str,
                   ports: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """The ``swarm_services`` frame: ``ports`` maps a service (its name in the stack) to the
    ports it serves (from the roles frame and the images' exposed ports)."""
    names = _network_names(raw)
    ports = ports or {}
    active_nodes = sum(1 for n in raw.nodes if (n.get("Spec") or {}).get("Availability")
                       == "active" and (n.get("Status") or {}).get("State") == "ready")
    rows = []
    for s in raw.services:
        spec = s.get("Spec") or {}
        mode = spec.get("Mode") or {}
        full = str(spec.get("Name", ""))
        short = short_service(full, stack)
        desired = (int((mode.get("Replicated") or {}).get("Replicas", 0))
                   if "Replicated" in mode else active_nodes)
        running = sum(1 for t in raw.tasks if t.get("ServiceID") == s.get("ID")
                      and (t.get("Status") or {}).get("State") == "running"
                      and t.get("DesiredState") == "running")
        endpoint = s.get("Endpoint") or {}
        emode = str(((endpoint.get("Spec") or {}).get("Mode"))
                    or ((spec.get("EndpointSpec") or {}).get("Mode")) or "vip")
        vips = [f"{names.get(str(v.get('NetworkID')), v.get('NetworkID'))}:{v.get('Addr')}"
                for v in endpoint.get("VirtualIPs") or []]
        nets = [names.get(str(n.get("Target")), str(n.get("Target")))
                for n in (spec.get("TaskTemplate") or {}).get("Networks") or []]
        image = _image(str(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {})
                           .get("Image", "")))
        rows.append({"engine": raw.engine, "service_id": str(s.get("ID", "")), "name": full,
                     "service": short, "stack": stack, "image": image,
                     "mode": "replicated" if "Replicated" in mode else "global",
                     "replicas_desired": desired, "replicas_running": running,
                     "endpoint_mode": emode, "vips": vips if emode == "vip" else [],
                     "networks": nets, "ports": [str(p) for p in ports.get(short, [])],
                     **update_columns(spec)})
    return to_frame("swarm_services", rows)


def update_columns(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What a service spec says about replacing its tasks: update and rollback order, the
    healthcheck it declares, its stop grace period, the volumes and binds it mounts.

    >>> cols = update_columns({"UpdateConfig": {"Order": "start-first"}, "TaskTemplate": {
    ...     "ContainerSpec": {"Healthcheck": {"Test": ["NONE"]}, "StopGracePeriod": 30000000000,
    ...                       "Mounts": [{"Type": "volume", "Source": "db", "Target": "/data"}]}}})
    >>> [cols[k] for k in ("update_order", "rollback_order", "healthcheck", "stop_grace_s")]
    ['start-first', 'stop-first', False, 30.0]
    >>> cols["mounts"]
    ['volume:db:/data']
    """
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    test = list((container.get("Healthcheck") or {}).get("Test") or [])
    grace = container.get("StopGracePeriod")
    return {"update_order": str((spec.get("UpdateConfig") or {}).get("Order") or "stop-first"),
            "rollback_order": str((spec.get("RollbackConfig") or {}).get("Order")
                                  or "stop-first"),
            "healthcheck": None if not test else test[0] != "NONE",
            "stop_grace_s": None if grace is None else round(int(grace) / 1e9, 3),
            "mounts": [f"{m.get('Type', '')}:{m.get('Source', '')}:{m.get('Target', '')}"
                       for m in container.get("Mounts") or [] if m.get("Type") != "tmpfs"]}


def parse_tasks(raw: RawSwarm, stack: str) -> pd.DataFrame:
    """The ``swarm_tasks`` frame (every task the manager keeps, old ones included)."""
    hosts = _hostnames(raw)
    service_names = {s["ID"]: short_service(str((s.get("Spec") or {}).get("Name", "")), stack)
                     for s in raw.services}
    rows = []
    for t in raw.tasks:
        status = t.get("Status") or {}
        addrs = [f"{(a.get('Network') or {}).get('Spec', {}).get('Name', '')}:{addr}"
                 for a in t.get("NetworksAttachments") or [] for addr in a.get("Addresses") or []]
        rows.append({"engine": raw.engine, "task_id": str(t.get("ID", "")),
                     "service": service_names.get(t.get("ServiceID"), ""),
                     "slot": t.get("Slot"), "node_id": str(t.get("NodeID", "")),
                     "node": hosts.get(str(t.get("NodeID", "")), ""),
                     "desired_state": str(t.get("DesiredState", "")),
                     "state": str(status.get("State", "")),
                     "container_id": str((status.get("ContainerStatus") or {})
                                         .get("ContainerID", "")),
                     "addresses": addrs, "error": str(status.get("Err", ""))[:300],
                     "updated_at": t.get("UpdatedAt")})
    return to_frame("swarm_tasks", rows)


def parse_lb(raw: RawSwarm, stack: str) -> pd.DataFrame:
    """The ``swarm_lb`` frame: this node's verbose view of each overlay network."""
    rows = []
    for nid, net in raw.lb.items():
        for full, svc in (net.get("Services") or {}).items():
            if not full:
                continue  # the network's own load-balancer endpoint
            for task in svc.get("Tasks") or []:
                _, _, task_id = parse_task_name(str(task.get("Name", "")))
                rows.append({"engine": raw.engine, "node_id": raw.node_id,
                             "network": str(net.get("Name", "")), "network_id": nid,
                             "service": short_service(full, stack),
                             "vip": _vip(svc.get("VIP")),
                             "task_name": str(task.get("Name", "")), "task_id": task_id,
                             "endpoint_ip": str(task.get("EndpointIP", "")),
                             "host_ip": str((task.get("Info") or {}).get("Host IP", ""))})
    return to_frame("swarm_lb", rows)


def _vip(value: Any) -> str:
    """A VIP as the verbose network view gives it (``<nil>`` for a dnsrr service) -> text."""
    text = str(value or "")
    return "" if text in ("<nil>", "nil") else text


def _bare(addr: str) -> str:
    """``net:10.0.1.5/24`` or ``10.0.1.5/24`` -> ``10.0.1.5``."""
    return addr.rsplit(":", 1)[-1].split("/", 1)[0]


@dataclass(frozen=True)
class SwarmProbe:
    """One planned probe: from which container, what, and how its row is labelled."""

    source: str
    source_service: str
    target_service: str
    kind: str  # swarm_service, swarm_tasks (dns) or vip, task (tcp)
    host: str
    port: int | None = None
    target: str = ""


def plan_probes(services: pd.DataFrame, tasks: pd.DataFrame,
                containers: pd.DataFrame) -> list[SwarmProbe]:
    """From one running container of each service to every other service sharing a network:
    its name and ``tasks.<name>`` looked up, its VIP and each running task connected to on
    the service's first port."""
    running = containers[containers["state"] == "running"]
    first = {str(r["service"]): str(r["name"]) for r in running.to_dict("records")}
    probes: list[SwarmProbe] = []
    for src in services.to_dict("records"):
        source = first.get(str(src["service"]))
        if source is None:
            continue
        for dst in services.to_dict("records"):
            if dst["service"] == src["service"] or not set(src["networks"]) & set(dst["networks"]):
                continue
            name = str(dst["service"])
            base = SwarmProbe(source, str(src["service"]), name, "", "")
            probes += [_with(base, kind="swarm_service", host=name),
                       _with(base, kind="swarm_tasks", host=f"tasks.{name}")]
            if not dst["ports"]:
                continue
            port = int(dst["ports"][0])
            shared = set(src["networks"]) & set(dst["networks"])
            for vip in dst["vips"]:
                if vip.rsplit(":", 1)[0] in shared:
                    probes.append(_with(base, kind="vip", host=_bare(vip), port=port))
            live = tasks[(tasks["service"] == name) & (tasks["state"] == "running")]
            for rec in live.head(MAX_TASKS_PER_SERVICE).to_dict("records"):
                for addr in rec["addresses"]:
                    if addr.split(":", 1)[0] in shared:
                        probes.append(_with(base, kind="task", host=_bare(addr), port=port,
                                            target=_task_container(rec, str(dst["name"]))))
    return probes


def _with(base: SwarmProbe, **kw: Any) -> SwarmProbe:
    return SwarmProbe(**{**base.__dict__, **kw})


def _task_container(task: Mapping[str, Any], service: str) -> str:
    slot = task.get("slot")
    return f"{service}.{slot if pd.notna(slot) else task['node_id']}.{task['task_id']}"


def probe_jobs(probes: Sequence[SwarmProbe], ids: Mapping[str, str]) -> dict[str, list[Job]]:
    """Container id -> jobs, each tagged with its probe's index."""
    out: dict[str, list[Job]] = {}
    for i, p in enumerate(probes):
        if p.kind in ("swarm_service", "swarm_tasks"):
            job: Job = {"kind": "dns", "name": p.host, "server": DOCKER_DNS, "tag": i}
        else:
            job = {"kind": "tcp", "host": p.host, "port": p.port, "timeout_s": 1.0,
                   "retries": 1, "tag": i}
        out.setdefault(ids[p.source], []).append(job)
    return out


def probe_rows(probes: Sequence[SwarmProbe], results: Mapping[str, list[Result]],
               engine: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(dns rows, reachability rows) from the results of :func:`probe_jobs`."""
    by_tag = {int(r["tag"]): r for rows in results.values() for r in rows if "tag" in r}
    dns, reach = [], []
    for i, p in enumerate(probes):
        r = by_tag.get(i)
        if r is None:
            continue
        if p.kind in ("swarm_service", "swarm_tasks"):
            dns.append({"source": p.source, "source_service": p.source_service, "query": p.host,
                        "query_kind": p.kind, "answers": list(r.get("answers") or []),
                        "rcode": str(r.get("rcode") or "ERROR"),
                        "latency_ms": r.get("latency_ms"), "method": str(r.get("method", "")),
                        "error_type": str(r.get("error_type") or ""),
                        "error": str(r.get("error") or ""), "from_cache": False,
                        "measured_on": p.source, "inferred": False, "engine": engine})
        else:
            reach.append({"source": p.source, "source_service": p.source_service,
                          "target": p.target, "target_service": p.target_service,
                          "target_host": p.target_service if p.kind == "vip"
                          else f"tasks.{p.target_service}",
                          "target_ip": p.host, "target_port": p.port,
                          "outcome": str(r.get("outcome") or "error"),
                          "connect_ms": r.get("connect_ms"), "attempts": r.get("attempts"),
                          "error_type": str(r.get("error_type") or ""),
                          "error": str(r.get("error") or ""), "method": str(r.get("method", "")),
                          "sweep_connect_ms": r.get("connect_ms"), "measured_on": p.source,
                          "inferred": False, "engine": engine})
    return to_frame("dns", dns), to_frame("reachability", reach)
