"""Rendering: topology graphs and drawings, tables, HTML reports.

>>> from revivadiag.render import graph_from_snapshot, draw_topology
>>> draw_topology(graph_from_snapshot(snap, policy=load_policy()))     # doctest: +SKIP

Modules: ``topology`` (networkx graphs from a snapshot or a compose file, read by
:mod:`revivadiag.collect.compose`), ``draw`` (matplotlib), ``tables`` (escaped HTML
tables), ``report`` (the HTML report and secret scrubbing). Names below are imported on
first use, so importing one module does not pull in matplotlib or nbconvert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revivadiag._lazy import lazy_exports

if TYPE_CHECKING:
    from revivadiag.render.draw import draw_side_by_side, draw_topology, show
    from revivadiag.render.report import notebook_html
    from revivadiag.render.topology import graph_from_compose, graph_from_snapshot

_LAZY = {
    "graph_from_snapshot": "revivadiag.render.topology",
    "graph_from_compose": "revivadiag.render.topology",
    "draw_topology": "revivadiag.render.draw",
    "draw_side_by_side": "revivadiag.render.draw",
    "show": "revivadiag.render.draw",
    "notebook_html": "revivadiag.render.report",
}

__all__ = [
    "draw_side_by_side",
    "draw_topology",
    "graph_from_compose",
    "graph_from_snapshot",
    "notebook_html",
    "show",
]


__getattr__ = lazy_exports("revivadiag.render", _LAZY, globals())
