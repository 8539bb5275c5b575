"""The health rules and row builders, on result dicts shaped like the probe engine's."""

from __future__ import annotations

from typing import Any

import pytest

from revivadiag.collect.health_rules import (
    HealthConfig,
    docker_row,
    failure_detail,
    http_row,
    outcome_row,
    probe_row,
    rate,
    vanished_row,
)
from revivadiag.collect.host_checks import CheckOutcome, classify_error, credentials_problem
from revivadiag.redact import MASK, Scrubber
from revivadiag.schemas import to_frame, validate

CFG = HealthConfig(degraded_ms=1000.0)
SECRET = "s3cr3t-value-42"


@pytest.mark.parametrize(
    ("ok", "ms", "status_code", "expected"),
    [
        (True, 3.0, 200, "healthy"),
        (True, 1000.0, 200, "healthy"),
        (True, 1000.1, 200, "degraded"),
        (True, 3.0, 503, "degraded"),
        (True, 3.0, 404, "degraded"),
        (False, 3.0, 200, "unhealthy"),
        (True, None, 200, "healthy"),
    ],
)
def test_rate(ok: bool, ms: float | None, status_code: int, expected: str) -> None:
    """HTTP 200 healthy, other status or slow degraded, failure unhealthy."""
    assert rate(ok, ms, CFG.degraded_ms, status_code) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('FATAL:  password authentication failed for user "app"', "password authentication failed"),
        ("WRONGPASS invalid username-password pair or user is disabled.", "wrong password"),
        ("NOAUTH Authentication required.", "a password is required"),
        ("Connection refused", ""),
    ],
)
def test_credentials_problem(message: str, expected: str) -> None:
    """Rejected logins are recognised from the server's words."""
    assert credentials_problem(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("connection to server at 127.0.0.1 port 1 failed: Connection refused",
         "CONNECTION_REFUSED"),
        ("timeout expired", "TIMEOUT"),
        ("could not translate host name \"db\" to address", "DNS_RESOLUTION_FAILED"),
        ("SSL error: certificate verify failed", "CERTIFICATE_ERROR"),
        ("something odd", ""),
    ],
)
def test_classify_error(message: str, expected: str) -> None:
    """Failure texts map to the seed's error types."""
    assert classify_error(message) == expected


def test_failure_detail_names_the_problem_not_the_secret() -> None:
    """A rejected login: no network error type, a CredentialsError detail, secret scrubbed."""
    scrubber = Scrubber([SECRET])
    error_type, detail = failure_detail(
        "database", f"password authentication failed (tried {SECRET})", scrubber)
    assert error_type == ""
    assert detail.startswith("CredentialsError: database rejected the credentials")
    assert SECRET not in detail and MASK in detail


def _pg_result(**over: Any) -> dict[str, Any]:
    base = {"kind": "postgres", "host": "database", "port": 5432, "ip": "10.0.0.2", "ok": True,
            "auth_failed": False, "response_ms": 4.2, "error_type": "", "error": "",
            "server_version": "150008", "method": "setns"}
    return {**base, **over}


def test_probe_row_healthy_and_slow() -> None:
    """ok results are healthy, or degraded when slow; method comes from the result."""
    ok = probe_row("database", "p_db", "postgres_internal", "database:5432", _pg_result(), CFG,
                   Scrubber())
    slow = probe_row("database", "p_db", "postgres_internal", "database:5432",
                     _pg_result(response_ms=2500.0), CFG, Scrubber())
    assert (ok["status"], ok["method"], ok["response_ms"]) == ("healthy", "setns", 4.2)
    assert slow["status"] == "degraded"


def test_probe_row_auth_failed() -> None:
    """The engine's auth_failed flag gives a CredentialsError detail and no error type."""
    result = _pg_result(ok=False, auth_failed=True, error_type="",
                        error='credentials rejected: FATAL: password authentication failed')
    got = probe_row("database", "p_db", "postgres_internal", "database:5432", result, CFG,
                    Scrubber())
    assert (got["status"], got["error_type"]) == ("unhealthy", "")
    assert "CredentialsError" in got["detail"]


