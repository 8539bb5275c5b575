"""Topology graphs: what runs (from a snapshot) and what is declared (from a compose file).

Both builders return a :class:`networkx.MultiDiGraph` whose nodes and edges carry a ``kind``:

========== ===================================================================================
node kind  attributes
========== ===================================================================================
container  label, service, project, state, health, image (live graph)
service    label, service, container_name, image (declared graph)
network    label, driver, subnet, internal
port       label, host_ip, host_port, protocol (a published host port)
========== ===================================================================================

========== ===================================================================================
edge kind  attributes
========== ===================================================================================
attachment workload -> network: ipv4, aliases
published  port -> workload: container_port, protocol
expected   workload -> workload from the policy: port (None = any), action (allow/deny), rule;
           in the declared graph also ``status`` (see below) judged from shared networks
observed   container -> container from reachability: port, outcome, connect_ms, method,
           expected (allow/deny/""), verdict, status
========== ===================================================================================

``status`` of an observed edge is ``allowed`` (open, not denied), ``denied`` (not open, and not
expected open), ``violation`` (open though denied, or closed though allowed) or ``unknown``
(the probe itself failed). ``verdict`` keeps the policy's finer word (see
:func:`revivadiag.analyze.policy.verdict`), empty when the policy does not judge the path.

>>> g = graph_from_compose({"services": {"web": {"ports": ["127.0.0.1:8080:80"]}}})
>>> sorted(g.nodes)
['network:default', 'port:127.0.0.1:8080/tcp', 'service:web']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from itertools import product
from typing import TYPE_CHECKING, Any

import networkx as nx
import pandas as pd

from revivadiag import schemas
from revivadiag.analyze.policy import verdict as policy_verdict
from revivadiag.collect.compose import ComposeModel, ComposeSource, load_compose
from revivadiag.collect.roles import Roles, infer_roles

if TYPE_CHECKING:
    from revivadiag.analyze.policy import Policy

STATUSES = ("allowed", "denied", "violation", "unknown")
WORKLOAD_KINDS = ("container", "service")


# ---------------------------------------------------------------- node ids


def container_node(name: str) -> str:
    """Node id of a container."""
    return f"container:{name}"


def service_node(name: str) -> str:
    """Node id of a declared compose service."""
    return f"service:{name}"


def network_node(name: str) -> str:
    """Node id of a network."""
    return f"network:{name}"


def port_node(host_ip: str, host_port: int, protocol: str = "tcp") -> str:
    """Node id of a published host port."""
    return f"port:{host_ip or '0.0.0.0'}:{host_port}/{protocol or 'tcp'}"


def classify(outcome: str, expected: str | None) -> tuple[str, str]:
    """(status, verdict) of one observed path.

    >>> classify("open", "deny"), classify("timeout", "deny"), classify("open", None)
    (('violation', 'violation'), ('denied', 'ok'), ('allowed', ''))
    """
    if expected is None:
        if outcome == "error":
            return "unknown", ""
        return ("allowed" if outcome == "open" else "denied"), ""
    v = policy_verdict(expected, outcome)
    if v in ("violation", "blocked"):
        return "violation", v
    if v == "inconclusive":
        return "unknown", v
    return ("allowed" if outcome == "open" else "denied"), v


# ---------------------------------------------------------------- from a snapshot


def graph_from_snapshot(snap: Any, policy: Policy | None = None) -> nx.MultiDiGraph:
    """The live topology of a snapshot (anything with the snapshot's frame attributes).

    ``policy`` adds the expected edges and judges each observed one; without it observed
    edges are only ``allowed`` (open) or ``denied``.
    """
    g = nx.MultiDiGraph(source="snapshot", project=_project_of(snap))
    frames = engine_qualified(snap)
    add_containers(g, frames["containers"])
    add_networks(g, frames["networks"])
    add_endpoints(g, frames["endpoints"])
    add_ports(g, frames["ports"])
    add_groups(g, container_groups(frames["containers"], _frame(snap, "swarm_tasks")))
    if policy is not None:
        roles = _frame(snap, "roles")
        if roles.empty:
            roles = infer_roles(_frame(snap, "containers"), endpoints=_frame(snap, "endpoints"))
        policy = bound_to(policy, Roles(roles))
        add_expected(g, policy)
    add_observed(g, frames["reachability"], policy)
    return g


# ---------------------------------------------------------------- engines and nodes

#: columns naming a container, per frame (qualified by engine when a snapshot has several)
_CONTAINER_COLUMNS = {"containers": ("name",), "endpoints": ("container",),
                      "ports": ("container",), "reachability": ("source", "target")}


def engine_qualified(snap: Any) -> dict[str, pd.DataFrame]:
    """The frames the graph is drawn from; when the snapshot spans several engines, every
    container name becomes ``<engine>/<name>`` (the same project on two engines has the same
    container names) and each network ``<engine>/<name>`` unless it is an overlay (one
    network spanning the engines)."""
    frames = {name: _frame(snap, name) for name in (*_CONTAINER_COLUMNS, "networks")}
    engines = frames["containers"].get("engine")
    if engines is None or engines.nunique() < 2:
        return frames
    overlays = set(frames["networks"][frames["networks"]["driver"] == "overlay"]["name"])
    out = {}
    for name, frame in frames.items():
        frame = frame.copy()
        if "engine" in frame.columns:
            for col in _CONTAINER_COLUMNS.get(name, ()):
                frame[col] = _qualify(frame["engine"], frame[col])
            net_col = {"networks": "name", "endpoints": "network"}.get(name)
            if net_col:
                local = ~frame[net_col].isin(overlays)
                frame.loc[local, net_col] = _qualify(frame["engine"], frame[net_col])[local]
        out[name] = frame
    out["networks"] = out["networks"].drop_duplicates(subset=["name"])
    return out


def _qualify(engine: pd.Series, names: pd.Series) -> pd.Series:
    return pd.Series([f"{e}/{n}" if n else n for e, n in zip(engine, names, strict=True)],
                     index=names.index, dtype="string")


def container_groups(containers: pd.DataFrame, tasks: pd.DataFrame | None = None
                     ) -> dict[str, str]:
    """container name -> its group for the drawing: the Swarm node its task runs on (from
    ``swarm_tasks``), else its engine, else ``""``.

    >>> c = pd.DataFrame({"name": ["a", "b"], "container_id": ["1", "2"], "engine": ["e1", "e2"]})
    >>> t = pd.DataFrame({"container_id": ["2"], "node": ["worker-1"]})
    >>> container_groups(c, t)
    {'a': 'e1', 'b': 'worker-1'}
    """
    nodes: dict[str, str] = {}
    if tasks is not None and len(tasks):
        nodes = {str(r["container_id"]): str(r["node"]) for r in tasks.to_dict("records")
                 if r["container_id"] and r["node"]}
    out = {}
    for r in containers.to_dict("records"):
        out[str(r["name"])] = nodes.get(str(r.get("container_id", ""))) or _text(r.get("engine"))
    return out


def add_groups(g: nx.MultiDiGraph, groups: Mapping[str, str]) -> None:
    """``group`` on each container node (its engine or Swarm node: a key a layout may cluster
    by) and ``groups`` on each network node (the groups of the containers attached: more than
    one is a network spanning engines or nodes, e.g. an overlay)."""
    for name, group in groups.items():
        node = container_node(name)
        if node in g:
            g.nodes[node]["group"] = group
    for node, data in g.nodes(data=True):
        if data.get("kind") != "network":
            continue
        attached = {g.nodes[src].get("group", "") for src, _, k in g.in_edges(node, keys=True)
                    if k == "attachment"}
        data["groups"] = sorted(a for a in attached if a)


def bound_to(policy: Policy, roles: Roles) -> Policy:
    """``policy`` applied to the services holding its roles (as is when already bound)."""
    if policy.bound:
        return policy
    mapping = roles.as_mapping()
    return policy.bind(mapping, {s: roles.port(s) for s in mapping})[0]


def model_roles(model: ComposeModel) -> Roles:
    """Roles of a compose model's services, from their names, images and ports alone."""
    rows = [{"name": svc.container_name or svc.name, "service": svc.name, "image": svc.image,
             "exposed_ports": [f"{p.container_port}/{p.protocol}" for p in svc.ports]}
            for svc in model.services.values()]
    return Roles(infer_roles(schemas.to_frame("containers", rows)))


def _frame(snap: Any, name: str) -> pd.DataFrame:
    frame = getattr(snap, name, None)
    return frame if isinstance(frame, pd.DataFrame) else schemas.empty_frame(name)


def _project_of(snap: Any) -> str:
    project = getattr(snap, "project", None)
    if not project:
        meta = getattr(snap, "meta", None) or getattr(snap, "metadata", None) or {}
        project = meta.get("project") if isinstance(meta, Mapping) else getattr(meta, "project", "")
    return str(project or "")


def _text(value: Any) -> str:
    return (
        ""
        if value is None or (not isinstance(value, (list, dict)) and pd.isna(value))
        else str(value)
    )


def add_containers(g: nx.MultiDiGraph, containers: pd.DataFrame) -> None:
    """One ``container`` node per row of the ``containers`` frame."""
    for row in containers.to_dict("records"):
        name = _text(row.get("name"))
        g.add_node(
            container_node(name),
            kind="container",
            label=name,
            service=_text(row.get("service")),
            project=_text(row.get("project")),
            state=_text(row.get("state")),
            health=_text(row.get("health")) or "none",
            image=_text(row.get("image")),
            labels=_labels(row.get("labels")),
        )


def _labels(value: Any) -> dict[str, str]:
    try:
        parsed = json.loads(_text(value) or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def add_networks(g: nx.MultiDiGraph, networks: pd.DataFrame) -> None:
    """One ``network`` node per row of the ``networks`` frame."""
    for row in networks.to_dict("records"):
        name = _text(row.get("name"))
        internal = row.get("internal")
        g.add_node(
            network_node(name),
            kind="network",
            label=name,
            driver=_text(row.get("driver")),
            subnet=_text(row.get("subnet")),
            internal=bool(internal) if internal is not None and not pd.isna(internal) else False,
        )


def add_endpoints(g: nx.MultiDiGraph, endpoints: pd.DataFrame) -> None:
    """``attachment`` edges container -> network (nodes added when missing)."""
    for row in endpoints.to_dict("records"):
        cnode = container_node(_text(row.get("container")))
        nnode = network_node(_text(row.get("network")))
        if cnode not in g:
            g.add_node(
                cnode,
                kind="container",
                label=_text(row.get("container")),
                service=_text(row.get("service")),
                state="",
                health="none",
            )
        if nnode not in g:
            g.add_node(nnode, kind="network", label=_text(row.get("network")))
        g.add_edge(
            cnode,
            nnode,
            key="attachment",
            kind="attachment",
            ipv4=_text(row.get("ipv4")),
            aliases=list(row.get("aliases") or []),
        )


def add_ports(g: nx.MultiDiGraph, ports: pd.DataFrame) -> None:
    """A ``port`` node per published host port, with a ``published`` edge to its container."""
    for row in ports.to_dict("records"):
        if row.get("host_port") is None or pd.isna(row.get("host_port")):
            continue
        host_ip, host_port = _text(row.get("host_ip")), int(row["host_port"])
        protocol = _text(row.get("protocol")) or "tcp"
        pnode = port_node(host_ip, host_port, protocol)
        g.add_node(
            pnode,
            kind="port",
            label=f"{host_ip or '*'}:{host_port}",
            host_ip=host_ip,
            host_port=host_port,
            protocol=protocol,
        )
        cport = row.get("container_port")
        g.add_edge(
            pnode,
            container_node(_text(row.get("container"))),
            key="published",
            kind="published",
            protocol=protocol,
            container_port=None if cport is None or pd.isna(cport) else int(cport),
        )


def workloads_by_service(g: nx.MultiDiGraph) -> dict[str, list[str]]:
    """service -> its workload node ids (containers or declared services), sorted."""
    out: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        if data.get("kind") in WORKLOAD_KINDS and data.get("service"):
            out.setdefault(str(data["service"]), []).append(node)
    return {k: sorted(v) for k, v in out.items()}


def add_expected(g: nx.MultiDiGraph, policy: Policy) -> None:
    """``expected`` edges for every policy rule whose two services have workloads here."""
    by_service = workloads_by_service(g)
    for rule in policy.rules:
        port = "any" if rule.port is None else str(rule.port)
        for src, dst in product(by_service.get(rule.source, []), by_service.get(rule.target, [])):
            if src != dst:
                g.add_edge(
                    src,
                    dst,
                    key=f"expected:{port}",
                    kind="expected",
                    port=rule.port,
                    action=rule.action,
                    rule=rule.describe(),
                )


def add_observed(g: nx.MultiDiGraph, reach: pd.DataFrame, policy: Policy | None) -> None:
    """``observed`` edges from the reachability frame, each classified (see module doc)."""
    for row in reach.to_dict("records"):
        src, dst = _text(row.get("source")), _text(row.get("target"))
        port = row.get("target_port")
        if not src or not dst or src == dst or port is None or pd.isna(port):
            continue
        port = int(port)
        outcome = _text(row.get("outcome")) or "error"
        src_svc, dst_svc = _text(row.get("source_service")), _text(row.get("target_service"))
        expected = policy.expected(src_svc, dst_svc, port) if policy is not None else None
        status, verdict_ = classify(outcome, expected)
        ms = row.get("connect_ms")
        g.add_edge(
            container_node(src),
            container_node(dst),
            key=f"observed:{port}",
            kind="observed",
            port=port,
            outcome=outcome,
            expected=expected or "",
            verdict=verdict_,
            status=status,
            connect_ms=None if ms is None or pd.isna(ms) else float(ms),
            method=_text(row.get("method")),
            error_type=_text(row.get("error_type")),
        )


# ---------------------------------------------------------------- from a compose file


def graph_from_compose(
    source: ComposeSource,
    *,
    project: str = "",
    profiles: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    policy: Policy | None = None,
    strict: bool = True,
    project_directory: str | None = None,
) -> nx.MultiDiGraph:
    """The declared topology of a compose file (a path or an already-parsed mapping).

    Services become ``service`` nodes, networks are named as Compose would name them for
    ``project`` (``<project>_<key>`` unless the file sets ``name:``). With a policy, each
    expected edge gets a ``status`` judged from the file alone: a denied path between
    services that share a network is a ``violation``, as is an allowed one between services
    that share none. The files are read by the Compose CLI where one is installed (see
    :func:`revivadiag.collect.compose.load_compose`). Raises
    :class:`~revivadiag.errors.ComposeFileError` naming the problem.
    """
    model = load_compose(source, project=project, profiles=profiles, env=env, strict=strict,
                         project_directory=project_directory)
    return graph_from_model(model, policy=policy)


def graph_from_model(model: ComposeModel, policy: Policy | None = None) -> nx.MultiDiGraph:
    """The declared graph of a parsed compose model (see :func:`graph_from_compose`)."""
    g = nx.MultiDiGraph(source="compose", project=model.project, path=model.origin,
                        reader=model.reader)
    for net in model.networks.values():
        g.add_node(
            network_node(net.name),
            kind="network",
            label=net.name,
            driver=net.driver,
            subnet="",
            internal=net.internal,
            key=net.key,
        )
    for svc in model.services.values():
        node = service_node(svc.name)
        g.add_node(
            node,
            kind="service",
            label=svc.container_name or svc.name,
            service=svc.name,
            container_name=svc.container_name,
            image=svc.image,
            state="declared",
            health="none",
        )
        for key in svc.networks:
            g.add_edge(
                node,
                network_node(model.networks[key].name),
                key="attachment",
                kind="attachment",
                ipv4="",
                aliases=[],
            )
        for p in svc.ports:
            pnode = port_node(p.host_ip, p.host_port, p.protocol)
            g.add_node(
                pnode,
                kind="port",
                label=f"{p.host_ip or '*'}:{p.host_port}",
                host_ip=p.host_ip,
                host_port=p.host_port,
                protocol=p.protocol,
            )
            g.add_edge(
                pnode,
                node,
                key="published",
                kind="published",
                container_port=p.container_port,
                protocol=p.protocol,
            )
    if policy is not None:
        add_expected(g, bound_to(policy, model_roles(model)))
        judge_declared(g)
    return g


def shared_networks(g: nx.MultiDiGraph, a: str, b: str) -> set[str]:
    """Networks both workloads are attached to."""

    def nets(n: str) -> set[str]:
        return {v for _, v, d in g.out_edges(n, data=True) if d.get("kind") == "attachment"}

    return nets(a) & nets(b)


def judge_declared(g: nx.MultiDiGraph) -> None:
    """Give each ``expected`` edge a status from network sharing (the declared verdict)."""
    for u, v, _key, data in g.edges(keys=True, data=True):
        if data.get("kind") != "expected":
            continue
        reachable = bool(shared_networks(g, u, v))
        if data["action"] == "allow":
            data["status"] = "allowed" if reachable else "violation"
        else:
            data["status"] = "violation" if reachable else "denied"
