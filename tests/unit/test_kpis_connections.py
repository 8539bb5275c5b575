"""Connection-reuse measurement: socket-table parsing and counting (pure parts)."""

from __future__ import annotations

import pandas as pd
import pytest

from revivadiag import schemas
from revivadiag.collect.connections import (
    Socket,
    loopback_port,
    measure_reuse,
    parse_proc_net_tcp,
    proxy_backend_connections,
    reuse_percent,
    target_from_frames,
)
from revivadiag.errors import ParameterError, ServiceNotFound

# /proc/net/tcp as the kernel writes it: backend 172.20.0.4:3011 (0BC3), proxy 172.20.0.5
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0BC3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 040014AC:0BC3 050014AC:D431 06 00000000:00000000 03:00001770 00000000     0        0 0 3
   2: 040014AC:0BC3 050014AC:D433 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   3: 040014AC:0BC3 090014AC:D435 01 00000000:00000000 00:00000000 00000000     0        0 3 1
   4: garbage line
"""
# the same from the proxy's side, in tcp6 with IPv4-mapped addresses
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF0000050014AC:D437 0000000000000000FFFF0000040014AC:0BC3 04 0 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0
"""


def test_parse_proc_net_tcp_decodes_addresses_ports_and_states() -> None:
    """Little-endian hex addresses, hex ports, state names; malformed lines skipped."""
    rows = parse_proc_net_tcp(TCP)
    assert rows[1] == Socket("172.20.0.4", 3011, "172.20.0.5", 54321, "TIME_WAIT")
    assert [r.state for r in rows] == ["LISTEN", "TIME_WAIT", "ESTABLISHED", "ESTABLISHED"]


def test_parse_tcp6_maps_ipv4_addresses() -> None:
    """::ffff:a.b.c.d becomes a.b.c.d; ::1 stays IPv6."""
    rows = parse_proc_net_tcp(TCP6)
    assert rows[0] == Socket("172.20.0.5", 54327, "172.20.0.4", 3011, "FIN_WAIT1")
    assert rows[1].local_ip == "::1" and rows[1].state == "LISTEN"


def test_connections_from_both_sides_are_one_set_of_4_tuples() -> None:
    """LISTEN and other clients (172.20.0.9) are left out; both tables join in one key space."""
    sockets = parse_proc_net_tcp(TCP) + parse_proc_net_tcp(TCP6)
    keys = proxy_backend_connections(sockets, {"172.20.0.5"}, {"172.20.0.4"}, 3011)
    assert keys == {("172.20.0.5", 54321, "172.20.0.4", 3011),
                    ("172.20.0.5", 54323, "172.20.0.4", 3011),
                    ("172.20.0.5", 54327, "172.20.0.4", 3011)}


@pytest.mark.parametrize(("answered", "new", "pct"),
                         [(50, 50, 0.0), (50, 0, 100.0), (50, 1, 98.0), (50, 60, 0.0),
                          (0, 0, None)])
def test_reuse_percent(answered: int, new: int, pct: float | None) -> None:
    """1 - new/answered, floored at 0, None when nothing was answered."""
    assert reuse_percent(answered, new) == pct


def _frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    containers = schemas.to_frame("containers", [
        {"name": "p_frontend", "service": "frontend", "state": "running", "pid": 101},
        {"name": "p_backend", "service": "backend", "state": "running", "pid": 202},
    ])
    endpoints = schemas.to_frame("endpoints", [
        {"container": "p_frontend", "service": "frontend", "network": "n1", "ipv4": "10.1.0.2"},
        {"container": "p_backend", "service": "backend", "network": "n1", "ipv4": "10.1.0.3"},
        {"container": "p_backend", "service": "backend", "network": "n2", "ipv4": "10.2.0.3"},
    ])
    ports = schemas.to_frame("ports", [
        {"container": "p_frontend", "service": "frontend", "container_port": 3010,
         "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 13010},
    ])
    return containers, endpoints, ports


ROLE_PORTS = {"proxy_service": "frontend", "proxy_port": 3010, "backend_service": "backend",
              "backend_port": 3011}


def test_target_from_frames() -> None:
    """Pids, every address of each container, and the loopback URL of the proxy."""
    t = target_from_frames(*_frames(), **ROLE_PORTS, path="/api/health")  # type: ignore[arg-type]
    assert (t.proxy_pid, t.backend_pid) == (101, 202)
    assert t.backend_ips == frozenset({"10.1.0.3", "10.2.0.3"})
    assert t.url == "http://127.0.0.1:13010/api/health"


def test_target_of_a_proxy_that_publishes_nothing_is_its_own_address() -> None:
    """No published port: the requests go to the proxy container's address on its port."""
    containers, endpoints, ports = _frames()
    t = target_from_frames(containers, endpoints, ports.iloc[0:0], **ROLE_PORTS)  # type: ignore[arg-type]
    assert t.url == "http://10.1.0.2:3010/"


def test_target_needs_the_services_and_a_loopback_port() -> None:
    """Typed errors name what is missing."""
    containers, endpoints, ports = _frames()
    with pytest.raises(ServiceNotFound, match="'proxy'"):
        target_from_frames(containers, endpoints, ports, **{**ROLE_PORTS,  # type: ignore[arg-type]
                                                            "proxy_service": "proxy"})
    with pytest.raises(ParameterError, match=r"not published on 127\.0\.0\.1"):
        loopback_port(ports, "frontend", 80)


def test_measure_reuse_refuses_anything_but_loopback_or_the_proxy() -> None:
    """The measurement only ever talks to 127.0.0.1 or the proxy's own address."""
    t = target_from_frames(*_frames(), **ROLE_PORTS)  # type: ignore[arg-type]
    bad = type(t)(**{**t.__dict__, "url": "http://10.0.0.1:80/x"})
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 or the proxy's own address only"):
        measure_reuse(bad)
