"""A minimal HTTP/1.1 client on raw sockets that times each phase of each request.

Phase times are cumulative from the start of a sample, as curl's ``-w`` reports them:
``dns_ms`` (name asked of Docker's resolver), ``connect_ms`` (TCP, and TLS for https),
``first_byte_ms`` (first response byte), ``total_ms`` (body read). A reused connection has
``dns_ms == connect_ms == 0``. Warm-up samples are made and discarded.

>>> parse_head(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n")
(200, {'content-length': '2'})
>>> body_framing(200, {'transfer-encoding': 'chunked'}, "GET")
('chunked', 0)
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from .context import Breaker
from .dnswire import resolve_sync
from .outcomes import DnsFailure, ProxyError, classify_exception, classify_status

MAX_BODY = 1 << 20
MAX_HEAD = 64 << 10
DEFAULT_HTTP_TIMEOUT_S = 2.0

Job = dict[str, Any]
Result = dict[str, Any]


class HttpFormatError(ValueError):
    """A response that is not HTTP/1.x."""


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head (up to the blank line)."""
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpFormatError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise HttpFormatError(f"bad header line {line[:80]!r}")
        key = key.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(parts[1]), headers


def body_framing(status: int, headers: dict[str, str], method: str) -> tuple[str, int]:
    """How the body ends: ('none', 0), ('length', n), ('chunked', 0) or ('close', 0)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "none", 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", 0
    if "content-length" in headers:
        try:
            return "length", int(headers["content-length"].split(",")[0])
        except ValueError:
            raise HttpFormatError("bad content-length") from None
    return "close", 0


def build_request(method: str, url: str, headers: dict[str, str], keep_alive: bool) -> bytes:
    """The request bytes; header names/values with CR or LF are refused."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: revivadiag-netprobe",
             "Accept: */*", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    for key, value in headers.items():
        if any(c in f"{key}{value}" for c in "\r\n"):
            raise ValueError(f"header {key!r} contains a line break")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")


