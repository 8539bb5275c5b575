"""Synthetic topology graphs for the drawing tests: the shapes the benchmark and the labs make.

``synthetic_graph(60, 4)`` is the benchmark's stack (``benchmarks/synthetic_stack.py``):
container ``svcNNN`` on network ``i % networks``, every container running, named as Compose
names them; ``bridges`` adds that many services attached to two or three networks.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import networkx as nx

from revivadiag import schemas
from revivadiag.render.topology import graph_from_snapshot


def synthetic_snapshot(containers: int, networks: int, bridges: int = 0,
                       project: str = "rdb0a1b2c3d") -> Any:
    """Frames of ``containers`` containers on ``networks`` networks (+ ``bridges``)."""
    nets = [f"{project}_net{k}" for k in range(networks)]
    rows, endpoints = [], []
    for i in range(containers + bridges):
        service = f"svc{i:03d}" if i < containers else f"bridge{i - containers}"
        name = f"{project}_{service}_1"
        rows.append({"name": name, "project": project, "service": service, "state": "running",
                     "health": "healthy", "labels": "{}"})
        attached = ([nets[i % networks]] if i < containers else
                    [nets[(i + k) % networks] for k in range(2 + (i % 2))])
        endpoints += [{"container": name, "service": service, "network": n,
                       "ipv4": f"10.{k}.0.{i % 250 + 2}"} for k, n in enumerate(attached)]
    return SimpleNamespace(
        containers=schemas.to_frame("containers", rows),
        networks=schemas.to_frame("networks", [{"name": n, "driver": "bridge",
                                                "internal": False} for n in nets]),
        endpoints=schemas.to_frame("endpoints", endpoints),
        metadata={"project": project},
    )


def synthetic_graph(containers: int, networks: int, bridges: int = 0) -> nx.MultiDiGraph:
    """The live graph of :func:`synthetic_snapshot`."""
    return graph_from_snapshot(synthetic_snapshot(containers, networks, bridges))
