"""Failure classification: every failed probe maps to one of the seed's six error types.

Standard library only (this package also runs inside sidecar containers). The values are
the strings of :class:`revivadiag.errors.NetworkErrorType`; a unit test keeps them in step.

>>> classify_exception(ConnectionRefusedError(111, "Connection refused"))[:2]
('refused', 'CONNECTION_REFUSED')
>>> classify_rcode("NXDOMAIN", [])
'DNS_RESOLUTION_FAILED'
>>> classify_status(502, via_proxy=True)
'PROXY_ERROR'
"""

from __future__ import annotations

import errno
import socket
import ssl

CONNECTION_REFUSED = "CONNECTION_REFUSED"
TIMEOUT = "TIMEOUT"
DNS_RESOLUTION_FAILED = "DNS_RESOLUTION_FAILED"
PROXY_ERROR = "PROXY_ERROR"
CONTAINER_NOT_FOUND = "CONTAINER_NOT_FOUND"
CERTIFICATE_ERROR = "CERTIFICATE_ERROR"
ERROR_TYPES = (CONNECTION_REFUSED, TIMEOUT, DNS_RESOLUTION_FAILED, PROXY_ERROR,
               CONTAINER_NOT_FOUND, CERTIFICATE_ERROR)

#: TCP outcomes (schemas.OUTCOMES)
OPEN, REFUSED, TIMED_OUT = "open", "refused", "timeout"
UNRESOLVABLE, ERROR = "unresolvable", "error"

#: errno -> (outcome, error type, short text)
ERRNO_TABLE: dict[int, tuple[str, str, str]] = {
    errno.ECONNREFUSED: (REFUSED, CONNECTION_REFUSED, "connection refused"),
    errno.ETIMEDOUT: (TIMED_OUT, TIMEOUT, "timed out"),
    errno.EHOSTUNREACH: (ERROR, CONNECTION_REFUSED, "host unreachable"),
    errno.ENETUNREACH: (ERROR, CONNECTION_REFUSED, "network unreachable"),
    errno.ECONNRESET: (ERROR, CONNECTION_REFUSED, "connection reset"),
    errno.ECONNABORTED: (ERROR, CONNECTION_REFUSED, "connection aborted"),
    errno.EPIPE: (ERROR, CONNECTION_REFUSED, "broken pipe"),
    errno.ENOENT: (ERROR, CONTAINER_NOT_FOUND, "network namespace gone"),
    errno.ESRCH: (ERROR, CONTAINER_NOT_FOUND, "process gone"),
}

#: rcodes that mean "the name did not resolve"
FAILED_RCODES = frozenset({"NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "ERROR"})
#: HTTP statuses a proxy answers with when its upstream failed
PROXY_STATUSES = frozenset({502, 503, 504})


class DnsFailure(Exception):
    """A name did not resolve (rcode or no A record); carries the rcode."""

    def __init__(self, name: str, rcode: str, detail: str = "") -> None:
        self.name = name
        self.rcode = rcode
        super().__init__(f"{name}: {rcode}{': ' + detail if detail else ''}")


class ProxyError(Exception):
    """A proxy answered 502/503/504."""


def classify_exception(exc: BaseException) -> tuple[str, str, str]:
    """``(outcome, error_type, message)`` for an exception raised by a probe."""
    if isinstance(exc, DnsFailure):
        etype = TIMEOUT if exc.rcode == "TIMEOUT" else DNS_RESOLUTION_FAILED
        return UNRESOLVABLE, etype, f"name not resolved: {exc}"
    if isinstance(exc, socket.gaierror):
        return UNRESOLVABLE, DNS_RESOLUTION_FAILED, f"name not resolved: {exc.strerror or exc}"
    if isinstance(exc, ProxyError):
        return ERROR, PROXY_ERROR, str(exc)
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return ERROR, CERTIFICATE_ERROR, f"TLS: {_text(exc)}"
    if isinstance(exc, TimeoutError):  # socket.timeout and asyncio.TimeoutError too
        return TIMED_OUT, TIMEOUT, "timed out"
    if isinstance(exc, OSError) and exc.errno in ERRNO_TABLE:
        return ERRNO_TABLE[exc.errno]
    if isinstance(exc, ConnectionError):
        return ERROR, CONNECTION_REFUSED, _text(exc)
    if isinstance(exc, OSError):
        return ERROR, CONNECTION_REFUSED, _text(exc)
    return ERROR, "", f"{type(exc).__name__}: {_text(exc)}"


def classify_rcode(rcode: str, answers: list[str]) -> str:
    """The error type of a DNS answer: empty when it resolved."""
    if rcode == "TIMEOUT":
        return TIMEOUT
    if rcode in FAILED_RCODES or (rcode == "NOERROR" and not answers):
        return DNS_RESOLUTION_FAILED
    return ""


def classify_status(status: int, via_proxy: bool) -> str:
    """PROXY_ERROR for a proxy's 502/503/504, else empty (the status is data, not a failure)."""
    return PROXY_ERROR if via_proxy and status in PROXY_STATUSES else ""


def _text(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else type(exc).__name__
