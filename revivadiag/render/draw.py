"""Matplotlib drawings of a topology graph (see :mod:`revivadiag.render.topology`).

Networks are drawn as shaded hulls around their workloads; a workload on several networks
sits where their hulls meet (positions from :mod:`revivadiag.render.layout`). Edges are
coloured by ``status`` (allowed / denied / violation / unknown); observed edges carry their
connect time, expected edges that no probe covered are dotted. Labels never cover one
another: every edge label is put at the first spot along its arc where it covers no other
label (measured with the renderer), and the figure is sized from the layout at a fixed scale
(:data:`~revivadiag.render.layout.INCH_PER_UNIT`), so names stay the same size however many
containers there are, up to :data:`MAX_WIDTH_IN` (beyond it, everything shrinks together).
Node labels leave out the project's prefix (the title names the project).

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so callers own
them; in a notebook, :func:`show` turns one into an image.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from revivadiag.analyze.policy import load_policy
from revivadiag.render.layout import (
    INCH_PER_UNIT,
    NETWORK_PT,
    Point,
    aspect_ratio,
    directions,
    extent,
    label_anchor,
    layout,
    network_hull,
    network_name,
    network_order,
)
from revivadiag.render.topology import graph_from_snapshot

__all__ = ["aspect_ratio", "draw_side_by_side", "draw_topology", "figure_png", "show"]

STATUS_COLORS = {
    "allowed": "#2e7d32",
    "denied": "#9e9e9e",
    "violation": "#c62828",
    "unknown": "#ef6c00",
    "": "#607d8b",
}
HEALTH_COLORS = {
    "healthy": "#e8f5e9",
    "starting": "#fff8e1",
    "unhealthy": "#ffebee",
    "none": "#e3f2fd",
}
NETWORK_COLORS = ("#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#d81b60")
#: widest figure drawn at full scale (a report is read about 1,200 px wide at 110 dpi: 11 in)
MAX_WIDTH_IN = 14.0
TITLE_IN = 0.45
NODE_PT, PORT_PT, EDGE_PT = 8.5, 8.0, 8.0
#: where an edge label may go, in order of preference: (how far along its arc, shifted up)
LABEL_SPOTS = tuple((t, shift) for shift in (0.0, 0.3, -0.3)
                    for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78))


# ---------------------------------------------------------------- figures and axes


def _natural_size(g: nx.MultiDiGraph) -> tuple[float, float]:
    x0, y0, x1, y1 = extent(g)
    return (x1 - x0) * INCH_PER_UNIT, (y1 - y0) * INCH_PER_UNIT


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # a renderer to measure labels with
    return fig


def draw_topology(
    graph: nx.MultiDiGraph | Any,
    ax: Axes | None = None,
    title: str | None = None,
    *,
    show_unjudged: bool = False,
    legend: bool = True,
) -> Figure:
    """Draw a topology graph; returns the figure (a new one, sized from the layout, when
    ``ax`` is None).

    ``graph`` may also be a snapshot: it is then drawn against the default access policy.
    ``show_unjudged`` also draws observed edges the policy says nothing about (thin, no label).
    """
    if not isinstance(graph, nx.Graph):
        graph = graph_from_snapshot(graph, policy=load_policy())
    if ax is None:
        w, h = _natural_size(graph)
        scale = min(1.0, MAX_WIDTH_IN / w)
        legend_in = _legend_height(w * scale) if legend else 0.0
        fig = _figure(w * scale, h * scale + TITLE_IN + legend_in)
        H = fig.get_figheight()
        ax = fig.add_axes((0.0, legend_in / H, 1.0, h * scale / H))
    owner = ax.get_figure(root=True)
    if not isinstance(owner, Figure):  # an Axes always belongs to a figure
        raise TypeError("the Axes given is not attached to a Figure")
    fig = owner
    _draw(ax, graph, show_unjudged=show_unjudged)
    ax.set_title(title if title is not None else _default_title(graph),
                 fontsize=11, pad=4)
    if legend:
        _legend(fig)
    return fig


def draw_side_by_side(
    declared: nx.MultiDiGraph,
    live: nx.MultiDiGraph,
    titles: tuple[str, str] = ("declared (compose file)", "live (snapshot)"),
    *,
    show_unjudged: bool = False,
) -> Figure:
    """The declared and the live topology next to each other (or one above the other when
    side by side they would be wider than :data:`MAX_WIDTH_IN`), one legend for both."""
    (wa, ha), (wb, hb) = _natural_size(declared), _natural_size(live)
    side = wa + wb <= MAX_WIDTH_IN
    if side:
        width, height = wa + wb, max(ha, hb) + TITLE_IN
        scale = 1.0
    else:
        scale = min(1.0, MAX_WIDTH_IN / max(wa, wb))
        width, height = max(wa, wb) * scale, (ha + hb) * scale + 2 * TITLE_IN
    LEGEND_IN = _legend_height(width)
    fig = _figure(width, height + LEGEND_IN)
    W, H = fig.get_figwidth(), fig.get_figheight()
    if side:
        boxes = [(0.0, LEGEND_IN / H, wa / W, ha / H), (wa / W, LEGEND_IN / H, wb / W, hb / H)]
    else:
        boxes = [(0.0, (LEGEND_IN + hb * scale + TITLE_IN) / H, 1.0, ha * scale / H),
                 (0.0, LEGEND_IN / H, 1.0, hb * scale / H)]
    for graph, box, title in zip((declared, live), boxes, titles, strict=True):
        draw_topology(graph, ax=fig.add_axes(box), title=title, legend=False,
                      show_unjudged=show_unjudged)
    _legend(fig)
    return fig


def _legend_height(width: float) -> float:
    return 0.45 if width >= 8.5 else 0.75


def _legend(fig: Figure) -> None:
    """The edge legend along the bottom, in as many columns as the width holds."""
    ncols = 6 if fig.get_figwidth() >= 8.5 else 3
    fig.legend(handles=legend_handles(), loc="lower center", ncols=ncols, fontsize=8,
               frameon=False)


def legend_handles() -> list[Line2D]:
    """Legend entries for edge colours and styles."""
    return [
        Line2D([], [], color=STATUS_COLORS["allowed"], label="allowed"),
        Line2D([], [], color=STATUS_COLORS["denied"], linestyle="--", label="denied / closed"),
        Line2D([], [], color=STATUS_COLORS["violation"], lw=2.2, label="violation"),
        Line2D([], [], color=STATUS_COLORS["unknown"], label="probe failed"),
        Line2D([], [], color="#455a64", linestyle=":", label="expected, not probed"),
        Line2D([], [], color="black", lw=0.8, label="published port"),
    ]


def _default_title(g: nx.MultiDiGraph) -> str:
    project = g.graph.get("project") or ""
    return f"{g.graph.get('source', 'topology')}: {project}".strip(": ")


def short_label(label: str, project: str) -> str:
    """A workload's name without its project's prefix (the title names the project).

    >>> short_label("shop_api_1", "shop"), short_label("shop", "shop"), short_label("db", "")
    ('api_1', 'shop', 'db')
    """
    for sep in ("_", "-"):
        if project and label.startswith(project + sep) and len(label) > len(project) + 1:
            return label[len(project) + 1:]
    return label


# ---------------------------------------------------------------- drawing


def _renderer(fig: Figure) -> RendererBase:
    get = getattr(fig.canvas, "get_renderer", None)
    if get is None:
        FigureCanvasAgg(fig)
        get = fig.canvas.get_renderer  # type: ignore[attr-defined]
    renderer: RendererBase = get()
    return renderer


def text_box(text: Text, renderer: RendererBase) -> Bbox:
    """The display-space box a text covers, its background box included."""
    patch = text.get_bbox_patch()
    if patch is None:
        return text.get_window_extent(renderer)
    text.update_bbox_position_size(renderer)
    return Bbox.union([text.get_window_extent(renderer), patch.get_window_extent(renderer)])


def label_texts(ax: Axes) -> list[Text]:
    """Every label the topology drawing put on ``ax`` (nodes, ports, networks, edges)."""
    return [t for t in ax.texts if t.get_gid() and str(t.get_gid()).startswith("label:")]


def _draw(ax: Axes, g: nx.MultiDiGraph, *, show_unjudged: bool) -> None:
    pos = layout(g)
    x0, y0, x1, y1 = extent(g, pos)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")  # edge labels sit on their arcs only with equal scales
    ax.set_axis_off()
    ax.apply_aspect()
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    inches = ax.get_position().width * fig.get_figwidth()
    scale = min(1.0, inches / ((x1 - x0) * INCH_PER_UNIT)) if x1 > x0 else 1.0
    renderer = _renderer(fig)
    placed = _draw_networks(ax, g, pos, scale, renderer)
    placed += _draw_nodes(ax, g, pos, scale, renderer)
    _draw_edges(ax, g, pos, scale, renderer, placed, show_unjudged=show_unjudged)


def _draw_networks(ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point], scale: float,
                   renderer: RendererBase) -> list[Bbox]:
    order = network_order(g)
    boxes = []
    for i, (net, d) in enumerate(zip(order, directions(len(order)), strict=True)):
        hull = network_hull(g, pos, net, pad=0.55 - 0.12 * (i % 3))
        if not hull:
            continue
        color = NETWORK_COLORS[i % len(NETWORK_COLORS)]
        ax.add_patch(Polygon(hull, closed=True, facecolor=color, edgecolor=color, alpha=0.13,
                             lw=0, zorder=0, gid=f"hull:{net}"))
        ax.add_patch(Polygon(hull, closed=True, fill=False, edgecolor=color, alpha=0.7,
                             lw=1.4, zorder=0, joinstyle="round"))
        ha, va = label_anchor(d)
        text = ax.text(
            *pos[net], network_name(g, net), fontsize=NETWORK_PT * scale, ha=ha, va=va,
            color=color, style="italic", weight="bold", zorder=1, gid=f"label:{net}",
        )
        boxes.append(text_box(text, renderer))
    return boxes


def _draw_nodes(ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point], scale: float,
                renderer: RendererBase) -> list[Bbox]:
    project = str(g.graph.get("project") or "")
    boxes = []
    for node, data in g.nodes(data=True):
        kind = data.get("kind")
        if node not in pos or kind == "network":
            continue
        x, y = pos[node]
        if kind == "port":
            text = ax.text(
                x, y, str(data.get("label", node)), ha="center", va="center",
                fontsize=PORT_PT * scale, zorder=4, gid=f"label:{node}",
                bbox={"boxstyle": "square,pad=0.25", "fc": "white", "ec": "black", "lw": 0.8},
            )
        else:
            text = ax.text(
                x, y, _node_text(data, project), ha="center", va="center",
                fontsize=NODE_PT * scale, zorder=4, gid=f"label:{node}",
                bbox={"boxstyle": "round,pad=0.35", "fc": _node_fill(data), "ec": "#37474f"},
            )
        boxes.append(text_box(text, renderer))
    return boxes


def _node_text(data: dict[str, Any], project: str = "") -> str:
    label = short_label(str(data.get("label", "")), project)
    if data.get("kind") == "service":
        name = str(data.get("service", ""))
        return label if label == name else f"{label}\n(service {name})"
    state = str(data.get("state") or "")
    health = str(data.get("health") or "none")
    detail = state if health == "none" else f"{state}, {health}"
    return f"{label}\n{detail}" if detail else label


def _node_fill(data: dict[str, Any]) -> str:
    if data.get("kind") == "container" and data.get("state") != "running":
        return "#eceff1"
    return HEALTH_COLORS.get(str(data.get("health") or "none"), HEALTH_COLORS["none"])


def edge_style(data: dict[str, Any]) -> dict[str, Any] | None:
    """Colour, line style, width and label of one edge (None: not drawn)."""
    kind, status = data.get("kind"), str(data.get("status") or "")
    color = STATUS_COLORS.get(status, STATUS_COLORS[""])
    if kind == "published":
        return {"color": "black", "ls": "-", "lw": 0.8, "label": ""}
    if kind == "observed":
        ms = data.get("connect_ms")
        label = (
            f"{ms:.1f} ms"
            if data.get("outcome") == "open" and ms is not None
            else str(data.get("outcome"))
        )
        if status == "violation":
            label = f"{label} ✗"
        return {
            "color": color,
            "ls": "--" if status == "denied" else "-",
            "lw": 2.2 if status == "violation" else 1.3,
            "label": label,
        }
    if kind == "expected":
        port = "any" if data.get("port") is None else data.get("port")
        color = STATUS_COLORS.get(status, "#455a64") if status else "#455a64"
        return {
            "color": color,
            "ls": ":",
            "lw": 2.0 if status == "violation" else 1.2,
            "label": f"{data.get('action')} :{port}",
        }
    return None


def _drawable_edges(
    g: nx.MultiDiGraph, show_unjudged: bool
) -> list[tuple[str, str, dict[str, Any]]]:
    observed_pairs = {(u, v) for u, v, d in g.edges(data=True) if d.get("kind") == "observed"}
    out = []
    for u, v, d in g.edges(data=True):
        kind = d.get("kind")
        if kind == "expected" and (u, v) in observed_pairs:
            continue  # the probe's edge already says it, judged
        if kind == "observed" and not d.get("verdict") and not show_unjudged:
            continue
        out.append((u, v, d))
    return sorted(out, key=lambda e: (e[0], e[1], str(e[2].get("port"))))


def _arc_point(p1: Point, p2: Point, rad: float, t: float) -> Point:
    """The point at ``t`` along matplotlib's ``arc3`` curve from p1 to p2 (equal axes)."""
    (x1, y1), (x2, y2) = p1, p2
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    s = 1 - t
    return (s * s * x1 + 2 * s * t * cx + t * t * x2, s * s * y1 + 2 * s * t * cy + t * t * y2)


