"""The ``sockets`` job: this network namespace's TCP sockets from the kernel (INET_DIAG).

One ``SOCK_DIAG_BY_FAMILY`` dump per address family over a ``NETLINK_SOCK_DIAG`` socket, as
``ss -tino`` does, asking for ``INET_DIAG_INFO`` (``struct tcp_info``). Standard library
only, and nothing to run in the container: it works from a setns worker, a sidecar or an
exec'd python3 alike, against a container without any tool. Per socket: state, both ends,
the pending timer (``ss``'s ``timer:(keepalive,...)``) and when it fires, the queues, and the
milliseconds since data was last sent, data last received and an ACK last received
(``ss -i``'s ``lastsnd`` / ``lastrcv`` / ``lastack``); and the namespace's
``tcp_keepalive_time``.

>>> len(request(socket.AF_INET, state_mask(DEFAULT_STATES)))  # nlmsghdr + inet_diag_req_v2
72
>>> parse_dump(request(socket.AF_INET, 0)[:16] + bytes(4))  # no answer: no socket
[]
"""

from __future__ import annotations

import socket
import struct
from typing import Any

Job = dict[str, Any]
Result = dict[str, Any]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_INFO = 2
IPPROTO_TCP = 6
#: the kernel's TCP states (include/net/tcp_states.h)
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV"}
STATE_CODES = {name: code for code, name in STATES.items()}
#: ``idiag_timer``: which timer is pending (net/ipv4/inet_diag.c)
TIMERS = {0: "off", 1: "retransmit", 2: "keepalive", 3: "timewait", 4: "persist"}
#: the states a job asks for when it names none
DEFAULT_STATES = ("ESTABLISHED", "SYN_SENT", "CLOSE_WAIT", "LISTEN")
#: rows returned at most (the rest are counted in ``truncated``)
MAX_ROWS = 4000
_HDR = struct.Struct("=IHHII")
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
#: offset of tcpi_last_data_sent in struct tcp_info (include/uapi/linux/tcp.h)
_LAST_TIMES = struct.Struct("=IIII")
_LAST_OFFSET = 44


def _align(n: int) -> int:
    return (n + 3) & ~3


def request(family: int, states: int, seq: int = 1) -> bytes:
    """A dump request for TCP sockets of ``family`` in the ``states`` bit mask, with
    ``tcp_info`` attached."""
    body = _MSG_HEAD.pack(family, IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0)
    body += struct.pack("=I", states) + bytes(48)
    return _HDR.pack(_HDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                     seq, 0) + body


def state_mask(names: list[str] | tuple[str, ...]) -> int:
    """Bit mask of state names (``ESTABLISHED`` ...); ValueError for an unknown one.

    >>> state_mask(["ESTABLISHED", "LISTEN"]) == (1 << 1) | (1 << 10)
    True
    """
    mask = 0
    for name in names:
        mask |= 1 << STATE_CODES[str(name).upper()]
    return mask


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    text = socket.inet_ntop(socket.AF_INET6, raw[:16])
    if raw[:12] == bytes(10) + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:16])
    return text


def parse_message(payload: bytes) -> dict[str, Any]:
    """One ``inet_diag_msg`` and its attributes -> a socket dict (see the module doc)."""
    family, state, timer, retrans = _MSG_HEAD.unpack_from(payload, 0)
    sport, dport = struct.unpack_from("!HH", payload, 4)
    expires, rqueue, wqueue, _uid, inode = _MSG_TAIL.unpack_from(payload, 52)
    row: dict[str, Any] = {
        "family": 6 if family == socket.AF_INET6 else 4,
        "state": STATES.get(state, str(state)),
        "local": _address(family, payload[8:24]), "lport": sport,
        "remote": _address(family, payload[24:40]), "rport": dport,
        "timer": TIMERS.get(timer, str(timer)), "timer_ms": expires if timer else None,
        "retrans": retrans, "recv_q": rqueue, "send_q": wqueue, "inode": inode,
        "last_send_ms": None, "last_recv_ms": None, "last_ack_ms": None,
    }
    offset = 72
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if kind == INET_DIAG_INFO and length - 4 >= _LAST_OFFSET + _LAST_TIMES.size:
            sent, _ack_sent, recv, ack = _LAST_TIMES.unpack_from(payload,
                                                                offset + 4 + _LAST_OFFSET)
            row.update(last_send_ms=sent, last_recv_ms=recv, last_ack_ms=ack)
        offset += _align(length)
    return row


