"""The Swarm step of one engine's snapshot (:mod:`revivadiag.collect.pipeline`).

On an engine in Swarm mode: the ``swarm_*`` frames (:mod:`revivadiag.collect.swarm`), then the
probes of each service's name, ``tasks.<name>``, VIP and tasks from one running task of every
service, appended to the ``dns`` and ``reachability`` frames. Outside Swarm: nothing. A
failure of the step leaves a note, never an abort.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.collect import swarm
from revivadiag.collect.inventory import RawInventory
from revivadiag.collect.snapshot import SnapshotMeta, concat_frames
from revivadiag.engine.probe import ProbeEngine
from revivadiag.errors import EngineError, ParameterError, RevivadiagError


def swarm_columns(info: Mapping[str, Any], local: bool,
                  host_mtu: int | None = None) -> dict[str, Any]:
    """The Swarm columns of an ``engines`` row from the engine's ``/info`` (``host_mtu``: the
    path MTU :func:`node_mtu` found).

    >>> swarm_columns({"Swarm": {"LocalNodeState": "inactive"}}, False)["swarm_state"]
    'inactive'
    """
    sw = info.get("Swarm") or {}
    return {"swarm_state": str(sw.get("LocalNodeState") or "inactive"),
            "node_id": str(sw.get("NodeID") or ""),
            "manager": bool(sw.get("ControlAvailable", False)),
            "node_addr": str(sw.get("NodeAddr") or ""), "host_mtu": host_mtu,
            "ipvs": kernel_has_ipvs() if local else None}


def node_mtu(client: Any, info: Mapping[str, Any], local: bool) -> tuple[int | None, str]:
    """(MTU of the interface holding the engine's Swarm node address, a note when it could
    not be read). A local engine's is read here; a remote one's by a sidecar in that host's
    network namespace (:mod:`revivadiag.engine.hostnet`). Outside Swarm: (None, "")."""
    sw = info.get("Swarm") or {}
    addr = str(sw.get("NodeAddr") or "")
    if sw.get("LocalNodeState") != "active" or not addr:
        return None, ""
    if local:
        return interface_mtu(addr), ""
    from revivadiag.engine.hostnet import host_interfaces, path_mtu

    interfaces, why = host_interfaces(client)
    if why:
        return None, f"path MTU of {addr} not read: {why}"
    mtu = path_mtu(interfaces, addr)
    return mtu, "" if mtu is not None else f"path MTU: no interface holds {addr}"


def kernel_has_ipvs(proc: Path = Path("/proc")) -> bool:
    """Whether this host's kernel has IPVS loaded (built in or as the ip_vs module).

    A module not yet loaded would be loaded by dockerd when Swarm needs it; ``modprobe -n``
    tells whether it exists at all.
    """
    import subprocess

    if (proc / "net" / "ip_vs").exists():
        return True
    try:
        done = subprocess.run(["modprobe", "-n", "ip_vs"], capture_output=True, check=False,
                              timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def interface_mtu(address: str, sys_net: Path = Path("/sys/class/net")) -> int | None:
    """MTU of this host's interface that holds ``address`` (None when none does)."""
    import subprocess

    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         check=False, timeout=5)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[3].split("/", 1)[0] == address:
            try:
                return int((sys_net / parts[1] / "mtu").read_text().strip())
            except (OSError, ValueError):
                return None
    return None


def service_ports(frames: Mapping[str, pd.DataFrame]) -> dict[str, list[int]]:
    """service -> ports it serves: the roles frame's, then the images' exposed TCP ports."""
    out: dict[str, list[int]] = {}
    for rec in frames["roles"].to_dict("records"):
        out[str(rec["service"])] = [int(p) for p in rec["ports"]]
    for rec in frames["containers"].to_dict("records"):
        ports = out.setdefault(str(rec["service"]), [])
        for spec in rec["exposed_ports"]:
            num, _, proto = str(spec).partition("/")
            if proto in ("", "tcp") and num.isdigit() and int(num) not in ports:
                ports.append(int(num))
    return out


def collect_swarm(client: Any, prober: ProbeEngine, engine: str, info: Mapping[str, Any],
                  inv: RawInventory, frames: Mapping[str, pd.DataFrame],
                  meta: SnapshotMeta) -> dict[str, pd.DataFrame]:
    """The swarm frames, and the dns / reachability frames with the Swarm probes added."""
    if ((info.get("Swarm") or {}).get("LocalNodeState")) != "active":
        return {}
    ids = [str(n.get("Id", "")) for n in inv.networks]
    raw = swarm.gather_swarm(client, engine, info, inv.project, ids)
    meta.notes.extend(raw.notes)
    out = {"swarm_nodes": swarm.parse_nodes(raw),
           "swarm_services": swarm.parse_services(raw, inv.project, service_ports(frames)),
           "swarm_tasks": swarm.parse_tasks(raw, inv.project),
           "swarm_lb": swarm.parse_lb(raw, inv.project)}
    containers = frames["containers"]
    probes = swarm.plan_probes(out["swarm_services"], out["swarm_tasks"], containers)
    if not probes:
        return out
    by_name = {str(r["name"]): str(r["container_id"]) for r in containers.to_dict("records")}
    known = {str(r["container_id"]): (str(r["name"]), int(r["pid"] or 0))
             for r in containers.to_dict("records")}
    try:
        results = prober.run(swarm.probe_jobs(probes, by_name), known=known)
    except (EngineError, ParameterError):
        raise
    except RevivadiagError as exc:
        meta.notes.append(f"swarm: probes not run: {type(exc).__name__}: {exc}")
        return out
    dns, reach = swarm.probe_rows(probes, results, engine)
    for name, extra in (("dns", dns), ("reachability", reach)):
        out[name] = concat_frames(name, [frames[name], extra])
        out[name].attrs = dict(frames[name].attrs)
    return out
