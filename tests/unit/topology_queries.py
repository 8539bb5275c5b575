"""Queries over a topology graph, for the topology tests."""

from __future__ import annotations

from typing import Any

import networkx as nx


def edges_of(g: nx.MultiDiGraph, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(u, v, data) of every edge of one kind, sorted by (u, v)."""
    return sorted(
        ((u, v, d) for u, v, d in g.edges(data=True) if d.get("kind") == kind),
        key=lambda e: (e[0], e[1], str(e[2].get("port"))),
    )


def nodes_of(g: nx.MultiDiGraph, *kinds: str) -> list[str]:
    """Node ids of the given kinds, sorted."""
    return sorted(n for n, d in g.nodes(data=True) if d.get("kind") in kinds)