def parse_dump(data: bytes) -> list[dict[str, Any]]:
    """Every socket message in the bytes of a dump's answers (stops at ``NLMSG_DONE``).

    ``OSError`` for an ``NLMSG_ERROR`` answer (its errno).
    """
    rows: list[dict[str, Any]] = []
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            break
        payload = data[offset + _HDR.size: offset + length]
        if kind == NLMSG_DONE:
            break
        if kind == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", payload, 0)[0]
            if errno:
                raise OSError(errno, f"sock_diag: {errno}")
        elif kind == SOCK_DIAG_BY_FAMILY and len(payload) >= 72:
            rows.append(parse_message(payload))
        offset += _align(length)
    return rows


def dump(family: int, states: int, timeout_s: float = 2.0,
         sock: socket.socket | None = None) -> bytes:
    """The raw answers of one dump, up to and including ``NLMSG_DONE``: over ``sock`` (a
    ``NETLINK_SOCK_DIAG`` socket opened in the namespace to read; left open), else over one
    opened here, in this process's namespace."""
    if sock is None:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as own:
            return dump(family, states, timeout_s, own)
    chunks: list[bytes] = []
    sock.settimeout(timeout_s)
    sock.sendto(request(family, states), (0, 0))
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if _done(chunk):
            break
    return b"".join(chunks)


def read_sockets(states: int, timeout_s: float = 2.0,
                 sock: socket.socket | None = None) -> list[dict[str, Any]]:
    """The TCP sockets (IPv4 and IPv6) in the ``states`` bit mask of the namespace ``sock``
    was opened in (default: this process's), parsed."""
    rows: list[dict[str, Any]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        rows += parse_dump(dump(family, states, timeout_s, sock))
    return rows


def _done(chunk: bytes) -> bool:
    offset = 0
    while offset + _HDR.size <= len(chunk):
        length, kind = _HDR.unpack_from(chunk, offset)[:2]
        if kind in (NLMSG_DONE, NLMSG_ERROR) or length < _HDR.size:
            return True
        offset += _align(length)
    return False


def sockets_job(job: Job) -> Result:
    """Run a ``sockets`` job: the namespace's TCP sockets in ``states`` (default
    :data:`DEFAULT_STATES`), at most ``max_rows`` of them."""
    res: Result = {"kind": "sockets", "sockets": [], "truncated": 0, "error_type": "",
                   "error": ""}
    try:
        mask = state_mask(tuple(job.get("states") or DEFAULT_STATES))
    except KeyError as exc:
        res["error"] = f"unknown TCP state {exc}"
        return res
    limit = int(job.get("max_rows", MAX_ROWS))
    try:
        rows = read_sockets(mask, float(job.get("timeout_s", 2.0)))
    except OSError as exc:
        res["error"] = f"sock_diag: {exc}"[:300]
        return res
    res["sockets"], res["truncated"] = rows[:limit], max(0, len(rows) - limit)
    res["keepalive_time_s"] = keepalive_time()
    return res


def keepalive_time(path: str = "/proc/sys/net/ipv4/tcp_keepalive_time") -> int | None:
    """This network namespace's ``net.ipv4.tcp_keepalive_time``: the idle seconds before the
    first keepalive probe of a socket that sets no ``TCP_KEEPIDLE`` of its own (None when
    unreadable)."""
    try:  # bytes: a forked probe worker may be unable to load a codec
        with open(path, "rb") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
