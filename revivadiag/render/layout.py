"""Where each node of a topology graph goes (pure; used by :mod:`revivadiag.render.draw`).

Workloads (containers or declared services) are grouped by the set of networks they attach
to. Each network gets a direction from the centre (one network: the centre; two: left and
right; more: evenly round a circle); a group sits at the mean direction of its networks, so a
workload on several networks lies between them, and one on every network in the middle.
Groups on the most networks are placed first, in the middle; the groups on fewer
networks are then pushed out along their directions, all of a tier together, until their
boxes keep :data:`GROUP_GAP` from each other and from those already placed. Inside a
group, workloads fill a grid whose cells are wide enough for a label; a published port sits
just above its workload. A network's
shaded group is the convex hull of its workloads' cells (:func:`network_hull`).

Units are data coordinates; :data:`INCH_PER_UNIT` is the scale the drawing uses, so that
the cells (in data units) and the labels (in points) keep their proportions at any size.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from revivadiag.render.topology import WORKLOAD_KINDS

Point = tuple[float, float]

CELL_W = 2.4  # a workload's cell: its label box plus room for edges between neighbours
ROW_GAP = 2.0
#: a small graph (the labs) has labelled edges between neighbours: roomier cells
ROOMY = 12
ROOMY_CELL = (3.6, 2.6)
PORT_RISE = 0.62
GROUP_GAP = 1.5  # between the boxes of two groups
HULL_PAD = 0.55  # around a workload's cell, for its network's hull
INCH_PER_UNIT = 0.55
#: how far the radius grows per try, and the most it may grow (bounded search)
RADIUS_STEP = 0.25
RADIUS_MAX = 400.0


def networks_of(g: nx.MultiDiGraph, node: str) -> list[str]:
    """The network nodes a workload is attached to, sorted."""
    return sorted(v for _, v, d in g.out_edges(node, data=True) if d.get("kind") == "attachment")


def network_order(g: nx.MultiDiGraph) -> list[str]:
    """Networks in drawing order: breadth-first over networks that share workloads."""
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


def directions(count: int) -> list[Point]:
    """Unit directions of ``count`` networks: centre, left/right, or round a circle.

    >>> directions(1), directions(2)
    ([(0.0, 0.0)], [(-1.0, 0.0), (1.0, 0.0)])
    >>> [(round(x, 2), round(y, 2)) for x, y in directions(4)]
    [(-0.71, 0.71), (0.71, 0.71), (0.71, -0.71), (-0.71, -0.71)]
    """
    if count <= 1:
        return [(0.0, 0.0)] * count
    start = math.pi / 2 + (math.pi / count if count % 2 == 0 else 0.0)
    out = []
    for i in range(count):
        a = start - 2 * math.pi * i / count
        x, y = math.cos(a), math.sin(a)
        out.append((round(x, 12) + 0.0, round(y, 12) + 0.0))
    return out


@dataclass
class Group:
    """Workloads attached to the same set of networks, laid out as a grid."""

    key: tuple[str, ...]
    members: list[str]
    cols: int
    rows: int
    direction: Point
    center: Point = (0.0, 0.0)
    cell: Point = (CELL_W, ROW_GAP)

    @property
    def size(self) -> Point:
        """(width, height) of the group's box."""
        return self.cols * self.cell[0], self.rows * self.cell[1]


def cell_size(g: nx.MultiDiGraph) -> Point:
    """(width, height) of a workload's cell: roomier in a graph of a few workloads.

    >>> cell_size(nx.MultiDiGraph())
    (3.6, 2.6)
    """
    n = sum(1 for _, d in g.nodes(data=True) if d.get("kind") in WORKLOAD_KINDS)
    return ROOMY_CELL if n <= ROOMY else (CELL_W, ROW_GAP)


def grid_shape(n: int, size: Point = (CELL_W, ROW_GAP)) -> tuple[int, int]:
    """(cols, rows) of a group of ``n`` workloads, about as wide as it is high.

    >>> grid_shape(1), grid_shape(4), grid_shape(15)
    ((1, 1), (2, 2), (4, 4))
    """
    cols = max(1, math.ceil(math.sqrt(n * size[1] / size[0])))
    return cols, max(1, math.ceil(n / cols))


