"""DNS packets built and parsed by hand (netprobe.dnswire), and a query over real UDP."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from revivadiag.engine.netprobe import dnswire
from revivadiag.engine.netprobe.outcomes import DnsFailure


def response(qid: int, name: str, rcode: int = 0, addresses: tuple[str, ...] = (),
             cname: str = "", flags: int = 0x8180) -> bytes:
    """A response packet; answers use compression pointers to the question (offset 12)."""
    answers = []
    if cname:
        target = dnswire.encode_name(cname)
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(target)) + target)
    for ip in addresses:
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 600, 4) + socket.inet_aton(ip))
    header = struct.pack("!HHHHHH", qid, flags | rcode, 1, len(answers), 0, 0)
    question = dnswire.encode_name(name) + struct.pack("!HH", 1, 1)
    return header + question + b"".join(answers)


def test_build_query_layout() -> None:
    """Header (id, RD flag, one question), labels, type A, class IN."""
    q = dnswire.build_query("db.example", 0xBEEF)
    assert q == (b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x02db\x07example\x00\x00\x01\x00\x01")


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64, ".".join(["abcdefgh"] * 40), "café"])
def test_encode_name_rejects_bad_names(name: str) -> None:
    """Empty labels, labels over 63 bytes, names over 255 bytes and non-ASCII are refused."""
    with pytest.raises(dnswire.DnsFormatError):
        dnswire.encode_name(name)


@pytest.mark.parametrize(
    ("packet", "rcode", "addresses", "cnames"),
    [
        (response(7, "backend", addresses=("172.20.0.3",)), "NOERROR", ["172.20.0.3"], []),
        (response(7, "web", addresses=("10.0.0.2", "10.0.0.3")), "NOERROR",
         ["10.0.0.2", "10.0.0.3"], []),
        (response(7, "nope", rcode=3), "NXDOMAIN", [], []),
        (response(7, "x", rcode=2), "SERVFAIL", [], []),
        (response(7, "alias", cname="real", addresses=("10.1.1.1",)), "NOERROR",
         ["10.1.1.1"], ["real"]),
        (response(7, "empty"), "NOERROR", [], []),
    ],
)
def test_parse_response(packet: bytes, rcode: str, addresses: list[str], cnames: list[str]) -> None:
    """Rcode names, A records (compressed owner names) and CNAME targets come out."""
    answer = dnswire.parse_response(packet, 7)
    assert (answer.rcode, answer.addresses, answer.cnames) == (rcode, addresses, cnames)


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00\x07",  # short
        response(8, "x"),  # wrong id
        response(7, "x", flags=0x0100),  # a query, not a response
        response(7, "x", addresses=("1.2.3.4",))[:-2],  # truncated rdata
        struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c",  # pointer loop
    ],
)
def test_parse_response_rejects_malformed(packet: bytes) -> None:
    """Malformed packets raise DnsFormatError rather than returning garbage."""
    with pytest.raises(dnswire.DnsFormatError):
        dnswire.parse_response(packet, 7)


def test_addresses_or_raise() -> None:
    """NXDOMAIN and an empty NOERROR are failures carrying the rcode."""
    ok = dnswire.Answer(1, "NOERROR", ["10.0.0.1"])
    assert dnswire.addresses_or_raise("a", ok) == ["10.0.0.1"]
    with pytest.raises(DnsFailure) as info:
        dnswire.addresses_or_raise("a", dnswire.Answer(1, "NXDOMAIN"))
    assert info.value.rcode == "NXDOMAIN"
    with pytest.raises(DnsFailure):
        dnswire.addresses_or_raise("a", dnswire.Answer(1, "NOERROR"))


@pytest.fixture
def udp_resolver() -> Iterator[tuple[str, int]]:
    """A loopback UDP server answering every query: a stray packet first, then the answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve() -> None:
        try:
            data, peer = sock.recvfrom(512)
        except OSError:
            return
        qid = struct.unpack("!H", data[:2])[0]
        sock.sendto(response(qid ^ 0xFFFF, "stray"), peer)  # must be ignored
        sock.sendto(response(qid, "svc", addresses=("10.9.8.7",)), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()
    thread.join(5)
    sock.close()


def test_query_sync_over_udp(udp_resolver: tuple[str, int]) -> None:
    """A real UDP round trip: the stray packet is skipped, the matching answer parsed."""
    host, port = udp_resolver
    answer, ms = dnswire.query_sync("svc", host, 2.0, port=port)
    assert answer.addresses == ["10.9.8.7"]
    assert ms >= 0


def test_query_sync_times_out() -> None:
    """No answer within the timeout raises TimeoutError."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(TimeoutError):
            dnswire.query_sync("svc", "127.0.0.1", 0.2, port=silent.getsockname()[1])
    finally:
        silent.close()


@pytest.mark.parametrize(("text", "expected"), [("10.0.0.1", True), ("::1", True),
                                                ("backend", False), ("10.0.0", False)])
def test_is_ip(text: str, expected: bool) -> None:
    """IP literals are not looked up."""
    assert dnswire.is_ip(text) is expected


def test_resolve_sync_without_a_resolver() -> None:
    """No resolver listening (ICMP port unreachable) is a DNS failure, not a refused connect."""
    with pytest.raises(DnsFailure) as info:
        dnswire.resolve_sync("svc", "127.0.0.77", 0.5)
    assert info.value.rcode in ("ERROR", "NXDOMAIN", "TIMEOUT")
