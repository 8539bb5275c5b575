"""Engine addresses: DOCKER_HOST / docker_host over tcp:// reach the same engine.

The local engine listens on its unix socket only, so the test forwards a loopback TCP port to
it (a small in-process relay) and snapshots through ``tcp://127.0.0.1:<port>``.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

import revivadiag as rd
from revivadiag.lab import LabInstance

pytestmark = pytest.mark.integration
DOCKER_SOCKET = "/var/run/docker.sock"


class _Relay(socketserver.BaseRequestHandler):
    """Copies bytes both ways between one TCP client and the engine's unix socket."""

    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(DOCKER_SOCKET)
        pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
        pump.start()
        _copy(self.request, upstream)
        pump.join(timeout=5)
        upstream.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def tcp_engine() -> Iterator[str]:
    """``tcp://127.0.0.1:<port>`` relayed to the local engine for this module."""
    server = _Server(("127.0.0.1", 0), _Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_snapshot_over_tcp(tcp_engine: str, lab_current: LabInstance) -> None:
    """docker_host=tcp://... is honoured and the API version negotiated."""
    snap = rd.snapshot(project=lab_current.prefix, docker_host=tcp_engine, samples=3)
    assert snap.meta.engine_address == tcp_engine
    assert snap.meta.api_version and snap.meta.engine_version
    assert sorted(snap.containers["name"]) == sorted(lab_current.containers.values())
    assert set(snap.health[snap.health["check"] == "http"]["status"]) == {"healthy"}


def test_docker_host_environment_variable(tcp_engine: str, lab_current: LabInstance,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST is used when no docker_host is given."""
    monkeypatch.setenv("DOCKER_HOST", tcp_engine)
    snap = rd.snapshot(project=lab_current.prefix, samples=2)
    assert snap.meta.engine_address == tcp_engine