def test_probe_row_network_failure_keeps_engine_error_type() -> None:
    """A network failure keeps the engine's error type."""
    result = _pg_result(ok=False, error_type="DNS_RESOLUTION_FAILED", error="database: NXDOMAIN")
    got = probe_row("database", "p_db", "postgres_internal", "database:5432", result, CFG,
                    Scrubber())
    assert (got["status"], got["error_type"]) == ("unhealthy", "DNS_RESOLUTION_FAILED")


@pytest.mark.parametrize(
    ("status_code", "expected"), [(200, "healthy"), (503, "degraded"), (500, "degraded")])
def test_http_row_by_status(status_code: int, expected: str) -> None:
    """The seed's rule on the first sample's status."""
    result = {"kind": "http", "method": "setns", "errors": [],
              "samples": [{"dns_ms": 0.4, "connect_ms": 0.2, "first_byte_ms": 3.0,
                           "total_ms": 3.5, "status": status_code}]}
    got = http_row("backend", "p_backend", "http://backend:3011/health", result, CFG, Scrubber())
    assert (got["status"], got["response_ms"], got["detail"]) == (
        expected, 3.5, f"HTTP {status_code}")


def test_http_row_exception_is_unhealthy() -> None:
    """No sample, an error: unhealthy with the engine's error type."""
    result = {"kind": "http", "method": "setns", "samples": [],
              "errors": [{"error_type": "CONNECTION_REFUSED", "error": "connection refused"}]}
    got = http_row("backend", "p_backend", "http://backend:3011/health", result, CFG, Scrubber())
    assert (got["status"], got["error_type"]) == ("unhealthy", "CONNECTION_REFUSED")


def test_outcome_row_from_host_check() -> None:
    """Host checks: method host, refused keeps its error type, bad password does not."""
    refused = outcome_row("database", "p_db", "postgres_external", "127.0.0.1:5435",
                          CheckOutcome(False, 1.0, "CONNECTION_REFUSED", "Connection refused"),
                          CFG, Scrubber(), "host")
    rejected = outcome_row("redis", "p_redis", "redis_external", "127.0.0.1:6383",
                           CheckOutcome(False, 1.0, "", "AuthenticationError: WRONGPASS"),
                           CFG, Scrubber(), "host")
    assert (refused["status"], refused["error_type"], refused["method"]) == (
        "unhealthy", "CONNECTION_REFUSED", "host")
    assert (rejected["error_type"], rejected["detail"][:16]) == ("", "CredentialsError")


def _inspect(status: str, health: dict[str, Any] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"Status": status, "Running": status == "running", "ExitCode": 137}
    if health is not None:
        state["Health"] = health
    return {"Name": "/p_backend", "State": state}


@pytest.mark.parametrize(
    ("inspect", "status", "error_type"),
    [
        (_inspect("running", {"Status": "healthy", "Log": []}), "healthy", ""),
        (_inspect("running", {"Status": "unhealthy", "FailingStreak": 3,
                              "Log": [{"Output": f"curl: auth {SECRET} failed"}]}),
         "unhealthy", ""),
        (_inspect("running", {"Status": "starting"}), "unknown", ""),
        (_inspect("running"), "unknown", ""),
        (_inspect("exited"), "unhealthy", "CONTAINER_NOT_FOUND"),
    ],
)
def test_docker_row(inspect: dict[str, Any], status: str, error_type: str) -> None:
    """Docker's view: state first, then its healthcheck; output scrubbed."""
    got = docker_row(inspect, "backend", Scrubber([SECRET]))
    assert (got["check"], got["status"], got["error_type"], got["method"]) == (
        "docker", status, error_type, "api")
    assert SECRET not in got["detail"]


def test_vanished_and_frame_schema() -> None:
    """A vanished container is CONTAINER_NOT_FOUND; rows make a valid health frame."""
    row = vanished_row({"Names": ["/p_gone_1"]}, "gone")
    assert (row["container"], row["error_type"]) == ("p_gone_1", "CONTAINER_NOT_FOUND")
    validate("health", to_frame("health", [row, docker_row(_inspect("exited"), "b", Scrubber())]))
