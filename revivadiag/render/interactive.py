"""An interactive topology for notebooks (plotly): zoom and pan, hover for the probe's figures.

The same positions and hulls as the static drawing (:mod:`revivadiag.render.layout`);
hovering a workload lists what it reached, with outcome and connect time; hovering the middle
of an edge gives that path's figures. The static figure stays what reports keep.

>>> from revivadiag.render.interactive import interactive_topology
>>> interactive_topology(graph)                                   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from revivadiag.render.draw import NETWORK_COLORS, STATUS_COLORS, _node_text, edge_style
from revivadiag.render.layout import layout, network_hull, network_name, network_order
from revivadiag.render.topology import WORKLOAD_KINDS


def hover_text(g: nx.MultiDiGraph, node: str) -> str:
    """A workload's hover text: name, state, networks, then one line per observed path
    from it (``target:port outcome 0.21 ms``).

    >>> g = nx.MultiDiGraph()
    >>> g.add_node("container:a", kind="container", label="a", state="running")
    >>> g.add_node("container:b", kind="container", label="b")
    >>> g.add_edge("container:a", "container:b", kind="observed", port=80, outcome="open",
    ...            connect_ms=0.214, status="allowed")
    0
    >>> print(hover_text(g, "container:a").replace("<br>", "|"))
    <b>a</b>|running|→ b:80 open 0.21 ms (allowed)
    """
    data = g.nodes[node]
    lines = [f"<b>{data.get('label', node)}</b>", str(data.get("state") or data.get("kind"))]
    nets = sorted(str(g.nodes[v].get("label", v)) for _, v, d in g.out_edges(node, data=True)
                  if d.get("kind") == "attachment")
    if nets:
        lines.append("networks: " + ", ".join(nets))
    for _, v, d in sorted(g.out_edges(node, data=True), key=lambda e: (e[1], str(e[2]))):
        if d.get("kind") == "observed":
            lines.append(f"→ {_path_text(g, v, d)}")
    return "<br>".join(lines)


def _path_text(g: nx.MultiDiGraph, target: str, d: dict[str, Any]) -> str:
    ms = d.get("connect_ms")
    timing = f" {ms:.2f} ms" if ms is not None and d.get("outcome") == "open" else ""
    status = f" ({d['status']})" if d.get("status") else ""
    return f"{g.nodes[target].get('label', target)}:{d.get('port')} {d.get('outcome')}" \
        f"{timing}{status}"


def interactive_topology(g: nx.MultiDiGraph, *, show_unjudged: bool = True,
                         height: int = 640) -> Any:
    """A ``plotly.graph_objects.Figure`` of ``g``: hulls, edges, workloads with hover text."""
    import plotly.graph_objects as go

    pos = layout(g)
    fig = go.Figure()
    project = str(g.graph.get("project") or "")
    for i, net in enumerate(network_order(g)):
        hull = network_hull(g, pos, net)
        if not hull:
            continue
        xs, ys = [p[0] for p in hull] + [hull[0][0]], [p[1] for p in hull] + [hull[0][1]]
        color = NETWORK_COLORS[i % len(NETWORK_COLORS)]
        fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines", opacity=0.25,
                                 line={"color": color}, name=network_name(g, net),
                                 hoverinfo="name"))
    mid_x, mid_y, mid_text = [], [], []
    for u, v, d in g.edges(data=True):
        if d.get("kind") not in ("observed", "expected") or u not in pos or v not in pos:
            continue
        if d.get("kind") == "observed" and not d.get("verdict") and not show_unjudged:
            continue
        style = edge_style(d) or {"color": STATUS_COLORS[""]}
        (x1, y1), (x2, y2) = pos[u], pos[v]
        fig.add_trace(go.Scatter(x=[x1, x2], y=[y1, y2], mode="lines", showlegend=False,
                                 hoverinfo="skip",
                                 line={"color": style["color"], "width": 1,
                                       "dash": "dot" if d.get("kind") == "expected" else None}))
        mid_x.append(x1 + (x2 - x1) * 0.55)
        mid_y.append(y1 + (y2 - y1) * 0.55)
        head = f"{g.nodes[u].get('label', u)} → "
        mid_text.append(head + (_path_text(g, v, d) if d.get("kind") == "observed" else
                                f"{g.nodes[v].get('label', v)} expected {d.get('action')}"))
    fig.add_trace(go.Scatter(x=mid_x, y=mid_y, mode="markers", name="paths",
                             marker={"size": 6, "color": "#607d8b"}, text=mid_text,
                             hovertemplate="%{text}<extra></extra>"))
    nodes = [n for n, d in g.nodes(data=True) if d.get("kind") in WORKLOAD_KINDS and n in pos]
    from revivadiag.render.draw import _node_fill

    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        name="workloads",
        text=[_node_text(g.nodes[n], project).split("\n")[0] for n in nodes],
        textposition="top center",
        hovertext=[hover_text(g, n) for n in nodes], hoverinfo="text",
        marker={"size": 18, "color": [_node_fill(g.nodes[n]) for n in nodes],
                "line": {"color": "#37474f", "width": 1}},
    ))
    fig.update_layout(height=height, dragmode="pan", hovermode="closest",
                      title=f"{g.graph.get('source', 'topology')}: {project} (hover, zoom)",
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                      plot_bgcolor="white", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
