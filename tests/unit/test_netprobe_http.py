"""The raw-socket HTTP client: response parsing, and phases measured against loopback servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from revivadiag.engine.netprobe import http_probe as hp
from revivadiag.engine.netprobe.context import Breaker


@pytest.mark.parametrize(
    ("head", "status", "headers"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2", 200, {"content-length": "2"}),
        (b"HTTP/1.0 502 Bad Gateway\r\nServer: nginx\r\nVia: x\r\nVia: y", 502,
         {"server": "nginx", "via": "x, y"}),
        (b"HTTP/1.1 204", 204, {}),
    ],
)
def test_parse_head(head: bytes, status: int, headers: dict[str, str]) -> None:
    """Status code and lower-cased, merged headers."""
    assert hp.parse_head(head) == (status, headers)


@pytest.mark.parametrize("head", [b"SSH-2.0-OpenSSH", b"HTTP/1.1 abc OK",
                                  b"HTTP/1.1 200 OK\r\nbad"])
def test_parse_head_rejects_non_http(head: bytes) -> None:
    """Anything but an HTTP/1.x status line and headers raises HttpFormatError."""
    with pytest.raises(hp.HttpFormatError):
        hp.parse_head(head)


@pytest.mark.parametrize(
    ("status", "headers", "method", "framing"),
    [
        (200, {"content-length": "10"}, "GET", ("length", 10)),
        (200, {"transfer-encoding": "gzip, chunked"}, "GET", ("chunked", 0)),
        (200, {}, "GET", ("close", 0)),
        (200, {"content-length": "10"}, "HEAD", ("none", 0)),
        (304, {}, "GET", ("none", 0)),
    ],
)
def test_body_framing(status: int, headers: dict[str, str], method: str,
                      framing: tuple[str, int]) -> None:
    """How the end of the body is found."""
    assert hp.body_framing(status, headers, method) == framing


def test_build_request_and_header_injection() -> None:
    """Host with port, path and query; a header value with CRLF is refused."""
    req = hp.build_request("GET", "http://backend:3011/api/x?a=1", {"X-Test": "1"}, True)
    assert req.startswith(b"GET /api/x?a=1 HTTP/1.1\r\nHost: backend:3011\r\n")
    assert b"Connection: keep-alive" in req and req.endswith(b"X-Test: 1\r\n\r\n")
    with pytest.raises(ValueError, match="line break"):
        hp.build_request("GET", "http://a/", {"X": "1\r\nInjected: yes"}, False)


@pytest.mark.parametrize(("url", "clean"), [
    ("http://user:pw@host:80/p", "http://host:80/p"),
    ("http://host/p", "http://host/p"),
])
def test_strip_credentials(url: str, clean: str) -> None:
    """Credentials never travel into a result."""
    assert hp.strip_credentials(url) == clean


def test_read_body_chunked() -> None:
    """A chunked body with a trailer is consumed exactly, leaving the next response."""
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT")
        reader = hp.Reader(a)
        hp.read_body(reader, ("chunked", 0))
        assert reader.buf == b"NEXT"


class Handler(BaseHTTPRequestHandler):
    """/ok (200, keep-alive), /slow (200 after 50 ms), /bad (502), /close (no length)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.05)
        status = 502 if self.path == "/bad" else 200
        body = b"hello"
        self.send_response(status)
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real HTTP server on a loopback port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(url: str, **opts: object) -> dict[str, Any]:
    job = {"kind": "http", "url": url, "samples": 5, "warmup": 2, "timeout_s": 1.0, **opts}
    return hp.http_job(job, Breaker())


def test_http_samples_and_phases(server: str) -> None:
    """N samples after warm-up; phases are cumulative and ordered; IP literal: no lookup."""
    res = run(f"{server}/ok")
    samples = res["samples"]
    assert isinstance(samples, list) and len(samples) == 5 and res["errors"] == []
    for s in samples:
        assert s["status"] == 200 and 0 <= s["dns_ms"] <= s["connect_ms"]
        assert 0 < s["connect_ms"] <= s["first_byte_ms"] <= s["total_ms"]


def test_http_reused_connection(server: str) -> None:
    """With a kept-alive connection, connect and dns are 0 after the first request."""
    res = run(f"{server}/ok", new_connection=False, warmup=1)
    assert [s["connect_ms"] for s in res["samples"]] == [0.0] * 5


def test_http_measures_a_server_delay(server: str) -> None:
    """A 50 ms server delay shows in first_byte (within a few ms)."""
    res = run(f"{server}/slow", samples=3)
    assert isinstance(res["samples"], list) and len(res["samples"]) == 3 and not res["errors"]
    for s in res["samples"]:
        # a lower bound only: how far above 50 ms a busy machine lands is the benchmark's
        # business (benchmarks/fidelity.py), not a test's
        assert s["first_byte_ms"] - s["connect_ms"] >= 49.0


def test_http_read_until_close(server: str) -> None:
    """A body without length ends when the server closes."""
    res = run(f"{server}/close", samples=2)
    assert [s["status"] for s in res["samples"]] == [200, 200]


def test_proxy_502_is_proxy_error(server: str) -> None:
    """502 through a proxy is a PROXY_ERROR failure; direct, it is just a status."""
    res = run(f"{server}/bad", via_proxy=True, samples=2)
    assert res["samples"] == [] and res["error_type"] == "PROXY_ERROR"
    direct = run(f"{server}/bad", samples=2)
    assert [s["status"] for s in direct["samples"]] == [502, 502]


def test_refused_is_connection_refused_and_breaker_stops() -> None:
    """A closed port: CONNECTION_REFUSED, and after 3 failures the rest are skipped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(f"http://127.0.0.1:{port}/", samples=10, warmup=0)
    errors = res["errors"]
    assert isinstance(errors, list)
    assert [e["error_type"] for e in errors[:3]] == ["CONNECTION_REFUSED"] * 3
    assert len(errors) == 4 and "7 samples skipped: circuit open" in errors[3]["error"]
    assert errors[3]["error_type"] == "CONNECTION_REFUSED"


def test_failures_in_warm_up_still_say_why() -> None:
    """When every warm-up request fails, the skipped samples carry the failure's type."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(f"http://127.0.0.1:{port}/", samples=5, warmup=3)
    assert res["samples"] == [] and res["error_type"] == "CONNECTION_REFUSED"
    assert "5 samples skipped" in str(res["error"])


def test_silent_server_times_out() -> None:
    """A server that accepts but never answers: TIMEOUT."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        res = run(f"http://127.0.0.1:{listener.getsockname()[1]}/", samples=1, warmup=0,
                  timeout_s=0.2)
    assert res["error_type"] == "TIMEOUT"


def test_unsupported_url() -> None:
    """A non-HTTP URL is an error row, not an exception."""
    res = run("ftp://host/x")
    assert res["samples"] == [] and "unsupported URL" in str(res["error"])
