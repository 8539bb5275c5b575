"""Health checks run from the host process on published ports (method ``host``).

PostgreSQL with psycopg (connect, ``SELECT 1``) and Redis with redis-py (AUTH, PING), both
at ``127.0.0.1``. Each returns a :class:`CheckOutcome`; library exceptions are mapped here, at
the boundary, to the seed's error types by :func:`classify_error`. A rejected login is told
apart from a network failure by :func:`credentials_problem` (it has no network error type).

>>> classify_error("connection to server at \\"127.0.0.1\\", port 1 failed: Connection refused")
'CONNECTION_REFUSED'
>>> credentials_problem('FATAL:  password authentication failed for user "app"')
'password authentication failed'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
import redis
import redis.exceptions

from revivadiag.errors import NetworkErrorType

#: (substring of a lower-cased error message, what it means) for rejected credentials
_CREDENTIAL_SIGNS = (
    ("password authentication failed", "password authentication failed"),
    ("no password supplied", "no password supplied"),
    ("does not exist", "role or database does not exist"),
    ("wrongpass", "wrong password"),
    ("invalid username-password pair", "wrong password"),
    ("invalid password", "wrong password"),
    ("noauth", "a password is required"),
    ("authentication required", "a password is required"),
    ("without any password configured", "a password was sent but none is configured"),
)
_NETWORK_SIGNS = (
    ("refused", NetworkErrorType.CONNECTION_REFUSED),
    ("timeout", NetworkErrorType.TIMEOUT),
    ("timed out", NetworkErrorType.TIMEOUT),
    ("name or service not known", NetworkErrorType.DNS_RESOLUTION_FAILED),
    ("could not translate host name", NetworkErrorType.DNS_RESOLUTION_FAILED),
    ("temporary failure in name resolution", NetworkErrorType.DNS_RESOLUTION_FAILED),
    ("certificate", NetworkErrorType.CERTIFICATE_ERROR),
    ("ssl", NetworkErrorType.CERTIFICATE_ERROR),
    ("no such container", NetworkErrorType.CONTAINER_NOT_FOUND),
    ("reset by peer", NetworkErrorType.CONNECTION_REFUSED),
    ("connection closed", NetworkErrorType.CONNECTION_REFUSED),
    ("server closed the connection", NetworkErrorType.CONNECTION_REFUSED),
)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check saw: ok, time taken, error type and a short (unscrubbed) message."""

    ok: bool
    response_ms: float
    error_type: str = ""
    error: str = ""


def credentials_problem(message: str) -> str:
    """What about the credentials was rejected, or '' when the message is not about them."""
    low = message.lower()
    return next((meaning for sign, meaning in _CREDENTIAL_SIGNS if sign in low), "")


def classify_error(message: str, exc: BaseException | None = None) -> str:
    """The NetworkErrorType of a failure message (and exception), '' when none fits."""
    if isinstance(exc, (TimeoutError, redis.exceptions.TimeoutError)):
        return str(NetworkErrorType.TIMEOUT)
    if isinstance(exc, ConnectionRefusedError):
        return str(NetworkErrorType.CONNECTION_REFUSED)
    low = message.lower()
    return next((str(t) for sign, t in _NETWORK_SIGNS if sign in low), "")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _failed(started: float, exc: BaseException) -> CheckOutcome:
    message = _short(exc)
    kind = "" if credentials_problem(message) else classify_error(message, exc)
    return CheckOutcome(False, _ms(started), kind, message)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def check_postgres(
    host: str, port: int, user: str, password: str, dbname: str, timeout_s: float
) -> CheckOutcome:
    """Connect with psycopg and run ``SELECT 1``."""
    started = time.perf_counter()
    try:
        with psycopg.connect(
            host=host, port=port, user=user, password=password, dbname=dbname,
            connect_timeout=max(2, round(timeout_s)), application_name="revivadiag",
        ) as conn:
            conn.execute("SELECT 1").fetchone()
    except (psycopg.Error, OSError) as exc:
        return _failed(started, exc)
    return CheckOutcome(True, _ms(started))


def check_redis(host: str, port: int, password: str, timeout_s: float) -> CheckOutcome:
    """AUTH (when a password is known) and PING with redis-py."""
    started = time.perf_counter()
    client = redis.Redis(
        host=host, port=port, password=password or None,
        socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
    )
    try:
        ok = bool(client.ping())
    except (redis.exceptions.RedisError, OSError) as exc:
        return _failed(started, exc)
    finally:
        client.close()
    if not ok:
        return CheckOutcome(False, _ms(started), "", "PING got no PONG")
    return CheckOutcome(True, _ms(started))
