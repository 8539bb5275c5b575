"""The host-port redirect of an edge switch, for real (netfilter on this host): new
connections to the port go to the other port while the rule is in place, connections
already open stay where they were (conntrack), and removing it by its comment leaves nothing
behind (what ``undo`` does after a crash)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import docker
import httpx
import pytest

from revivadiag.migrate import hostport

pytestmark = [pytest.mark.integration]


def serve(body: bytes) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture
def two_servers() -> Iterator[tuple[int, int]]:
    blue, blue_port = serve(b"blue")
    green, green_port = serve(b"green")
    yield blue_port, green_port
    for s in (blue, green):
        s.shutdown()
        s.server_close()


def test_redirect_moves_new_connections_only_and_leaves_nothing(
        engine: docker.DockerClient, two_servers: tuple[int, int]) -> None:
    assert hostport.unusable(engine) is None, "needs a local engine and iptables (root)"
    blue_port, green_port = two_servers
    comment = hostport.tag("rdtzerotest", "edge")
    lines: list[str] = []
    with httpx.Client(trust_env=False, timeout=5) as kept:
        assert kept.get(f"http://127.0.0.1:{blue_port}/").text == "blue"  # kept alive
        redirect = hostport.Redirect(comment, blue_port, green_port, "127.0.0.1")
        try:
            redirect.add(lines.append)
            assert len(hostport.tagged_rules(comment)) == 1
            with httpx.Client(trust_env=False, timeout=5) as fresh:
                assert fresh.get(f"http://127.0.0.1:{blue_port}/").text == "green"
            assert kept.get(f"http://127.0.0.1:{blue_port}/").text == "blue"  # conntrack
        finally:
            removed = hostport.remove_tagged(comment, lines.append)
        assert removed == 1 and hostport.tagged_rules(comment) == []
        with httpx.Client(trust_env=False, timeout=5) as fresh:
            assert fresh.get(f"http://127.0.0.1:{blue_port}/").text == "blue"
    assert any("redirected" in ln for ln in lines) and any("removed" in ln for ln in lines)


def test_a_port_published_beyond_loopback_is_redirected_from_outside_too(
        engine: docker.DockerClient) -> None:
    assert hostport.unusable(engine) is None
    comment = hostport.tag("rdtzerotest", "edge-any")
    redirect = hostport.Redirect(comment, 1, 2, "0.0.0.0")
    try:
        redirect.add(lambda line: None)
        chains = sorted(r[3] for r in hostport.tagged_rules(comment))
        assert chains == ["OUTPUT", "PREROUTING"]
    finally:
        assert redirect.remove(lambda line: None) == 2
    assert hostport.tagged_rules(comment) == []
