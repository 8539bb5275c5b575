"""Where each node of a topology graph goes (pure; used by :mod:`revivadiag.render.draw`).

Workloads (containers or declared services) are grouped by the set of networks they attach
to; groups go left to right by the mean position of their networks in :func:`network_order`,
so a workload on two networks sits between them; inside a group, workloads fill a small grid.
A published port sits just above its workload. Units are arbitrary data coordinates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import networkx as nx

from revivadiag.render.topology import WORKLOAD_KINDS

Point = tuple[float, float]

CELL_W = 2.4
GROUP_GAP = 1.0
ROW_GAP = 1.9
PORT_RISE = 0.62
HULL_PAD = 1.1  # horizontal
HULL_TOP = 1.2  # above the top row: room for its published ports and the network's name
HULL_BOTTOM = 0.7


def networks_of(g: nx.MultiDiGraph, node: str) -> list[str]:
    """The network nodes a workload is attached to, sorted."""
    return sorted(v for _, v, d in g.out_edges(node, data=True) if d.get("kind") == "attachment")


def network_order(g: nx.MultiDiGraph) -> list[str]:
    """Networks left to right: breadth-first over networks that share workloads."""
    nets = sorted(n for n, d in g.nodes(data=True) if d.get("kind") == "network")
    neighbours: dict[str, set[str]] = defaultdict(set)
    for node, data in g.nodes(data=True):
        if data.get("kind") in WORKLOAD_KINDS:
            attached = networks_of(g, node)
            for a in attached:
                neighbours[a].update(n for n in attached if n != a)
    order: list[str] = []
    for start in nets:
        if start in order:
            continue
        queue = [start]
        while queue:
            net = queue.pop(0)
            if net not in order:
                order.append(net)
                queue.extend(sorted(neighbours[net] - set(order)))
    return order


def layout(g: nx.MultiDiGraph) -> dict[str, Point]:
    """Positions for every node: workloads grouped by the set of networks they attach to.

    Groups go left to right by the mean position of their networks in :func:`network_order`
    (so a workload on two networks sits between them); inside a group, workloads fill a small
    grid in (service, label) order. A published port sits just above its workload; a
    network's own node marks the top-left corner of its shaded group.
    """
    order = {net: i for i, net in enumerate(network_order(g))}
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for node, data in g.nodes(data=True):
        if data.get("kind") in WORKLOAD_KINDS:
            groups[tuple(n for n in networks_of(g, node) if n in order)].append(node)

    def rank(key: tuple[str, ...]) -> tuple[float, int, tuple[str, ...]]:
        return (sum(order[n] for n in key) / len(key) if key else -1.0, len(key), key)

    pos: dict[str, Point] = {}
    x = 0.0
    for key in sorted(groups, key=rank):
        members = sorted(
            groups[key],
            key=lambda n: (str(g.nodes[n].get("service", "")), str(g.nodes[n].get("label", n))),
        )
        rows = math.ceil(math.sqrt(len(members)))
        cols = math.ceil(len(members) / rows)
        for i, node in enumerate(members):
            pos[node] = (x + (i // rows) * CELL_W, -(i % rows) * ROW_GAP)
        x += cols * CELL_W + GROUP_GAP
    _place_ports(g, pos)
    for net in order:
        members_pos = [pos[n] for n in groups_of(groups, net)]
        x0, _, _, y1 = bounds(members_pos or [(0.0, 0.0)])
        pos[net] = (x0 - HULL_PAD, y1 + HULL_TOP)
    return pos


def groups_of(groups: dict[tuple[str, ...], list[str]], net: str) -> list[str]:
    """Workloads of every group that includes ``net``."""
    return [n for key, members in groups.items() if net in key for n in members]


def _place_ports(g: nx.MultiDiGraph, pos: dict[str, Point]) -> None:
    per_target: dict[str, int] = defaultdict(int)
    loose = 0
    for node, data in sorted(g.nodes(data=True)):
        if data.get("kind") != "port":
            continue
        targets = [v for _, v, d in g.out_edges(node, data=True) if d.get("kind") == "published"]
        anchor = pos.get(targets[0]) if targets else None
        if anchor is None:
            pos[node] = (-CELL_W, -loose * 0.6)
            loose += 1
            continue
        k = per_target[targets[0]]
        per_target[targets[0]] += 1
        pos[node] = (anchor[0] - 0.45 + 0.9 * k, anchor[1] + PORT_RISE)


def bounds(points: Sequence[Point]) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of some points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def aspect_ratio(g: nx.MultiDiGraph) -> float:
    """Height / width of the drawing of ``g`` (clamped to 0.35..1.2), to size figures."""
    pos = layout(g)
    if not pos:
        return 0.6
    x0, y0, x1, y1 = bounds(list(pos.values()))
    width, height = x1 - x0 + 3.0, y1 - y0 + 1.9
    return min(1.2, max(0.35, height / width))
