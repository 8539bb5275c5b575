"""The ``interfaces`` job: this network namespace's interfaces, their MTU and IPv4 address.

Standard library only (``if_nameindex`` and the ``SIOCGIFMTU`` / ``SIOCGIFADDR`` ioctls), so
it runs wherever python3 does. Run from a sidecar in the engine host's network namespace
(``network_mode: host``) it tells a remote engine's path MTU: the MTU of the interface
holding its Swarm node address. ``SIOCGIFADDR`` gives an interface's primary IPv4 address
only (a secondary one is not listed).

>>> lo = [i for i in interfaces() if i["name"] == "lo"][0]
>>> lo["ipv4"], lo["mtu"] > 0
('127.0.0.1', True)
"""

from __future__ import annotations

import fcntl
import socket
import struct
from typing import Any

SIOCGIFADDR = 0x8915
SIOCGIFMTU = 0x8921

Job = dict[str, Any]
Result = dict[str, Any]


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes | None:
    try:
        return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None


def interfaces() -> list[dict[str, Any]]:
    """``{"name", "index", "mtu", "ipv4"}`` of every interface here (``ipv4`` "" when none)."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, name in socket.if_nameindex():
            mtu = _ioctl(sock, SIOCGIFMTU, name)
            addr = _ioctl(sock, SIOCGIFADDR, name)
            out.append({"name": name, "index": index,
                        "mtu": struct.unpack_from("i", mtu, 16)[0] if mtu else None,
                        "ipv4": socket.inet_ntoa(addr[20:24]) if addr else ""})
    return out


def interfaces_job(job: Job) -> Result:
    """Run an ``interfaces`` job."""
    try:
        return {"kind": "interfaces", "interfaces": interfaces(), "error_type": "",
                "error": ""}
    except OSError as exc:
        return {"kind": "interfaces", "interfaces": [], "error_type": "",
                "error": f"interfaces: {exc}"[:300]}
