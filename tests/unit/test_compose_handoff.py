"""Compose answers handed from one process to another (``revivadiag diagnose`` asks Compose
while its kernel boots): the real Compose CLI answers, a second interpreter takes the answer
without running Compose, a different question is still asked, and a hand-off that never
comes only costs the wait."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import COUNT_COMPOSE_CALLS
from revivadiag.collect import compose_cli
from revivadiag.collect.compose_cli import (
    HANDOFF_ENV,
    compose_config,
    find_compose_cli,
    write_handoff,
)

COMPOSE = """
services:
  web:
    image: "nginx:${TAG}"
    environment:
      API_URL: http://api:4000
  api:
    image: example/api
"""

ASK = COUNT_COMPOSE_CALLS + textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from revivadiag.collect import compose_cli

    cli = compose_cli.find_compose_cli()
    answer = compose_cli.compose_config(
        cli, [Path(sys.argv[1])], project="handoff", project_directory=Path(sys.argv[2]),
        profiles=[], environ=compose_cli.cli_environment({"TAG": sys.argv[3]}))
    print(json.dumps({"calls": len(calls), "image": answer["services"]["web"]["image"]}))
""")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    if find_compose_cli() is None:
        pytest.fail("no Compose CLI on PATH (scripts/test.sh installs docker-compose)")
    (tmp_path / "compose.yml").write_text(COMPOSE, encoding="utf-8")
    return tmp_path


@pytest.fixture()
def fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's answers and hand-off state, emptied for the test."""
    monkeypatch.setattr(compose_cli, "_ANSWERS", {})
    monkeypatch.setattr(compose_cli, "_ASKED", {})
    monkeypatch.setattr(compose_cli, "_HANDOFF_TAKEN", threading.Event())
    monkeypatch.delenv(HANDOFF_ENV, raising=False)


def ask_here(project: Path, tag: str) -> dict[str, object]:
    cli = find_compose_cli()
    assert cli is not None
    return compose_config(cli, [project / "compose.yml"], project="handoff",
                          project_directory=project, profiles=[],
                          environ=compose_cli.cli_environment({"TAG": tag}))


def ask_in_child(project: Path, tag: str, handoff: Path) -> dict[str, object]:
    env = {**os.environ, HANDOFF_ENV: str(handoff)}
    proc = subprocess.run([sys.executable, "-c", ASK, str(project / "compose.yml"),
                           str(project), tag], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.usefixtures("fresh_answers")
def test_the_same_question_is_answered_from_the_handoff(project: Path, tmp_path: Path) -> None:
    answer = ask_here(project, "1.27")
    handoff = tmp_path / "private" / "answers.json"
    handoff.parent.mkdir(mode=0o700)
    assert write_handoff(handoff) == 1
    assert stat.S_IMODE(handoff.stat().st_mode) == 0o600
    child = ask_in_child(project, "1.27", handoff)
    assert child == {"calls": 0, "image": answer["services"]["web"]["image"]}  # type: ignore[index]
    assert child["image"] == "nginx:1.27"
    assert not handoff.exists()  # read once, then removed


@pytest.mark.usefixtures("fresh_answers")
def test_another_question_is_asked_anew(project: Path, tmp_path: Path) -> None:
    ask_here(project, "1.27")
    handoff = tmp_path / "answers.json"
    write_handoff(handoff)
    child = ask_in_child(project, "1.28", handoff)  # other variables: another question
    assert child == {"calls": 1, "image": "nginx:1.28"}


@pytest.mark.usefixtures("fresh_answers")
def test_a_late_handoff_is_waited_for(project: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    answer = ask_here(project, "1.27")
    key, = compose_cli._ANSWERS
    handoff = tmp_path / "answers.json"
    monkeypatch.setattr(compose_cli, "_ANSWERS", {})
    monkeypatch.setenv(HANDOFF_ENV, str(handoff))
    writer = threading.Timer(0.3, lambda: handoff.write_text(json.dumps({key: answer})))
    writer.start()
    compose_cli._take_handoff(wait_s=30)
    writer.join()
    assert {key: answer} == compose_cli._ANSWERS
    assert not handoff.exists()


@pytest.mark.usefixtures("fresh_answers")
def test_a_handoff_that_never_comes_costs_only_the_wait(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path / "never.json"))
    started = time.monotonic()
    compose_cli._take_handoff(wait_s=0.2)
    waited = time.monotonic() - started
    assert compose_cli._ANSWERS == {}
    assert waited >= 0.2
    compose_cli._take_handoff(wait_s=30)  # once per process: no second wait
    assert time.monotonic() - started < 30


@pytest.mark.usefixtures("fresh_answers")
def test_unreadable_handoffs_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handoff = tmp_path / "answers.json"
    handoff.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(HANDOFF_ENV, str(handoff))
    compose_cli._take_handoff(wait_s=1)
    assert compose_cli._ANSWERS == {}
    handoff.write_text(json.dumps({"k": "not a project"}), encoding="utf-8")
    monkeypatch.setattr(compose_cli, "_HANDOFF_TAKEN", threading.Event())
    compose_cli._take_handoff(wait_s=1)
    assert compose_cli._ANSWERS == {}
