"""Probing with the tools a minimal container has: ``nslookup`` and ``nc`` (busybox or not).

Used by the exec method when the container has no python3. Pure command builders and
output parsers; the exec method runs them. Times measured this way include ``docker exec``
itself, so ``latency_ms`` / ``connect_ms`` are left empty rather than reported wrong.

>>> parse_nslookup("Server:\\t127.0.0.11\\n\\nName:\\tweb\\nAddress: 172.20.0.2\\n")
('NOERROR', ['172.20.0.2'])
>>> parse_nc(1, "nc: can't connect to remote host (172.20.0.2): Connection refused")[:2]
('refused', 'CONNECTION_REFUSED')
"""

from __future__ import annotations

import math
import re

from revivadiag.engine.netprobe import outcomes as o

_IPV4 = re.compile(r"^Address(?:es)?:\s*(\d+\.\d+\.\d+\.\d+)\s*$")
_NOT_FOUND = re.compile(r"can't find .*?:\s*(NXDOMAIN|SERVFAIL|REFUSED|NOTIMP|FORMERR)")
#: (marker in nc's output, outcome, error type)
NC_MARKERS = (
    ("connection refused", o.REFUSED, o.CONNECTION_REFUSED),
    ("timed out", o.TIMED_OUT, o.TIMEOUT),
    ("bad address", o.UNRESOLVABLE, o.DNS_RESOLUTION_FAILED),
    ("name or service not known", o.UNRESOLVABLE, o.DNS_RESOLUTION_FAILED),
    ("temporary failure in name resolution", o.UNRESOLVABLE, o.DNS_RESOLUTION_FAILED),
    ("no route to host", o.ERROR, o.CONNECTION_REFUSED),
    ("host is unreachable", o.ERROR, o.CONNECTION_REFUSED),
    ("network is unreachable", o.ERROR, o.CONNECTION_REFUSED),
)


def nslookup_argv(prefix: list[str], name: str, server: str) -> list[str]:
    """``[busybox] nslookup NAME SERVER``."""
    return [*prefix, "nslookup", name, server]


def nc_argv(prefix: list[str], ip: str, port: int, timeout_s: float) -> list[str]:
    """``[busybox] nc -w SECONDS IP PORT`` (stdin is empty under docker exec)."""
    return [*prefix, "nc", "-w", str(max(1, math.ceil(timeout_s))), ip, str(port)]


def parse_nslookup(output: str) -> tuple[str, list[str]]:
    """(rcode, IPv4 answers) from busybox or BIND nslookup output."""
    low = output.lower()
    found = _NOT_FOUND.search(output)
    if found:
        return found.group(1), []
    if "timed out" in low or "no servers could be reached" in low:
        return "TIMEOUT", []
    answers: list[str] = []
    after_name = False
    for line in output.splitlines():
        if line.startswith("Name:"):
            after_name = True
        elif after_name:
            match = _IPV4.match(line.strip())
            if match and match.group(1) not in answers:
                answers.append(match.group(1))
    return "NOERROR", answers


def parse_nc(exit_code: int, output: str) -> tuple[str, str, str]:
    """(outcome, error type, message) of ``nc -w N ip port``."""
    if exit_code == 0:
        return o.OPEN, "", ""
    low = output.lower()
    text = output.strip().splitlines()[-1][:200] if output.strip() else f"nc exited {exit_code}"
    for marker, outcome, etype in NC_MARKERS:
        if marker in low:
            return outcome, etype, text
    return o.ERROR, o.CONNECTION_REFUSED, text


def not_found_in_path(exit_code: int, output: str) -> bool:
    """True when docker exec could not start the program (126/127, not in $PATH)."""
    return exit_code in (126, 127) and (
        "not found" in output.lower() or "no such file" in output.lower()
    )
