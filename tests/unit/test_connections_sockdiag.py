"""The INET_DIAG parser on a real capture, and the ``connections`` frame and idle-pool
analysis built from it.

``data/sockdiag_backend.bin`` is what the kernel answered a ``SOCK_DIAG_BY_FAMILY`` dump
(IPv4 TCP, ESTABLISHED and LISTEN, with ``tcp_info``) in a lab backend's network namespace;
``data/sockdiag_backend.ss.txt`` is ``ss -tinoH -4 state established`` run in the same
namespace right after it (12 ms later): the pooled Redis connections without keepalive, the
PostgreSQL one with libpq's keepalive on the kernel's default 7200 s.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from revivadiag.analyze import swarm as sf
from revivadiag.collect.sockets import PeerMap, connections_frame, socket_rows
from revivadiag.engine.jobs import failure_result, validate_job
from revivadiag.engine.netprobe.sockdiag import parse_dump, request, sockets_job, state_mask
from revivadiag.schemas import to_frame, validate

DATA = Path(__file__).parent / "data"
RAW = (DATA / "sockdiag_backend.bin").read_bytes()
SS = (DATA / "sockdiag_backend.ss.txt").read_text()


def _ss_rows(text: str) -> dict[tuple[str, int, str, int], dict[str, object]]:
    """``ss -tinoH state established`` text -> 4-tuple -> timer and last* times (ms)."""
    out: dict[tuple[str, int, str, int], dict[str, object]] = {}
    key: tuple[str, int, str, int] | None = None
    for line in text.splitlines():
        if not line.startswith((" ", "\t")):
            parts = line.split()
            (lip, lport), (rip, rport) = (p.rsplit(":", 1) for p in parts[2:4])
            key = (lip, int(lport), rip, int(rport))
            timer = re.search(r"timer:\((\w+),", line)
            out[key] = {"timer": timer.group(1) if timer else "off"}
        elif key is not None:
            for name in ("lastsnd", "lastrcv", "lastack"):
                m = re.search(rf"\b{name}:(\d+)", line)
                if m:
                    out[key][name] = int(m.group(1))
    return out


def test_parser_agrees_with_ss_on_a_real_capture() -> None:
    """Same connections, same timers, the same idle times (ss ran a few ms later)."""
    rows = parse_dump(RAW)
    est = {(r["local"], r["lport"], r["remote"], r["rport"]): r for r in rows
           if r["state"] == "ESTABLISHED"}
    ss = _ss_rows(SS)
    assert set(est) == set(ss) and len(ss) == 9
    for key, want in ss.items():
        got = est[key]
        assert got["timer"] == want["timer"], key
        for mine, theirs in (("last_send_ms", "lastsnd"), ("last_recv_ms", "lastrcv"),
                             ("last_ack_ms", "lastack")):
            assert 0 <= int(str(want[theirs])) - got[mine] <= 100, (key, mine)
    assert sorted(r["lport"] for r in rows if r["state"] == "LISTEN") == [3011, 42833]
    pg = [r for r in est.values() if r["rport"] == 5432]
    assert [r["timer"] for r in pg] == ["keepalive"] and 7000_000 < pg[0]["timer_ms"] <= 7200_000


def test_parser_stops_at_done_and_raises_on_error() -> None:
    """NLMSG_DONE ends a dump; an NLMSG_ERROR answer is an OSError with its errno."""
    done = bytes.fromhex("14000000030002000100000000000000") + bytes(4)
    assert parse_dump(done + RAW) == []
    error = bytes.fromhex("24000000020000000100000000000000") + (-13).to_bytes(4, "little",
                                                                             signed=True)
    with pytest.raises(OSError, match="13"):
        parse_dump(error + bytes(16))
    assert len(request(2, state_mask(["ESTABLISHED"]))) == 72


def test_sockets_job_reads_this_namespace() -> None:
    """The job on this machine's own namespace: a listener of ours is in the table."""
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        res = sockets_job({"kind": "sockets", "states": ["LISTEN"]})
    assert res["error"] == ""
    assert ("127.0.0.1", port) in {(s["local"], s["lport"]) for s in res["sockets"]}
    sysctl = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip()
    assert res["keepalive_time_s"] == int(sysctl)
    assert sockets_job({"kind": "sockets", "states": ["NOPE"]})["error"].startswith("unknown")
    validate_job({"kind": "sockets"})
    assert failure_result({"kind": "sockets"}, "", "x", "exec")["sockets"] == []


