"""A hand-written DNS client for A queries, enough to ask Docker's resolver at 127.0.0.11.

After ``setns`` the host's resolv.conf still applies to ``getaddrinfo``, so container names
are always asked of the resolver explicitly, here. Packet building and parsing are pure.

>>> q = build_query("backend", 0x1234)
>>> q[:4].hex(), q[12:20]
('12340100', b'\\x07backend')
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from .outcomes import DnsFailure

QTYPE_A = 1
QTYPE_CNAME = 5
CLASS_IN = 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
MAX_PACKET = 4096
#: first-attempt timeout of a lookup; each retry waits twice as long (0.25, 0.5, 1.0 s)
LOOKUP_TIMEOUT_S = 0.25
LOOKUP_RETRIES = 2


def attempt_timeouts(first_s: float, retries: int) -> list[float]:
    """Per-attempt timeouts, doubling: a lost UDP packet costs little, a slow server still
    gets a long wait on the last try.

    >>> attempt_timeouts(0.1, 2)
    [0.1, 0.2, 0.4]
    """
    return [first_s * (2 ** i) for i in range(retries + 1)]


class DnsFormatError(ValueError):
    """A malformed DNS packet or name."""


@dataclass
class Answer:
    """What one response said: rcode name, A addresses, CNAME targets, truncation."""

    qid: int
    rcode: str
    addresses: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)
    truncated: bool = False


def encode_name(name: str) -> bytes:
    """Wire form of ``name`` (labels of 1..63 ASCII bytes, 255 in all)."""
    text = name.rstrip(".")
    if not text:
        raise DnsFormatError("empty name")
    try:
        labels = [label.encode("ascii") for label in text.split(".")]
    except UnicodeEncodeError:
        raise DnsFormatError(f"not an ASCII name: {name!r}") from None
    if any(not 0 < len(label) <= 63 for label in labels):
        raise DnsFormatError(f"bad label length in {name!r}")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 255:
        raise DnsFormatError(f"name too long: {name!r}")
    return wire


def build_query(name: str, qid: int, qtype: int = QTYPE_A) -> bytes:
    """A standard recursive query for one name."""
    header = _HEADER.pack(qid & 0xFFFF, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Decode a (possibly compressed) name at ``offset``; returns (name, offset after it)."""
    labels: list[str] = []
    end = -1
    seen = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the packet")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            seen += 1
            if seen > 64:
                raise DnsFormatError("compression loop")
            continue
        if length & 0xC0:
            raise DnsFormatError("bad label type")
        offset += 1
        if length == 0:
            return ".".join(labels), (end if end >= 0 else offset)
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length


def parse_response(data: bytes, qid: int | None = None) -> Answer:
    """Parse a response; ``qid`` (when given) must match. Raises DnsFormatError."""
    if len(data) < _HEADER.size:
        raise DnsFormatError("short packet")
    rid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(data, 0)
    if not flags & 0x8000:
        raise DnsFormatError("not a response")
    if qid is not None and rid != qid:
        raise DnsFormatError(f"id {rid} != {qid}")
    answer = Answer(rid, RCODES.get(flags & 0x000F, f"RCODE{flags & 0x000F}"),
                    truncated=bool(flags & 0x0200))
    offset = _HEADER.size
    for _ in range(qd):
        _name, offset = read_name(data, offset)
        offset += 4
    for _ in range(an):
        _name, offset = read_name(data, offset)
        if offset + _RR.size > len(data):
            raise DnsFormatError("truncated record")
        rtype, _rclass, _ttl, rdlen = _RR.unpack_from(data, offset)
        offset += _RR.size
        rdata = data[offset:offset + rdlen]
        if len(rdata) != rdlen:
            raise DnsFormatError("truncated rdata")
        if rtype == QTYPE_A and rdlen == 4:
            answer.addresses.append(socket.inet_ntoa(rdata))
        elif rtype == QTYPE_CNAME:
            answer.cnames.append(read_name(data, offset)[0])
        offset += rdlen
    return answer


def new_qid() -> int:
    """A random query id (not security relevant: the resolver is local)."""
    return random.randrange(1, 0xFFFF)


def query_sync(name: str, server: str, timeout_s: float, port: int = 53) -> tuple[Answer, float]:
    """Ask ``server`` for ``name`` with a blocking socket: (answer, latency ms).

    Raises TimeoutError / OSError / DnsFormatError.
    """
    qid = new_qid()
    packet = build_query(name, qid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect((server, port))
        start = time.perf_counter()
        deadline = start + timeout_s
        sock.send(packet)
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no answer from {server} within {timeout_s}s")
            sock.settimeout(remaining)
            data = sock.recv(MAX_PACKET)
            try:
                return parse_response(data, qid), (time.perf_counter() - start) * 1000
            except DnsFormatError:
                continue  # a stray or late packet: keep waiting


async def query_async(name: str, server: str, timeout_s: float,
                      port: int = 53) -> tuple[Answer, float]:
    """Like :func:`query_sync`, on the running event loop."""
    loop = asyncio.get_running_loop()
    qid = new_qid()
    packet = build_query(name, qid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((server, port))
        start = time.perf_counter()
        await loop.sock_sendall(sock, packet)
        answer = await asyncio.wait_for(_receive(loop, sock, qid), timeout_s)
        return answer, (time.perf_counter() - start) * 1000
    finally:
        sock.close()


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, qid: int) -> Answer:
    while True:
        data = await loop.sock_recv(sock, MAX_PACKET)
        try:
            return parse_response(data, qid)
        except DnsFormatError:
            continue  # a stray or late packet: keep waiting


def addresses_or_raise(name: str, answer: Answer) -> list[str]:
    """The A records of a successful answer; DnsFailure when the name did not resolve."""
    if answer.rcode != "NOERROR":
        raise DnsFailure(name, answer.rcode)
    if not answer.addresses:
        raise DnsFailure(name, "NOERROR", "no A record")
    return answer.addresses


def resolve_sync(name: str, server: str, timeout_s: float) -> tuple[list[str], float]:
    """Addresses of ``name``: IP literals as is, else asked of ``server`` (or the system)."""
    if is_ip(name):
        return [name], 0.0
    start = time.perf_counter()
    if not server:  # the system resolver (host probes)
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise DnsFailure(name, "NXDOMAIN", exc.strerror or "") from exc
        return sorted({str(i[4][0]) for i in infos}), (time.perf_counter() - start) * 1000
    waited = 0.0
    for attempt_s in attempt_timeouts(min(timeout_s, LOOKUP_TIMEOUT_S), LOOKUP_RETRIES):
        try:
            answer, ms = query_sync(name, server, attempt_s)
        except TimeoutError:
            waited += attempt_s * 1000
            continue
        except ConnectionRefusedError:
            raise DnsFailure(name, "ERROR", f"no resolver at {server}") from None
        return addresses_or_raise(name, answer), waited + ms
    raise DnsFailure(name, "TIMEOUT", f"no answer from {server}")


def is_ip(text: str) -> bool:
    """True for an IPv4 or IPv6 literal."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return True
    return False
