"""The engine host's own network interfaces, read from a sidecar in its network namespace.

A remote engine's host cannot be entered with setns; a short-lived probe container with
``network_mode: host`` (the sidecar method's image and program, see
:func:`revivadiag.engine.sidecar.run_sidecar`) runs the ``interfaces`` job there and is
removed. It reads interface names, MTUs and addresses, and sends no packet. One container
run per engine (about a second over ssh).

>>> path_mtu([{"name": "eth0", "mtu": 1400, "ipv4": "192.0.2.2"}], "192.0.2.2")
1400
>>> path_mtu([{"name": "eth0", "mtu": 1400, "ipv4": "192.0.2.2"}], "10.0.0.1") is None
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import docker.errors
import requests.exceptions

from revivadiag.engine.ship import request_bytes
from revivadiag.engine.sidecar import SidecarFailed, find_image, run_sidecar

DEADLINE_S = 30.0


def host_interfaces(client: Any, image: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """(the interfaces of the host ``client``'s engine runs on: ``{"name", "index", "mtu",
    "ipv4"}`` each, why there are none: "" when they were read). Never raises for a probe
    that could not run: no probe image there, the sidecar failed."""
    found = find_image(client, image)
    if found is None:
        return [], f"no probe image with python3 on the engine ({image or 'revivadiag/base'})"
    try:
        out = run_sidecar(client, found, "host", request_bytes([{"kind": "interfaces"}], 1, 1),
                          DEADLINE_S, "rdhostnet")
        [result] = json.loads(out)
    except (SidecarFailed, docker.errors.DockerException, requests.exceptions.RequestException,
            TimeoutError, ValueError) as exc:
        return [], f"host-network sidecar: {type(exc).__name__}: {str(exc)[:200]}"
    return list(result.get("interfaces") or []), str(result.get("error") or "")


def path_mtu(interfaces: Sequence[dict[str, Any]], address: str) -> int | None:
    """MTU of the interface holding ``address`` (None when none does)."""
    for iface in interfaces:
        if iface.get("ipv4") == address and iface.get("mtu"):
            return int(iface["mtu"])
    return None
