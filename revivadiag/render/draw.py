"""Matplotlib drawings of a topology graph (see :mod:`revivadiag.render.topology`).

Networks are drawn as shaded groups around their workloads; containers attached to two
networks sit between them. Edges are coloured by ``status`` (allowed / denied / violation /
unknown); observed edges carry their connect time, expected edges that no probe covered are
dotted. Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so
callers own them; in a notebook the last expression displays them.

Positions come from :mod:`revivadiag.render.layout` (pure, tested); drawing itself is
checked through the artists it adds.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from revivadiag.analyze.policy import load_policy
from revivadiag.render.layout import (
    HULL_BOTTOM,
    HULL_PAD,
    HULL_TOP,
    Point,
    aspect_ratio,
    bounds,
    layout,
    network_order,
    networks_of,
)
from revivadiag.render.topology import WORKLOAD_KINDS, graph_from_snapshot

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
NETWORK_COLORS = ("#bbdefb", "#c8e6c9", "#ffe0b2", "#e1bee7", "#b2ebf2", "#f8bbd0")


# ---------------------------------------------------------------- drawing


def draw_topology(
    graph: nx.MultiDiGraph | Any,
    ax: Axes | None = None,
    title: str | None = None,
    *,
    show_unjudged: bool = False,
    legend: bool = True,
) -> Figure:
    """Draw a topology graph; returns the figure (a new one when ``ax`` is None).

    ``graph`` may also be a snapshot: it is then drawn against the default access policy.
    ``show_unjudged`` also draws observed edges the policy says nothing about (thin, no label).
    """
    if not isinstance(graph, nx.Graph):
        graph = graph_from_snapshot(graph, policy=load_policy())
    if ax is None:
        ax = Figure(figsize=(9, 9 * aspect_ratio(graph) + 0.8), layout="constrained").add_subplot()
    fig = ax.get_figure(root=True)
    if not isinstance(fig, Figure):  # an Axes always belongs to a figure
        raise TypeError("the Axes given is not attached to a Figure")
    pos = layout(graph)
    _draw_networks(ax, graph, pos)
    _draw_edges(ax, graph, pos, show_unjudged=show_unjudged)
    _draw_nodes(ax, graph, pos)
    _frame_axes(ax, pos)
    ax.set_title(title if title is not None else _default_title(graph))
    if legend:
        ax.legend(handles=legend_handles(), loc="lower left", fontsize=7, framealpha=0.9)
    return fig


def draw_side_by_side(
    declared: nx.MultiDiGraph,
    live: nx.MultiDiGraph,
    titles: tuple[str, str] = ("declared (compose file)", "live (snapshot)"),
    *,
    show_unjudged: bool = False,
) -> Figure:
    """The declared and the live topology next to each other, one legend for both."""
    ratio = max(aspect_ratio(declared), aspect_ratio(live))
    fig = Figure(figsize=(16, 8 * ratio + 1.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    draw_topology(declared, ax=left, title=titles[0], legend=False, show_unjudged=show_unjudged)
    draw_topology(live, ax=right, title=titles[1], legend=False, show_unjudged=show_unjudged)
    fig.legend(handles=legend_handles(), loc="outside lower center", ncols=6, fontsize=8)
    return fig


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


def _draw_networks(ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point]) -> None:
    for i, net in enumerate(network_order(g)):
        members = [
            pos[n]
            for n in pos
            if g.nodes[n].get("kind") in WORKLOAD_KINDS and net in networks_of(g, n)
        ]
        if not members:
            continue
        x0, y0, x1, y1 = bounds(members)
        color = NETWORK_COLORS[i % len(NETWORK_COLORS)]
        inset = 0.12 * (i % 3)  # nested groups stay distinguishable where they overlap
        ax.add_patch(
            FancyBboxPatch(
                (x0 - HULL_PAD + inset, y0 - HULL_BOTTOM + inset),
                x1 - x0 + 2 * (HULL_PAD - inset),
                y1 - y0 + HULL_TOP + HULL_BOTTOM - 2 * inset,
                boxstyle="round,pad=0.02,rounding_size=0.25",
                facecolor=color,
                edgecolor=color,
                alpha=0.35,
                zorder=0,
                gid=net,
            )
        )
        data = g.nodes[net]
        suffix = " (internal)" if data.get("internal") else ""
        ax.text(
            x0 - HULL_PAD + inset + 0.1,
            y1 + HULL_TOP - inset - 0.08,
            f"{data.get('label', net)}{suffix}",
            fontsize=8,
            va="top",
            ha="left",
            color="#263238",
            style="italic",
            zorder=1,
        )


def _draw_nodes(ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point]) -> None:
    for node, data in g.nodes(data=True):
        kind = data.get("kind")
        if node not in pos or kind == "network":
            continue
        x, y = pos[node]
        if kind == "port":
            ax.text(
                x,
                y,
                str(data.get("label", node)),
                ha="center",
                va="center",
                fontsize=7,
                zorder=4,
                gid=node,
                bbox={"boxstyle": "square,pad=0.25", "fc": "white", "ec": "black", "lw": 0.8},
            )
            continue
        ax.text(
            x,
            y,
            _node_text(data),
            ha="center",
            va="center",
            fontsize=8,
            zorder=4,
            gid=node,
            bbox={"boxstyle": "round,pad=0.35", "fc": _node_fill(data), "ec": "#37474f"},
        )


def _node_text(data: dict[str, Any]) -> str:
    if data.get("kind") == "service":
        name, label = str(data.get("service", "")), str(data.get("label", ""))
        return label if label == name else f"{label}\n(service {name})"
    state = str(data.get("state") or "")
    health = str(data.get("health") or "none")
    detail = state if health == "none" else f"{state}, {health}"
    return f"{data.get('label', '')}\n{detail}" if detail else str(data.get("label", ""))


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


def _draw_edges(
    ax: Axes, g: nx.MultiDiGraph, pos: dict[str, Point], *, show_unjudged: bool
) -> None:
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
        (x1, y1), (x2, y2) = pos[u], pos[v]
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            zorder=2,
            arrowprops={
                "arrowstyle": "-|>",
                "color": style["color"],
                "ls": style["ls"],
                "lw": 0.6 if unjudged else style["lw"],
                "shrinkA": 4 if published else 18,
                "shrinkB": 10 if published else 18,
                "connectionstyle": f"arc3,rad={rad}",
                "alpha": 0.5 if unjudged else 1.0,
            },
        )
        if style["label"] and not unjudged:
            mx, my = (x1 + x2) / 2 + 0.5 * rad * (y2 - y1), (y1 + y2) / 2 - 0.5 * rad * (x2 - x1)
            ax.text(
                mx,
                my,
                style["label"],
                fontsize=6.5,
                ha="center",
                va="center",
                zorder=3,
                color=style["color"],
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )


def _frame_axes(ax: Axes, pos: dict[str, Point]) -> None:
    if pos:
        x0, y0, x1, y1 = bounds(list(pos.values()))
        ax.set_xlim(x0 - 1.4, x1 + 1.6)
        ax.set_ylim(y0 - 1.3, y1 + 0.6)
    ax.set_aspect("equal")  # edge labels sit on their arcs only with equal scales
    ax.set_axis_off()


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