def strip_credentials(url: str) -> str:
    """``url`` without ``user:password@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


class Reader:
    """Buffered reads from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def until(self, marker: bytes, limit: int = MAX_HEAD) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit or not self.fill():
                raise HttpFormatError("connection closed before the response head ended")
        head, _, self.buf = self.buf.partition(marker)
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise HttpFormatError("connection closed inside the body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def to_close(self) -> None:
        total = len(self.buf)
        while total < MAX_BODY and self.fill():
            total = len(self.buf)
        self.buf = b""


def read_body(reader: Reader, framing: tuple[str, int]) -> None:
    """Consume the body (discarded; bounded by MAX_BODY)."""
    kind, length = framing
    if kind == "length":
        reader.exactly(min(length, MAX_BODY))
    elif kind == "chunked":
        while True:
            size = int(reader.until(b"\r\n", 1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.until(b"\r\n", MAX_HEAD):
                    pass  # trailers
                return
            reader.exactly(size + 2)
    elif kind == "close":
        reader.to_close()


class Session:
    """One HTTP job: a URL, options and an optional kept-alive connection."""

    def __init__(self, job: Job) -> None:
        self.url = str(job["url"])
        self.parts = urlsplit(self.url)
        if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
            raise ValueError(f"unsupported URL {strip_credentials(self.url)!r}")
        self.port = self.parts.port or (443 if self.parts.scheme == "https" else 80)
        self.server = str(job["server"]) if job.get("server") is not None else "127.0.0.11"
        self.timeout_s = float(job.get("timeout_s", DEFAULT_HTTP_TIMEOUT_S))
        self.method = str(job.get("method", "GET")).upper()
        self.reuse = not bool(job.get("new_connection", True))
        self.via_proxy = bool(job.get("via_proxy", False))
        self.verify = bool(job.get("verify_tls", True))
        headers = dict(job.get("headers", {}))
        self.request = build_request(self.method, self.url, headers, self.reuse)
        self.sock: socket.socket | None = None
        self.reader: Reader | None = None
        self.ip = ""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def _open(self, start: float) -> tuple[float, float]:
        addresses, _ms = resolve_sync(self.parts.hostname or "", self.server, self.timeout_s)
        t_dns = time.perf_counter()
        self.ip = addresses[0]
        sock = socket.socket(socket.AF_INET6 if ":" in self.ip else socket.AF_INET)
        try:
            sock.settimeout(self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((self.ip, self.port))
        except OSError:
            sock.close()
            raise
        if self.parts.scheme == "https":
            ctx = ssl.create_default_context()
            if not self.verify:
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=self.parts.hostname)
        self.sock, self.reader = sock, Reader(sock)
        return (t_dns - start) * 1000, (time.perf_counter() - start) * 1000

    def sample(self) -> dict[str, Any]:
        """One request: phase times and status; raises on failure."""
        start = time.perf_counter()
        dns_ms = connect_ms = 0.0
        if self.sock is None or not self.reuse:
            self.close()
            dns_ms, connect_ms = self._open(start)
        assert self.sock is not None and self.reader is not None
        self.sock.sendall(self.request)
        if not self.reader.buf and not self.reader.fill():
            raise HttpFormatError("connection closed without a response")
        first_byte_ms = (time.perf_counter() - start) * 1000
        status, headers = parse_head(self.reader.until(b"\r\n\r\n"))
        read_body(self.reader, body_framing(status, headers, self.method))
        total_ms = (time.perf_counter() - start) * 1000
        if not self.reuse or "close" in headers.get("connection", "").lower():
            self.close()
        if classify_status(status, self.via_proxy):
            raise ProxyError(f"proxy answered {status}")
        return {"dns_ms": round(dns_ms, 3), "connect_ms": round(connect_ms, 3),
                "first_byte_ms": round(first_byte_ms, 3), "total_ms": round(total_ms, 3),
                "status": status}


def http_job(job: Job, breaker: Breaker) -> Result:
    """Run warm-up plus N samples of one URL (blocking; called in a thread)."""
    res: Result = {"kind": "http", "url": strip_credentials(str(job.get("url", ""))), "ip": "",
                   "samples": [], "errors": [], "warmup": int(job.get("warmup", 3))}
    try:
        session = Session(job)
    except ValueError as exc:
        res["errors"].append({"error_type": "", "error": str(exc)})
        res["error_type"], res["error"] = "", str(exc)
        return res
    key = f"{session.parts.hostname}:{session.port}"
    total = res["warmup"] + int(job.get("samples", 20))
    last = {"error_type": "", "error": ""}
    try:
        for i in range(total):
            if breaker.is_open(key):
                left = min(total - i, total - res["warmup"])
                res["errors"].append({"error_type": last["error_type"], "error": (
                    f"{left} samples skipped: {breaker.note(key)}; last: {last['error']}")})
                break
            try:
                sample = session.sample()
            except (OSError, HttpFormatError, DnsFailure, ProxyError, ssl.SSLError) as exc:
                session.close()
                breaker.record(key, ok=False)
                last = _error(exc)
                if i >= res["warmup"]:
                    res["errors"].append(last)
                continue
            breaker.record(key, ok=True)
            if i >= res["warmup"]:
                res["samples"].append(sample)
    finally:
        res["ip"] = session.ip
        session.close()
    res["error_type"], res["error"] = summarize_errors(res["errors"])
    return res


def summarize_errors(errors: list[dict[str, str]]) -> tuple[str, str]:
    """The most frequent error type among failed samples, and its first message."""
    if not errors:
        return "", ""
    counts: dict[str, int] = {}
    for err in errors:
        counts[err["error_type"]] = counts.get(err["error_type"], 0) + 1
    top = max(counts, key=lambda k: counts[k])
    first = next(e["error"] for e in errors if e["error_type"] == top)
    return top, f"{counts[top]} of the samples failed: {first}"


def _error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, HttpFormatError):
        return {"error_type": "CONNECTION_REFUSED", "error": f"bad response: {exc}"}
    _outcome, etype, text = classify_exception(exc)
    return {"error_type": etype, "error": text}
