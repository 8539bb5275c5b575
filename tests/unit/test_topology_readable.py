"""A topology people can read: no label covers another, no network's hull covers a workload
that is not on it, a workload on several networks sits between them, and names keep a
readable size at the report's width, from the 4-container labs to the 60-container stack."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Bbox
from test_topology import flat_snapshot
from topology_synthetic import synthetic_graph

from revivadiag.analyze.policy import load_policy
from revivadiag.render.draw import (
    _renderer,
    draw_side_by_side,
    draw_topology,
    label_texts,
    text_box,
)
from revivadiag.render.layout import layout, members_of, network_hull, network_order
from revivadiag.render.topology import WORKLOAD_KINDS, graph_from_compose, graph_from_snapshot

COMPOSE = Path(__file__).resolve().parents[2] / "revivadiag" / "lab" / "compose"
ENV = {"LAB_PREFIX": "rdt0123abcd", "DATABASE_PASSWORD": "p", "REDIS_PASSWORD": "p",
       "JWT_SECRET": "s", "APP_ENV": "development"}
#: the report's width in CSS pixels and the dpi its figures are saved at
REPORT_PX, DPI = 1200, 110
#: smallest font (px on screen at the report's width) that counts as readable
READABLE_PX = 9.0


def declared(*files: str) -> nx.MultiDiGraph:
    return graph_from_compose([str(COMPOSE / f) for f in files], project="rdt0123abcd",
                              env=ENV, policy=load_policy(), strict=False)


GRAPHS = {
    "target": lambda: declared("target.yml"),
    "current": lambda: declared("current.yml"),
    "shop-target": lambda: declared("shop/target.yml"),
    "live-flat": lambda: graph_from_snapshot(flat_snapshot("rdt0123abcd"), policy=load_policy()),
    "synthetic-60x4": lambda: synthetic_graph(60, 4, bridges=3),
    "synthetic-60x6": lambda: synthetic_graph(60, 6, bridges=4),
}


def boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    renderer = _renderer(fig)
    return [(str(t.get_gid()), text_box(t, renderer)) for ax in fig.axes for t in label_texts(ax)]


def overlaps(a: Bbox, b: Bbox, tolerance_px: float = 0.5) -> bool:
    return bool(min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance_px
            and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance_px)


@pytest.mark.parametrize("name", GRAPHS)
def test_no_label_covers_another(name: str) -> None:
    """Node, port, network and edge labels: no two rendered boxes intersect."""
    fig = draw_topology(GRAPHS[name]())
    found = boxes(fig)
    assert len(found) >= 5
    clashes = [(a, b) for i, (a, ba) in enumerate(found) for b, bb in found[i + 1:]
               if overlaps(ba, bb)]
    assert clashes == []


@pytest.mark.parametrize("name", GRAPHS)
def test_hull_covers_only_its_workloads(name: str) -> None:
    """A network's shaded hull does not reach the label of a workload not attached to it."""
    g = GRAPHS[name]()
    fig = draw_topology(g)
    ax = fig.axes[0]
    pos = layout(g)
    by_gid = dict(boxes(fig))
    intruders = []
    for net in network_order(g):
        corners = network_hull(g, pos, net)
        hull = MplPath(ax.transData.transform(corners + corners[:1]), closed=True)
        members = set(members_of(g, net))
        for node, data in g.nodes(data=True):
            if data.get("kind") in WORKLOAD_KINDS and node not in members \
                    and hull.intersects_bbox(by_gid[f"label:{node}"], filled=True):
                intruders.append((net, node))
    assert intruders == []


@pytest.mark.parametrize("name", [n for n in GRAPHS if n != "synthetic-60x6"])
def test_names_readable_at_report_width(name: str) -> None:
    """Every label's font, once the PNG is shrunk to the report's width, is >= 9 px (up to the
    benchmark's stack: 60 containers on 4 networks; on 6 they shrink, still apart)."""
    fig = draw_topology(GRAPHS[name]())
    shrink = min(1.0, REPORT_PX / (fig.get_figwidth() * DPI))
    sizes = [float(t.get_fontsize()) * DPI / 72 * shrink
             for ax in fig.axes for t in label_texts(ax)]
    assert min(sizes) >= READABLE_PX


def test_side_by_side_report_figure_readable() -> None:
    """The report's declared-vs-live figure: no overlap, readable (60 containers: stacked)."""
    for left, right in ((GRAPHS["target"](), GRAPHS["live-flat"]()),
                        (GRAPHS["synthetic-60x4"](), GRAPHS["synthetic-60x4"]())):
        fig = draw_side_by_side(left, right)
        found = boxes(fig)
        assert not [(a, b) for i, (a, ba) in enumerate(found) for b, bb in found[i + 1:]
                    if overlaps(ba, bb)]
        shrink = min(1.0, REPORT_PX / (fig.get_figwidth() * DPI))
        assert min(float(t.get_fontsize()) for ax in fig.axes for t in label_texts(ax)) \
            * DPI / 72 * shrink >= READABLE_PX


def test_shared_workload_sits_between_its_networks() -> None:
    """target: the backend (on all three networks) lies inside the triangle of the three
    single-network services; shop-target: the api lies between web, db and cache."""
    for g, middle, outer in (
        (GRAPHS["target"](), "service:backend", ("service:frontend", "service:database",
                                                 "service:redis")),
        (GRAPHS["shop-target"](), "service:api", ("service:web", "service:db",
                                                  "service:cache")),
    ):
        pos = layout(g)
        triangle = MplPath([pos[n] for n in (*outer, outer[0])], closed=True)
        assert triangle.contains_point(pos[middle])


def test_check_catches_an_overlap() -> None:
    """The overlap check itself fails on a drawing whose labels do overlap."""
    fig = draw_topology(GRAPHS["target"]())
    ax = fig.axes[0]
    first, second = [t for t in label_texts(ax) if str(t.get_gid()).startswith("label:service")][:2]
    second.set_position(first.get_position())
    found = dict(boxes(fig))
    assert overlaps(found[str(first.get_gid())], found[str(second.get_gid())])