def groups(g: nx.MultiDiGraph) -> list[Group]:
    """The groups of ``g``, each with its direction (the mean of its networks')."""
    order = network_order(g)
    dirs = dict(zip(order, directions(len(order)), strict=True))
    size = cell_size(g)
    members: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for node, data in g.nodes(data=True):
        if data.get("kind") in WORKLOAD_KINDS:
            members[tuple(n for n in order if n in networks_of(g, node))].append(node)
    out = []
    for key in sorted(members, key=lambda k: ([order.index(n) for n in k], k)):
        nodes = sorted(members[key], key=lambda n: (str(g.nodes[n].get("service", "")),
                                                    str(g.nodes[n].get("label", n))))
        cols, rows = grid_shape(len(nodes), size)
        if key:
            d = (sum(dirs[n][0] for n in key) / len(key), sum(dirs[n][1] for n in key) / len(key))
        else:  # on no network (network_mode host/none): below everything
            d = (0.0, -1.5)
        out.append(Group(key, nodes, cols, rows, d, cell=size))
    return out


def _offsets(groups_: list[Group]) -> list[Point]:
    """Groups that share a direction are set side by side (fixed offsets, centred)."""
    by_dir: dict[Point, list[int]] = defaultdict(list)
    for i, grp in enumerate(groups_):
        by_dir[(round(grp.direction[0], 6), round(grp.direction[1], 6))].append(i)
    out: list[Point] = [(0.0, 0.0)] * len(groups_)
    for idx in by_dir.values():
        total = sum(groups_[i].size[0] for i in idx) + GROUP_GAP * (len(idx) - 1)
        x = -total / 2
        for i in idx:
            w = groups_[i].size[0]
            out[i] = (x + w / 2, 0.0)
            x += w + GROUP_GAP
    return out


def _overlap(a: Group, b: Group) -> bool:
    (ax, ay), (bx, by) = a.center, b.center
    (aw, ah), (bw, bh) = a.size, b.size
    return (abs(ax - bx) < (aw + bw) / 2 + GROUP_GAP - 1e-9
            and abs(ay - by) < (ah + bh) / 2 + GROUP_GAP - 1e-9)


def place_groups(groups_: list[Group]) -> None:
    """Give every group its centre: radius x direction, plus its side-by-side offset.

    Groups are placed in tiers, those on the most networks first (they hold the middle);
    the groups of one tier share the smallest radius (in steps of :data:`RADIUS_STEP`) at
    which their boxes keep :data:`GROUP_GAP` from each other and from the tiers before."""
    offsets = _offsets(groups_)
    placed: list[Group] = []
    for tier in sorted({len(grp.key) for grp in groups_}, reverse=True):
        members = [i for i, grp in enumerate(groups_) if len(grp.key) == tier]
        radius = 0.0
        while True:
            for i in members:
                (dx, dy), (ox, oy) = groups_[i].direction, offsets[i]
                groups_[i].center = (radius * dx + ox, radius * dy + oy)
            mine = [groups_[i] for i in members]
            clash = any(_overlap(a, b) for k, a in enumerate(mine) for b in mine[k + 1:]) or \
                any(_overlap(a, b) for a in mine for b in placed)
            if not clash or radius >= RADIUS_MAX:
                break
            radius += RADIUS_STEP
        placed += [groups_[i] for i in members]


def layout(g: nx.MultiDiGraph) -> dict[str, Point]:
    """Positions of every workload and port (see the module doc), and of every network's
    label: just outside its hull, on the side its direction points to."""
    pos: dict[str, Point] = {}
    grps = groups(g)
    place_groups(grps)
    for grp in grps:
        (cx, cy), (w, h), (cw, ch) = grp.center, grp.size, grp.cell
        for i, node in enumerate(grp.members):
            col, row = i % grp.cols, i // grp.cols
            pos[node] = (cx - w / 2 + (col + 0.5) * cw, cy + h / 2 - (row + 0.5) * ch)
    _place_ports(g, pos)
    order = network_order(g)
    for net, d in zip(order, directions(len(order)), strict=True):
        pos[net] = network_label_point(network_hull(g, pos, net), d)
    return pos


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
        pos[node] = (anchor[0] - 0.55 + 1.1 * k, anchor[1] + PORT_RISE)


def members_of(g: nx.MultiDiGraph, net: str) -> list[str]:
    """Workloads attached to network ``net``."""
    return sorted(u for u, v, d in g.in_edges(net, data=True) if d.get("kind") == "attachment"
                  and g.nodes[u].get("kind") in WORKLOAD_KINDS)


def cell(p: Point, pad: float = 0.0, size: Point = (CELL_W, ROW_GAP)) -> list[Point]:
    """Corners of the cell of a workload at ``p`` (its label box and its ports), padded."""
    x, y = p
    hw, top, bottom = size[0] / 2 - 0.15 + pad, PORT_RISE + 0.3 + pad, size[1] / 2 - 0.25 + pad
    return [(x - hw, y - bottom), (x + hw, y - bottom), (x + hw, y + top), (x - hw, y + top)]


