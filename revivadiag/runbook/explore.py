"""Helpers of the exploration notebooks (``notebooks/topology-explorer.ipynb``,
``dns-latency.ipynb``, ``config-audit.ipynb``): views of one snapshot, each a call.

Everything is learned from the snapshot's roles, never from the seed's names: the default
source of a probe is the stack's proxy, its default target the backend.

>>> from revivadiag.runbook import explore
>>> explore.reaches(snap, "proxy")                                  # doctest: +SKIP
>>> explore.latency_heatmap(snap)                                  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
from matplotlib.figure import Figure

from revivadiag.collect.roles import Roles

REACH_COLUMNS = ["target_service", "target_port", "outcome", "connect_ms", "error_type",
                 "method"]


# ---------------------------------------------------------------- roles and services


def roles_table(snap: Any) -> pd.DataFrame:
    """service, role, port, decided_by: who does what in this stack (sorted by service)."""
    roles = Roles.from_snapshot(snap).frame
    if roles.empty:
        return pd.DataFrame(columns=["service", "role", "port", "decided_by"])
    return (roles[["service", "role", "port", "decided_by"]]
            .sort_values("service").reset_index(drop=True))


def services(snap: Any) -> list[str]:
    """The services of the snapshot that have a running container, sorted."""
    c = snap.containers
    return sorted(set(c.loc[c["state"] == "running", "service"].astype(str)) - {""})


def default_pair(snap: Any) -> tuple[str, str]:
    """(source, target) a probe starts with: proxy -> backend by role, else the first two
    services. ``("", "")`` when the stack has fewer than two services.

    >>> from types import SimpleNamespace
    >>> from revivadiag import schemas
    >>> c = schemas.to_frame("containers", [{"name": n, "service": n, "state": "running"}
    ...                                     for n in ("b", "a")])
    >>> default_pair(SimpleNamespace(containers=c, roles=schemas.empty_frame("roles"),
    ...                              endpoints=schemas.empty_frame("endpoints")))
    ('a', 'b')
    """
    names = services(snap)
    roles = Roles.from_snapshot(snap)
    source = roles.service("proxy") or (names[0] if names else "")
    target = roles.service("backend") or next((s for s in names if s != source), "")
    return (source, target) if source and target else ("", "")


# ---------------------------------------------------------------- topology


def live_graph(snap: Any) -> nx.MultiDiGraph:
    """The live topology, judged against the default access policy."""
    from revivadiag.analyze.policy import load_policy
    from revivadiag.render.topology import graph_from_snapshot

    return graph_from_snapshot(snap, policy=load_policy())


def declared_graph(snap: Any) -> tuple[nx.MultiDiGraph | None, str]:
    """The declared topology from the compose files the containers' labels name, or
    ``(None, why)`` when there is none to read."""
    from revivadiag.analyze.policy import load_policy
    from revivadiag.collect.compose import declared_project, model_from_dict
    from revivadiag.errors import ComposeFileError
    from revivadiag.render.topology import graph_from_model

    try:
        doc = declared_project(snap)
    except ComposeFileError as exc:
        return None, str(exc)
    if doc is None:
        return None, "no compose file named by the containers' labels"
    model = model_from_dict(doc.data, origin=doc.origin, reader=doc.reader)
    return graph_from_model(model, policy=load_policy()), ""


def declared_vs_live(snap: Any) -> Figure:
    """Declared (compose file) and live (snapshot) topology, one figure."""
    from revivadiag.render import draw

    live = live_graph(snap)
    declared, why = declared_graph(snap)
    if declared is None:
        return draw.draw_topology(live, title=f"live (snapshot); declared unavailable: {why}")
    return draw.draw_side_by_side(declared, live)


def reaches(snap: Any, service: str) -> pd.DataFrame:
    """What ``service`` reaches and how fast: one row per target ``service:port`` probed
    from it (open first, then by connect time). ServiceNotFound names the known services."""
    from revivadiag.errors import ServiceNotFound

    if service not in services(snap):
        raise ServiceNotFound(service, services(snap))
    reach = snap.reachability
    rows = reach[reach["source_service"] == service]
    if rows.empty:
        return pd.DataFrame(columns=REACH_COLUMNS)
    table = rows[REACH_COLUMNS].drop_duplicates(["target_service", "target_port"])
    return (table.assign(_open=table["outcome"] != "open")
            .sort_values(["_open", "connect_ms", "target_service", "target_port"])
            .drop(columns="_open").reset_index(drop=True))


# ---------------------------------------------------------------- DNS and latency


def connect_matrix(snap: Any) -> pd.DataFrame:
    """Source service (rows) x target service (columns): the fastest open connect, ms
    (NaN: no open path)."""
    reach = snap.reachability
    if reach.empty:
        return pd.DataFrame()
    opened = reach[reach["outcome"] == "open"]
    matrix = opened.pivot_table(index="source_service", columns="target_service",
                                values="connect_ms", aggfunc="min")
    names = sorted(set(reach["source_service"]) | set(reach["target_service"]))
    matrix = matrix.reindex(index=names, columns=names)
    matrix.index.name, matrix.columns.name = "source", "target"
    return matrix


def latency_heatmap(snap: Any) -> Figure:
    """A source x target heatmap of connect times (grey: no open path), values written."""
    matrix = connect_matrix(snap)
    fig = Figure(figsize=(1.2 + 1.1 * max(1, matrix.shape[1]), 1.0 + 0.6 * max(1, len(matrix))),
                 layout="constrained")
    ax = fig.add_subplot()
    if matrix.empty:
        ax.set_title("no reachability measured")
        ax.set_axis_off()
        return fig
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis_r", aspect="auto")
    ax.set_facecolor("#e0e0e0")
    ax.set_xticks(range(matrix.shape[1]), list(matrix.columns), rotation=30, ha="right")
    ax.set_yticks(range(len(matrix)), list(matrix.index))
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    for (i, j), v in pd.DataFrame(values).stack().items():
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white")
    fig.colorbar(image, ax=ax, label="connect ms (fastest)")
    ax.set_title("TCP connect time, source x target")
    return fig


def latency_table(snap: Any) -> pd.DataFrame:
    """p50 / p95 / p99 (ms) per measured path, with sample and error counts."""
    cols = ["path", "source", "phase", "samples", "errors", "p50_ms", "p95_ms", "p99_ms"]
    lat = snap.latency
    if lat.empty:
        return pd.DataFrame(columns=cols)
    return lat[cols].sort_values(["path", "phase"]).reset_index(drop=True)


def dns_times(snap: Any) -> pd.DataFrame:
    """Per name asked of Docker's resolver: how often, the answer codes, and the lookup
    time (median and max, ms) over every container that asked."""
    dns = snap.dns
    cols = ["query", "asked", "rcodes", "median_ms", "max_ms"]
    if dns.empty:
        return pd.DataFrame(columns=cols)
    grouped = dns.groupby("query")
    out = pd.DataFrame({
        "asked": grouped.size(),
        "rcodes": grouped["rcode"].agg(lambda s: ", ".join(sorted(set(map(str, s))))),
        "median_ms": grouped["latency_ms"].median(),
        "max_ms": grouped["latency_ms"].max(),
    }).reset_index()
    return out[cols].sort_values("query").reset_index(drop=True)


# ---------------------------------------------------------------- config and source audit


def audit_tree(root: str | Path) -> pd.DataFrame:
    """Hard-coded backend URLs and the like in a source tree (the ``source_findings`` frame,
    paths relative to ``root``). InputError when ``root`` is not a directory."""
    from revivadiag.analyze.source_audit import audit_source
    from revivadiag.errors import InputError

    if not Path(root).is_dir():
        raise InputError(f"source tree {str(root)!r} is not a directory")
    return audit_source(root).sort_values(["file", "line"]).reset_index(drop=True)


def config_findings(snap: Any, environment: str = "development") -> pd.DataFrame:
    """The running project's configuration and policy findings (no live traffic): id,
    severity, category, title."""
    from revivadiag.analyze.diagnosis import diagnose

    findings = diagnose(snap, environment=environment, live=False).findings
    keep = findings[~findings["id"].astype(str).str.startswith("RD-KPI")]
    return (keep[["id", "severity", "category", "title"]]
            .sort_values(["severity", "id", "title"]).reset_index(drop=True))