def _overlap_area(box: Bbox, others: list[Bbox]) -> float:
    total = 0.0
    for o in others:
        w = min(box.x1, o.x1) - max(box.x0, o.x0)
        h = min(box.y1, o.y1) - max(box.y0, o.y0)
        if w > 0 and h > 0:
            total += w * h
    return total


def _draw_edges(ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point], scale: float,
                renderer: RendererBase, placed: list[Bbox], *, show_unjudged: bool) -> None:
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for u, v, data in _drawable_edges(g, show_unjudged):
        style = edge_style(data)
        if style is None or u not in pos or v not in pos:
            continue
        k = seen[(u, v)]
        seen[(u, v)] += 1
        unjudged = data.get("kind") == "observed" and not data.get("verdict")
        published = data.get("kind") == "published"
        rad = 0.0 if published else 0.2 + 0.12 * k
        ax.annotate(
            "",
            xy=pos[v],
            xytext=pos[u],
            zorder=2,
            arrowprops={
                "arrowstyle": "-|>",
                "color": style["color"],
                "ls": style["ls"],
                "lw": 0.6 if unjudged else style["lw"],
                "shrinkA": 4 if published else 20,
                "shrinkB": 10 if published else 20,
                "connectionstyle": f"arc3,rad={rad}",
                "alpha": 0.5 if unjudged else 1.0,
            },
        )
        if style["label"] and not unjudged:
            text = ax.text(0.0, 0.0, style["label"], fontsize=EDGE_PT * scale, ha="center",
                           va="center", zorder=3, color=style["color"], gid=f"label:{u}->{v}",
                           bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                                 "alpha": 0.85})
            best: tuple[float, Point, Bbox] | None = None
            for t, shift in LABEL_SPOTS:
                x, y = _arc_point(pos[u], pos[v], rad, t)
                text.set_position((x, y + shift))
                box = text_box(text, renderer)
                area = _overlap_area(box, placed)
                if best is None or area < best[0]:
                    best = (area, text.get_position(), box)
                if area == 0:
                    break
            assert best is not None
            text.set_position(best[1])
            placed.append(best[2])


# ---------------------------------------------------------------- output


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (no pyplot, no display backend needed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def show(fig: Figure, dpi: int = 110) -> Any:
    """An ``IPython.display.Image`` of the figure: what a notebook cell should end with
    (a bare ``Figure`` built without pyplot displays only as text)."""
    from IPython.display import Image

    return Image(data=figure_png(fig, dpi=dpi), format="png")  # type: ignore[no-untyped-call]
