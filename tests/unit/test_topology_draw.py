"""Drawing: layout positions and the artists drawn for nodes and edges (no pixel comparison)."""

from __future__ import annotations

from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from test_topology import SPLIT, flat_snapshot

from revivadiag.analyze.policy import load_policy
from revivadiag.render.draw import STATUS_COLORS, draw_side_by_side, draw_topology
from revivadiag.render.layout import aspect_ratio, layout, network_order
from revivadiag.render.topology import graph_from_compose, graph_from_snapshot


def declared() -> object:
    return graph_from_compose(
        SPLIT, project="lab", profiles=["development"], env={}, policy=load_policy()
    )


def test_layout_places_every_node() -> None:
    """Every node of the graph gets a position."""
    g = graph_from_snapshot(flat_snapshot(), policy=load_policy())
    assert set(layout(g)) == set(g.nodes)


def test_layout_puts_shared_workload_between_its_networks() -> None:
    """A service on two networks sits between the services of each network."""
    g = declared()
    pos = layout(g)
    x = {s: pos[f"service:{s}"][0] for s in ("frontend", "backend", "database", "redis")}
    assert network_order(g) == ["network:lab_data", "network:lab_edge"]
    assert x["database"] < x["backend"] < x["frontend"]


def test_layout_port_sits_above_its_workload() -> None:
    """A published port is drawn just above the workload it leads to."""
    pos = layout(graph_from_snapshot(flat_snapshot()))
    port, box = pos["port:127.0.0.1:5435/tcp"], pos["container:lab_new_database"]
    assert port[1] > box[1]
    assert abs(port[0] - box[0]) < 1.0


def _arrows(fig: Figure) -> list[Annotation]:
    return [a for ax in fig.axes for a in ax.texts if isinstance(a, Annotation)]


def test_aspect_ratio_is_clamped() -> None:
    """Figures are sized from the layout, within sane bounds."""
    import networkx as nx

    assert 0.35 <= aspect_ratio(declared()) <= 1.2
    assert aspect_ratio(nx.MultiDiGraph()) == 0.6


def test_draw_colours_violation_edges() -> None:
    """Violations are drawn red and labelled with their connect time."""
    g = graph_from_snapshot(
        flat_snapshot(outcome={("frontend", "redis"): "timeout"}), policy=load_policy()
    )
    fig = draw_topology(g, title="live")
    colours = [to_hex(a.arrow_patch.get_edgecolor()) for a in _arrows(fig)
               if a.arrow_patch is not None]
    judged = [d for _, _, d in g.edges(data=True) if d.get("kind") == "observed" and d["verdict"]]
    violations = [d for d in judged if d["status"] == "violation"]
    assert colours.count(STATUS_COLORS["violation"]) == len(violations) == 2
    assert colours.count(STATUS_COLORS["denied"]) == 1  # frontend -> redis, timed out
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.2 ms ✗" in texts
    assert "timeout" in texts
    assert fig.axes[0].get_title() == "live"


def test_draw_shows_node_and_network_labels() -> None:
    """Container names with state and health, network names and host ports are written."""
    fig = draw_topology(graph_from_snapshot(flat_snapshot()))
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert "new_backend\nrunning, healthy" in texts  # the title names the project "lab"
    assert "default" in texts
    assert "127.0.0.1:3010" in texts


def test_unjudged_edges_hidden_unless_asked() -> None:
    """Without a policy no observed edge is judged; show_unjudged draws them, unlabelled."""
    g = graph_from_snapshot(flat_snapshot())
    assert len(_arrows(draw_topology(g))) == 4  # the published ports only
    assert len(_arrows(draw_topology(g, show_unjudged=True))) == 4 + 12


def test_side_by_side_has_two_axes_and_one_legend() -> None:
    """Declared left, live right, one shared legend naming the edge classes."""
    live = graph_from_snapshot(flat_snapshot(), policy=load_policy())
    fig = draw_side_by_side(declared(), live)
    assert [ax.get_title() for ax in fig.axes] == ["declared (compose file)", "live (snapshot)"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"allowed", "violation", "denied / closed"} <= set(labels)


def test_draw_into_given_axes() -> None:
    """Drawing into an existing Axes returns that Axes' figure."""
    fig = Figure()
    ax = fig.add_subplot()
    assert draw_topology(graph_from_snapshot(flat_snapshot()), ax=ax) is fig


def test_draw_empty_graph() -> None:
    """An empty graph draws an empty, titled figure."""
    import networkx as nx

    fig = draw_topology(nx.MultiDiGraph(), title="nothing")
    assert fig.axes[0].get_title() == "nothing"


def test_draw_accepts_a_snapshot() -> None:
    """Given a snapshot instead of a graph, it is drawn against the default policy."""
    fig = draw_topology(flat_snapshot())
    assert "0.2 ms ✗" in [t.get_text() for t in fig.axes[0].texts]


def test_render_package_exports() -> None:
    """The render package's public names resolve lazily to the real functions."""
    import revivadiag.render as render

    assert render.draw_topology is draw_topology
    assert set(render.__all__) == {"draw_side_by_side", "draw_topology", "graph_from_compose",
                                   "graph_from_snapshot", "notebook_html", "show"}
