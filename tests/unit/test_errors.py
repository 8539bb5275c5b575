"""The error tree: one base class, structured fields, messages that name the problem."""

from __future__ import annotations

import pytest

from revivadiag import errors


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (errors.EngineUnreachable("unix:///nope.sock", "connection refused"), "unix:///nope.sock"),
        (errors.ProjectNotFound("shop", ["a", "b"]), "projects seen: a, b"),
        (errors.ServiceNotFound("api", ["backend"]), "known services: backend"),
        (errors.PortInUseError("127.0.0.1", 3010, "frontend"), "127.0.0.1:3010"),
        (errors.ParameterError("variant", "blue", "one of current, target"), "'blue'"),
        (errors.ComposeFileError("x.yml", "line 3: bad indent"), "x.yml"),
        (errors.OutputPathError("/r/out", "it is a file"), "/r/out: it is a file"),
        (errors.RunbookError("diagnose", "NameError", cell=4), "cell 4"),
    ],
)
def test_messages_name_the_problem(exc: errors.RevivadiagError, needle: str) -> None:
    """Each message contains the offending value."""
    assert isinstance(exc, errors.RevivadiagError)
    assert needle in str(exc)


def test_network_error_types_are_the_seeds_six() -> None:
    """The enum holds exactly the seed design's six network error types."""
    assert {e.value for e in errors.NetworkErrorType} == {
        "CONNECTION_REFUSED", "TIMEOUT", "DNS_RESOLUTION_FAILED",
        "PROXY_ERROR", "CONTAINER_NOT_FOUND", "CERTIFICATE_ERROR",
    }