def convex_hull(points: Sequence[Point]) -> list[Point]:
    """Convex hull, counter-clockwise, of some points (Andrew's monotone chain).

    >>> convex_hull([(0, 0), (2, 0), (1, 1), (2, 2), (0, 2)])
    [(0, 0), (2, 0), (2, 2), (0, 2)]
    """
    pts = sorted(set(points))
    if len(pts) <= 2:
        return list(pts)

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def network_hull(g: nx.MultiDiGraph, pos: dict[str, Point], net: str,
                 pad: float = HULL_PAD) -> list[Point]:
    """The polygon of network ``net``'s shaded group: the hull of its workloads' cells."""
    size = cell_size(g)
    corners = [c for n in members_of(g, net) if n in pos for c in cell(pos[n], pad, size)]
    return convex_hull(corners)


def network_label_point(hull: Sequence[Point], direction: Point) -> Point:
    """Where a network's name goes: the hull's corner furthest along ``direction`` (the
    top-left corner when the direction is the centre)."""
    if not hull:
        return (0.0, 0.0)
    dx, dy = direction if direction != (0.0, 0.0) else (-0.2, 1.0)
    return max(hull, key=lambda p: (p[0] * dx + p[1] * dy, p[1], -p[0]))


def bounds(points: Sequence[Point]) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of some points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


#: room kept around the drawing (data units)
MARGIN = 0.4
#: a network name's size (points), to keep room for it; the drawing uses the same
NETWORK_PT = 9.0


def label_size(text: str, points: float = NETWORK_PT) -> Point:
    """About how much room (data units) a one-line label of ``text`` takes (bold italic).

    >>> w, h = label_size("x" * 20)
    >>> 3.0 < w < 6.0 and 0.2 < h < 0.4
    True
    """
    return (len(text) + 2) * points * 0.66 / 72 / INCH_PER_UNIT, points * 1.5 / 72 / INCH_PER_UNIT


def network_name(g: nx.MultiDiGraph, net: str) -> str:
    """The name a network is drawn with: without the project's prefix, ``(internal)`` added.

    >>> g = nx.MultiDiGraph(project="shop")
    >>> g.add_node("network:shop_data", label="shop_data", internal=True)
    >>> network_name(g, "network:shop_data")
    'data (internal)'
    """
    label, project = str(g.nodes[net].get("label", net)), str(g.graph.get("project") or "")
    for sep in ("_", "-"):
        if project and label.startswith(project + sep) and len(label) > len(project) + 1:
            label = label[len(project) + 1:]
    return f"{label} (internal)" if g.nodes[net].get("internal") else label


def label_anchor(direction: Point) -> tuple[str, str]:
    """(ha, va) of a network's name set at the hull corner its direction points to.

    >>> label_anchor((0.0, 0.0)), label_anchor((1.0, 0.0)), label_anchor((-0.7, -0.7))
    (('left', 'bottom'), ('left', 'center'), ('right', 'top'))
    """
    dx, dy = direction
    if (dx, dy) == (0.0, 0.0):
        return "left", "bottom"
    return ("left" if dx > 0.3 else "right" if dx < -0.3 else "center",
            "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center")


def label_box(point: Point, size: Point, anchor: tuple[str, str]) -> list[Point]:
    """Two corners of a label of ``size`` set at ``point`` with ``anchor`` (ha, va)."""
    (x, y), (w, h), (ha, va) = point, size, anchor
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return [(x0, y0), (x0 + w, y0 + h)]


def extent(g: nx.MultiDiGraph, pos: dict[str, Point] | None = None
           ) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) the drawing needs: every hull and cell, plus a margin."""
    pos = layout(g) if pos is None else pos
    size = cell_size(g)
    pts = [c for n in pos if g.nodes[n].get("kind") in WORKLOAD_KINDS
           for c in cell(pos[n], HULL_PAD, size)]
    pts += [pos[n] for n in pos]
    order = network_order(g)
    for net, d in zip(order, directions(len(order)), strict=True):
        if net in pos:
            pts += label_box(pos[net], label_size(network_name(g, net)), label_anchor(d))
    if not pts:
        return (-2.0, -2.0, 2.0, 2.0)
    x0, y0, x1, y1 = bounds(pts)
    return x0 - MARGIN, y0 - MARGIN, x1 + MARGIN, y1 + MARGIN


def aspect_ratio(g: nx.MultiDiGraph) -> float:
    """Height / width of the drawing of ``g`` (clamped to 0.35..1.6)."""
    if not any(d.get("kind") in WORKLOAD_KINDS for _, d in g.nodes(data=True)):
        return 0.6
    x0, y0, x1, y1 = extent(g)
    return min(1.6, max(0.35, (y1 - y0) / (x1 - x0)))
