"""`revivadiag lab` bad input: typed errors and exit code 2, nothing changed (no engine needed)."""

from __future__ import annotations

import pytest

from revivadiag.cli import main
from revivadiag.errors import EngineUnreachable
from revivadiag.lab import LabConfig, build_images, down, status, up

NOWHERE = "unix:///nonexistent/docker.sock"


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["lab", "up", "--variant", "blue"], "bad variant 'blue': expected one of current, target"),
     (["lab", "up", "--profile", "staging"], "bad profile 'staging'"),
     (["lab", "up", "--port", "frontend=abc"], "expected SERVICE=PORT"),
     (["lab", "up", "--port", "cache=6000"], "bad port service 'cache'"),
     (["lab", "up", "--prefix", "Bad_Prefix"], "bad prefix 'Bad_Prefix'"),
     (["lab", "status", "--prefix", "UPPER"], "bad prefix 'UPPER'")],
)
def test_bad_input_exits_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad values are rejected before any engine is contacted."""
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)  # proves nothing reaches an engine
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "call",
    [lambda: up(LabConfig(prefix="rdtnoengine")), lambda: down("rdtnoengine"),
     lambda: status("rdtnoengine"), lambda: build_images()],
    ids=["up", "down", "status", "build"],
)
def test_no_engine_is_engine_unreachable(monkeypatch: pytest.MonkeyPatch, call: object) -> None:
    """Every lab action raises EngineUnreachable naming the address when no engine answers."""
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    with pytest.raises(EngineUnreachable) as info:
        call()  # type: ignore[operator]
    assert info.value.address == NOWHERE