def _peers(vip: bool = False) -> PeerMap:
    addrs = {"10.213.1.2": ("p_redis", "redis"), "10.213.1.5": ("p_frontend", "frontend")}
    if not vip:
        addrs["10.213.1.3"] = ("p_database", "database")
    return PeerMap(addrs, {"10.213.1.3": "database"} if vip else {},
                   {"backend": "backend", "redis": "cache", "database": "database",
                    "frontend": "proxy"})


def test_connections_frame_from_the_capture() -> None:
    """Rows keep the roles, map peers, and say which pool is guarded by keepalive."""
    result = {"sockets": parse_dump(RAW), "method": "setns", "error": "", "truncated": 0}
    frame = connections_frame({"c1": result}, {"c1": ("p_backend", "backend")}, _peers())
    validate("connections", frame)
    assert len(frame) == 9 and set(frame["direction"]) == {"outbound"}
    by_peer = frame.groupby("peer_service")
    assert by_peer.size().to_dict() == {"database": 1, "redis": 8}
    redis = frame[frame["peer_service"] == "redis"]
    assert redis["keepalive"].tolist() == [False] * 8 and redis["peer_role"].eq("cache").all()
    assert redis["idle_s"].max() == pytest.approx(76.804)
    db = frame[frame["peer_service"] == "database"].iloc[0]
    assert bool(db["keepalive"]) and db["keepalive_after_s"] == pytest.approx(7103.64)
    validate("idle_pools", sf.idle_pools(frame))
    pools = sf.idle_pools(frame).set_index("peer_service")
    assert pools.loc["redis", ["connections", "keepalive", "unguarded", "unknown"]].tolist() \
        == [8, 0, 8, 0]
    assert pools.loc["database", ["keepalive", "unguarded"]].tolist() == [1, 1]  # 7200 s > 900
    assert sf.idle_pools(frame, limit_s=86400).loc[:, "unguarded"].tolist() == [0, 8]
    assert sf.idle_pool_findings(frame) == []  # no VIP: IPVS is not on the path


def test_idle_pool_finding_through_a_vip() -> None:
    """The same capture with the database reached at a VIP: RD-SWM-005 for that pool only."""
    result = {"sockets": parse_dump(RAW), "method": "setns", "error": ""}
    frame = to_frame("connections", socket_rows("p_backend", "backend", result, _peers(True)))
    found = sf.idle_pool_findings(frame)
    assert [f[0] for f in found] == ["RD-SWM-005"]
    assert found[0][1].startswith("backend -> database via VIP 10.213.1.3: 1 connection(s)")
    assert "first keepalive after 7104 s idle" in found[0][1]


@pytest.mark.parametrize(("keepalive", "after", "expected"), [
    (False, None, 1), (True, 7200.0, 1), (True, 300.0, 0), (None, None, 0)])
def test_idle_pool_findings(keepalive: bool | None, after: float | None,
                            expected: int) -> None:
    """Only a connection no keepalive probe guards below 900 s counts (NA: unknown)."""
    table = to_frame("connections", [{"service": "api", "peer_service": "db",
                                      "peer_role": "database", "peer_kind": "vip",
                                      "peer_ip": "10.0.1.5", "direction": "outbound",
                                      "state": "ESTABLISHED", "idle_s": 30.0,
                                      "keepalive": keepalive, "keepalive_after_s": after}])
    assert len(sf.idle_pool_findings(table)) == expected


def test_error_and_inbound_rows() -> None:
    """An unreadable table is one row saying why; a connection to a listening port is
    inbound."""
    rows = socket_rows("p_db", "database", {"error": "no python3", "method": "exec"}, _peers())
    assert [(r["container"], r["error"]) for r in rows] == [("p_db", "no python3")]
    inbound = {"state": "ESTABLISHED", "local": "10.213.1.3", "lport": 5432,
               "remote": "10.213.1.4", "rport": 38636, "timer": "off", "timer_ms": None}
    listen = {"state": "LISTEN", "local": "0.0.0.0", "lport": 5432, "remote": "0.0.0.0",
              "rport": 0, "timer": "off", "timer_ms": None}
    [row] = socket_rows("p_db", "database", {"sockets": [listen, inbound]}, _peers())
    assert (row["direction"], row["peer_kind"], row["idle_s"]) == ("inbound", "external", None)
    assert pd.isna(to_frame("connections", [row])["idle_s"].iloc[0])
