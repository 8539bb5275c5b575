"""Helpers of ``notebooks/debug-connectivity.ipynb``: views of a snapshot and one probe.

>>> from revivadiag.runbook import debug
>>> debug.reachability_pivot(snap)                                    # doctest: +SKIP
>>> debug.probe(snap, "web", "db")                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from revivadiag import schemas
from revivadiag.errors import ServiceNotFound

PROBE_TIMEOUT_S = 1.0


def cell_text(outcome: Any, connect_ms: Any) -> str:
    """``open 0.21 ms``, ``timeout``: one cell of the reachability pivot.

    >>> cell_text("open", 0.214), cell_text("refused", 0.3), cell_text("timeout", None)
    ('open 0.21 ms', 'refused', 'timeout')
    """
    if outcome == "open" and connect_ms is not None and not pd.isna(connect_ms):
        return f"open {float(connect_ms):.2f} ms"
    return str(outcome)


def reachability_pivot(snap: Any) -> pd.DataFrame:
    """Source service (rows) x target ``service:port`` (columns): outcome and connect time."""
    reach = snap.reachability
    if reach.empty:
        return pd.DataFrame()
    frame = reach.assign(
        target_col=reach["target_service"] + ":" + reach["target_port"].astype(str),
        text=[
            cell_text(o, ms) for o, ms in zip(reach["outcome"], reach["connect_ms"], strict=True)
        ],
    )
    pivot = frame.pivot_table(
        index="source_service",
        columns="target_col",
        values="text",
        aggfunc=lambda s: " / ".join(sorted(set(s))),
        fill_value="-",
    )
    pivot.columns.name = None
    return pivot


def dns_table(snap: Any) -> pd.DataFrame:
    """Who asked Docker's resolver for which name, and what came back."""
    dns = snap.dns
    cols = ["source_service", "query", "query_kind", "rcode", "answers", "latency_ms"]
    if dns.empty:
        return pd.DataFrame(columns=cols)
    table = dns[cols].copy()
    table["answers"] = table["answers"].map(lambda a: ", ".join(a) if isinstance(a, list) else "")
    return table.sort_values(["source_service", "query"]).reset_index(drop=True)


def service_port(snap: Any, service: str) -> int:
    """The first port the service's containers expose (``5432/tcp`` -> 5432), else 0."""
    rows = snap.containers[snap.containers["service"] == service]
    for ports in rows["exposed_ports"]:
        for spec in ports or []:
            head = str(spec).split("/")[0]
            if head.isdigit():
                return int(head)
    return 0


def source_container(snap: Any, service: str) -> pd.Series:
    """The first running container of ``service``; ServiceNotFound lists the known ones."""
    rows = snap.containers[
        (snap.containers["service"] == service) & (snap.containers["state"] == "running")
    ]
    if rows.empty:
        raise ServiceNotFound(service, sorted(set(snap.containers["service"])))
    return rows.sort_values("name").iloc[0]


def probe_job(target_service: str, port: int) -> dict[str, Any]:
    """One TCP connect by service name, resolved at Docker's resolver, short timeout."""
    from revivadiag.engine.jobs import DOCKER_DNS

    return {
        "kind": "tcp",
        "host": target_service,
        "port": port,
        "timeout_s": PROBE_TIMEOUT_S,
        "retries": 0,
        "server": DOCKER_DNS,
    }


def probe(
    snap: Any, source_service: str, target_service: str, port: int = 0, docker_host: str = ""
) -> pd.DataFrame:
    """One TCP connect from a container of ``source_service`` to ``target_service:port``
    (port 0: the port the target exposes); a one-row ``reachability`` frame."""
    from revivadiag.engine.client import connect
    from revivadiag.engine.probe import ProbeEngine

    source = source_container(snap, source_service)
    source_container(snap, target_service)  # the target must exist too
    port = port or service_port(snap, target_service)
    if not port:
        raise ServiceNotFound(f"{target_service}:<port>", [])
    client = connect(docker_host or None)
    try:
        with ProbeEngine(client, timeout_s=PROBE_TIMEOUT_S) as engine:
            result = engine.run({str(source["container_id"]): [probe_job(target_service, port)]})
    finally:
        client.close()
    row = next(iter(result.values()))[0]
    return schemas.to_frame(
        "reachability",
        [
            {
                "source": source["name"],
                "source_service": source_service,
                "target": "",
                "target_service": target_service,
                "target_host": target_service,
                "target_ip": row.get("ip") or "",
                "target_port": port,
                "outcome": row.get("outcome") or "error",
                "connect_ms": row.get("connect_ms"),
                "attempts": row.get("attempts"),
                "error_type": row.get("error_type") or "",
                "error": row.get("error") or "",
                "method": row.get("method") or "",
            }
        ],
    )
