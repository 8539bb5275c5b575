"""The ``networks`` and ``endpoints`` frames, parsed from network and container inspect dicts.

``dns_names`` lists every name Docker's embedded resolver (127.0.0.11) answers for a
container on one network: its name, its network aliases (Compose adds the service name) and
its short id. The resolver serves user-defined networks only, and only running containers:
on ``bridge``, ``host`` and ``none``, and for a stopped container, the list is empty.
(Docker also answers ``<name>.<network>``; that form is implied and not listed.)

>>> dns_names("p_web_1", "3f2a9c1d0e8b77", "p_default", ["web", "3f2a9c1d0e8b"], running=True)
['p_web_1', 'web', '3f2a9c1d0e8b']
>>> dns_names("p_web_1", "3f2a9c1d0e8b77", "bridge", [], running=True)
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from revivadiag.collect.containers import compose_identity, container_name
from revivadiag.collect.inventory import project_label
from revivadiag.schemas import to_frame

Row = dict[str, Any]
#: networks on which Docker's resolver does not answer container names
BUILTIN_NETWORKS = frozenset({"bridge", "host", "none"})
SHORT_ID_LEN = 12


def first_ipv4_config(network: Mapping[str, Any]) -> tuple[str, str]:
    """(subnet, gateway) of the first IPv4 IPAM config, or empty strings."""
    for cfg in ((network.get("IPAM") or {}).get("Config") or []):
        subnet = str((cfg or {}).get("Subnet") or "")
        if subnet and ":" not in subnet:
            return subnet, str(cfg.get("Gateway") or "")
    return "", ""


def parse_network(network: Mapping[str, Any]) -> Row:
    """One ``networks`` row from a network inspect dict."""
    subnet, gateway = first_ipv4_config(network)
    return {
        "network_id": network.get("Id", ""),
        "name": network.get("Name", ""),
        "driver": network.get("Driver", ""),
        "subnet": subnet,
        "gateway": gateway,
        "internal": bool(network.get("Internal", False)),
        "project": project_label(network.get("Labels") or {}),
    }


def parse_networks(networks: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The ``networks`` frame, sorted by name."""
    rows = sorted((parse_network(n) for n in networks), key=lambda r: str(r["name"]))
    return to_frame("networks", rows)


def dns_names(
    name: str, container_id: str, network: str, aliases: Iterable[str], running: bool
) -> list[str]:
    """Every name Docker's resolver answers for this container on ``network``, deduplicated."""
    if not running or network in BUILTIN_NETWORKS:
        return []
    names = [name, *aliases, container_id[:SHORT_ID_LEN]]
    seen: dict[str, None] = {}
    for n in names:
        if n:
            seen.setdefault(n, None)
    return list(seen)


def parse_endpoints(
    inspects: Iterable[Mapping[str, Any]], project: str | None = None
) -> pd.DataFrame:
    """The ``endpoints`` frame: one row per container x attached network."""
    rows: list[Row] = []
    for inspect in inspects:
        name = container_name(inspect)
        _, service, _ = compose_identity(inspect, project)
        running = bool((inspect.get("State") or {}).get("Running"))
        attached = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
        for net_name, ep in sorted(attached.items()):
            ep = ep or {}
            aliases = [str(a) for a in (ep.get("Aliases") or [])]
            rows.append({
                "container": name,
                "service": service,
                "network": net_name,
                "ipv4": ep.get("IPAddress") or "",
                "aliases": aliases,
                "dns_names": dns_names(name, str(inspect.get("Id", "")), net_name, aliases,
                                       running),
            })
    rows.sort(key=lambda r: (r["service"], r["container"], r["network"]))
    return to_frame("endpoints", rows)
