"""Every failure maps to one of the seed's six error types (netprobe.outcomes)."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from revivadiag.engine.netprobe import outcomes as o
from revivadiag.errors import NetworkErrorType


def test_error_type_strings_match_the_enum() -> None:
    """netprobe is stdlib-only, so it spells the six types itself; they must match."""
    assert set(o.ERROR_TYPES) == {e.value for e in NetworkErrorType}


@pytest.mark.parametrize(
    ("exc", "outcome", "error_type"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused",
         "CONNECTION_REFUSED"),
        (OSError(errno.ECONNREFUSED, "refused"), "refused", "CONNECTION_REFUSED"),
        (TimeoutError(), "timeout", "TIMEOUT"),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), "timeout", "TIMEOUT"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "error", "CONNECTION_REFUSED"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "error", "CONNECTION_REFUSED"),
        (socket.gaierror(-2, "Name or service not known"), "unresolvable",
         "DNS_RESOLUTION_FAILED"),
        (o.DnsFailure("db", "NXDOMAIN"), "unresolvable", "DNS_RESOLUTION_FAILED"),
        (o.DnsFailure("db", "SERVFAIL"), "unresolvable", "DNS_RESOLUTION_FAILED"),
        (o.DnsFailure("db", "TIMEOUT"), "unresolvable", "TIMEOUT"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "error", "CERTIFICATE_ERROR"),
        (ssl.SSLError("wrong version number"), "error", "CERTIFICATE_ERROR"),
        (o.ProxyError("proxy answered 502"), "error", "PROXY_ERROR"),
        (OSError(errno.ENOENT, "No such file"), "error", "CONTAINER_NOT_FOUND"),
    ],
)
def test_classify_exception(exc: BaseException, outcome: str, error_type: str) -> None:
    """The table the design asks for: each exception's outcome and error type."""
    got = o.classify_exception(exc)
    assert got[:2] == (outcome, error_type)
    assert got[2]


@pytest.mark.parametrize(
    ("rcode", "answers", "expected"),
    [
        ("NOERROR", ["10.0.0.1"], ""),
        ("NOERROR", [], "DNS_RESOLUTION_FAILED"),
        ("NXDOMAIN", [], "DNS_RESOLUTION_FAILED"),
        ("SERVFAIL", [], "DNS_RESOLUTION_FAILED"),
        ("REFUSED", [], "DNS_RESOLUTION_FAILED"),
        ("TIMEOUT", [], "TIMEOUT"),
        ("ERROR", [], "DNS_RESOLUTION_FAILED"),
    ],
)
def test_classify_rcode(rcode: str, answers: list[str], expected: str) -> None:
    """A name that did not resolve is DNS_RESOLUTION_FAILED; a silent resolver is TIMEOUT."""
    assert o.classify_rcode(rcode, answers) == expected


@pytest.mark.parametrize(
    ("status", "via_proxy", "expected"),
    [(502, True, "PROXY_ERROR"), (503, True, "PROXY_ERROR"), (504, True, "PROXY_ERROR"),
     (500, True, ""), (502, False, ""), (200, True, "")],
)
def test_classify_status(status: int, via_proxy: bool, expected: str) -> None:
    """Only a proxy's 502/503/504 is a PROXY_ERROR."""
    assert o.classify_status(status, via_proxy) == expected
