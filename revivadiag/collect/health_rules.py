"""Pure rules and row builders of the ``health`` frame (see :mod:`revivadiag.collect.health`).

Rules (:func:`rate`), after the seed's ``DockerServiceHealthMonitor``: an answer (HTTP 200,
a successful login and query/PING) is ``healthy``, or ``degraded`` when it took longer than
``degraded_ms`` (2 s by default, 40 % of the seed's 5 s timeout); an HTTP status other than
200 is ``degraded``; any exception is ``unhealthy`` with its error type. A check that could not
run is ``unknown``. Rejected credentials are ``unhealthy`` with an empty ``error_type`` (no
network error) and a ``CredentialsError: ...`` detail naming the problem, never the secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from revivadiag.collect.host_checks import CheckOutcome, classify_error, credentials_problem
from revivadiag.errors import CredentialsError, NetworkErrorType
from revivadiag.redact import Scrubber

Row = dict[str, Any]
NOT_FOUND = str(NetworkErrorType.CONTAINER_NOT_FOUND)
_DETAIL_MAX = 300


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of the rules. Which services are checked, on which ports and paths, comes
    from the stack's roles (:class:`~revivadiag.collect.roles.Roles`)."""

    timeout_s: float = 5.0
    #: an answer slower than this is degraded (the seed times out at 5 s)
    degraded_ms: float = 2000.0


def rate(ok: bool, response_ms: float | None, degraded_ms: float, http_status: int = 200) -> str:
    """The seed's rule: healthy, degraded (non-200 or slow) or unhealthy (failed).

    >>> rate(True, 3.0, 1000.0), rate(True, 1500.0, 1000.0), rate(True, 3.0, 1000.0, 503)
    ('healthy', 'degraded', 'degraded')
    >>> rate(False, 2.0, 1000.0)
    'unhealthy'
    """
    if not ok:
        return "unhealthy"
    if http_status != 200:
        return "degraded"
    if response_ms is not None and response_ms > degraded_ms:
        return "degraded"
    return "healthy"


def failure_detail(
    service: str, error: str, scrubber: Scrubber, auth_failed: bool = False
) -> tuple[str, str]:
    """(error_type, detail) of a failed check; rejected credentials get a CredentialsError."""
    problem = credentials_problem(error) or ("credentials rejected" if auth_failed else "")
    if problem:
        said = error.removeprefix("credentials rejected: ")
        return "", _clip(f"CredentialsError: {CredentialsError(service, problem)} ({said})",
                         scrubber)
    return classify_error(error), _clip(error, scrubber)


def _clip(text: str, scrubber: Scrubber) -> str:
    return scrubber.scrub(" ".join(str(text).split()))[:_DETAIL_MAX]


def row(
    service: str, container: str, check: str, target: str, status: str,
    response_ms: float | None = None, error_type: str = "", detail: str = "", method: str = "",
) -> Row:
    """One ``health`` row (keyword names are the columns)."""
    return {"service": service, "container": container, "check": check, "target": target,
            "status": status, "response_ms": response_ms, "error_type": error_type,
            "detail": detail, "method": method}


def outcome_row(
    service: str, container: str, check: str, target: str, outcome: CheckOutcome,
    cfg: HealthConfig, scrubber: Scrubber, method: str,
) -> Row:
    """A row from a host-side check's outcome."""
    if outcome.ok:
        status = rate(True, outcome.response_ms, cfg.degraded_ms)
        detail = "slow answer" if status == "degraded" else "ok"
        return row(service, container, check, target, status, outcome.response_ms, "", detail,
                   method)
    _, detail = failure_detail(service, outcome.error, scrubber)
    error_type = "" if detail.startswith("CredentialsError") else outcome.error_type
    return row(service, container, check, target, "unhealthy", outcome.response_ms,
               error_type, detail, method)


def probe_row(
    service: str, container: str, check: str, target: str, result: Mapping[str, Any],
    cfg: HealthConfig, scrubber: Scrubber,
) -> Row:
    """A row from a probe engine ``postgres`` / ``redis`` result."""
    method = str(result.get("method") or "")
    ms = _float(result.get("response_ms"))
    if result.get("ok"):
        status = rate(True, ms, cfg.degraded_ms)
        detail = "slow answer" if status == "degraded" else "ok"
        return row(service, container, check, target, status, ms, "", detail, method)
    error = str(result.get("error") or result.get("error_type") or "failed")
    error_type, detail = failure_detail(service, error, scrubber, bool(result.get("auth_failed")))
    if not detail.startswith("CredentialsError"):
        error_type = str(result.get("error_type") or error_type)
    return row(service, container, check, target, "unhealthy", ms, error_type, detail, method)


def http_row(
    service: str, container: str, target: str, result: Mapping[str, Any],
    cfg: HealthConfig, scrubber: Scrubber,
) -> Row:
    """A row from a probe engine ``http`` result (one sample)."""
    method = str(result.get("method") or "")
    samples = list(result.get("samples") or [])
    if samples:
        first = samples[0]
        code = int(first.get("status") or 0)
        ms = _float(first.get("total_ms"))
        status = rate(True, ms, cfg.degraded_ms, code)
        detail = f"HTTP {code}" + (" (slow answer)" if code == 200 and status == "degraded" else "")
        return row(service, container, "http", target, status, ms, "", detail, method)
    errors = list(result.get("errors") or [{}])
    err = errors[0] if errors else {}
    message = str(err.get("error") or result.get("error") or "no answer")
    error_type = str(err.get("error_type") or result.get("error_type") or classify_error(message))
    return row(service, container, "http", target, "unhealthy", _float(result.get("total_ms")),
               error_type, _clip(message, scrubber), method)


def docker_row(inspect: Mapping[str, Any], service: str, scrubber: Scrubber) -> Row:
    """Docker's own view of one container: state, then its healthcheck status."""
    name = str(inspect.get("Name", "")).lstrip("/")
    state = inspect.get("State") or {}
    status = str(state.get("Status", ""))
    if status != "running":
        detail = f"container is {status or 'gone'}"
        if status in ("exited", "dead"):
            detail += f" (exit code {state.get('ExitCode', '?')})"
        return row(service, name, "docker", name, "unhealthy", None, NOT_FOUND, detail, "api")
    health = state.get("Health") or {}
    docker_status = str(health.get("Status") or "none")
    log = list(health.get("Log") or [])
    last = log[-1] if log else {}
    if docker_status == "healthy":
        return row(service, name, "docker", name, "healthy", None, "", "healthcheck healthy",
                   "api")
    if docker_status == "unhealthy":
        output = str(last.get("Output") or "")
        detail = f"healthcheck failing {health.get('FailingStreak', 0)}x: {output}"
        return row(service, name, "docker", name, "unhealthy", None, "",
                   _clip(detail, scrubber), "api")
    detail = "healthcheck starting" if docker_status == "starting" else (
        "no Docker healthcheck defined; container running")
    return row(service, name, "docker", name, "unknown", None, "", detail, "api")


def vanished_row(summary: Mapping[str, Any], service: str) -> Row:
    """A container listed but gone before its inspect."""
    name = str((summary.get("Names") or [""])[0]).lstrip("/")
    return row(service, name, "docker", name, "unhealthy", None, NOT_FOUND,
               "container vanished during the snapshot", "api")


def unknown(service: str, container: str, check: str, target: str, why: str,
            error_type: str = "", method: str = "") -> Row:
    """A check that could not run."""
    return row(service, container, check, target, "unknown", None, error_type, why, method)


def _float(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


