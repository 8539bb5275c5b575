"""The plan file's schema: every invalid plan is rejected with a message naming file, step, key."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from revivadiag.errors import (
    DuplicateStepIdError,
    DuplicateTargetError,
    OutputPathError,
    ParameterError,
    PlanError,
    StalePlanError,
    UnknownStepKindError,
)
from revivadiag.migrate import labplans
from revivadiag.migrate.model import StepSpec
from revivadiag.migrate.plan import (
    KINDS,
    Plan,
    check_fresh,
    check_targets,
    dump_plan,
    load_plan,
    loads_plan,
    parse_plan,
)
from revivadiag.migrate.plan_cli import register_plan_commands

VALID: dict[str, Any] = {
    "revivadiag_plan": 1,
    "name": "demo-to-target",
    "project": "demo",
    "fingerprint": "sha256:" + "0" * 64,
    "planned_at": "2026-11-30T12:00:00Z",
    "target": {"compose_files": ["target.yml"], "project_directory": "."},
    "mode": "blue-green",
    "steps": [
        {"id": "readiness", "kind": "readiness"},
        {"id": "net-front", "kind": "network.create", "network": "demo_front",
         "compose_key": "front"},
        {"id": "db", "kind": "service.replace", "service": "db", "from": "demo_new_db",
         "to": "demo_db", "stateful": True, "volumes": ["demo_data"]},
        {"id": "env", "kind": "config.env", "service": "api", "set": {"A": "1"},
         "unset": ["B"]},
        {"id": "attach", "kind": "network.connect", "container": "demo_db",
         "network": "demo_front", "aliases": ["db"]},
        {"id": "reload", "kind": "proxy.reload", "service": "proxy"},
        {"id": "sql", "kind": "sql", "file": "001.sql"},
        {"id": "verify", "kind": "verify"},
        {"id": "cleanup", "kind": "cleanup"},
    ],
}


def edited(path: str, value: Any, delete: bool = False) -> dict[str, Any]:
    """VALID with one key (dotted path; digits index lists) set or deleted."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return data


def test_valid_plan_parses() -> None:
    """Every documented kind and key is accepted; params keep their values."""
    plan = parse_plan(VALID, "demo.yml")
    assert [s.kind for s in plan.steps] == [s["kind"] for s in VALID["steps"]]
    assert plan.step("db").params == {"service": "db", "from": "demo_new_db", "to": "demo_db",
                                      "stateful": True, "volumes": ["demo_data"]}
    assert plan.target.compose_files == ["target.yml"]


def test_dump_then_load_gives_the_plan_back(tmp_path: Path) -> None:
    """dump_plan writes comments; loading its text gives an equal plan."""
    plan = parse_plan(VALID, "demo.yml")
    plan.comments = {"": ["header line"], "db": ["why the db moves"]}
    plan.fingerprint_parts = {"container demo_new_db": "abcd"}
    text = dump_plan(plan)
    assert "# header line" in text and "  # why the db moves" in text
    path = tmp_path / "p.yml"
    path.write_text(text)
    again = load_plan(path)
    assert again.to_dict() == plan.to_dict()
    assert again.path == path
    assert again.target_files() == [tmp_path / "target.yml"]


BAD: list[tuple[str, Any, type[PlanError], str, str, str]] = [
    # (what, data, error, step, key, words in the message)
    ("not a mapping", ["x"], PlanError, "", "", "a plan is a mapping"),
    ("unknown top key", edited("colour", "red"), PlanError, "", "colour", "unknown key"),
    ("no version", edited("revivadiag_plan", None, delete=True), PlanError, "",
     "revivadiag_plan", "missing the schema version"),
    ("future version", edited("revivadiag_plan", 2), PlanError, "", "revivadiag_plan",
     "schema version 2"),
    ("version as text", edited("revivadiag_plan", "1"), PlanError, "", "revivadiag_plan",
     "must be an integer"),
    ("name not text", edited("name", 3), PlanError, "", "name", "must be a string"),
    ("bad project", edited("project", "My App"), PlanError, "", "project",
     "not a Compose project name"),
    ("bad fingerprint", edited("fingerprint", "md5:1"), PlanError, "", "fingerprint",
     "sha256"),
    ("no target", edited("target", None, delete=True), PlanError, "", "target",
     "missing the target"),
    ("target not mapping", edited("target", "t.yml"), PlanError, "", "target",
     "must be a mapping"),
    ("target without files", edited("target.compose_files", None, delete=True), PlanError, "",
     "target.compose_files", "missing"),
    ("target files empty", edited("target.compose_files", []), PlanError, "",
     "target.compose_files", "at least one"),
    ("target file not text", edited("target.compose_files", [1]), PlanError, "",
     "target.compose_files", "list of non-empty strings"),
    ("unknown target key", edited("target.profiles", ["x"]), PlanError, "",
     "target.profiles", "unknown key"),
    ("unknown mode", edited("mode", "yolo"), PlanError, "", "mode", "unknown mode"),
    ("prober not mapping", edited("prober", "/"), PlanError, "", "prober", "mapping"),
    ("steps missing", edited("steps", None, delete=True), PlanError, "", "steps",
     "missing the steps"),
    ("steps empty", edited("steps", []), PlanError, "", "steps", "at least one step"),
    ("steps not a list", edited("steps", {"a": 1}), PlanError, "", "steps", "must be a list"),
    ("step not mapping", edited("steps.1", "readiness"), PlanError, "#2", "",
     "a step must be a mapping"),
    ("step without id", edited("steps.1.id", None, delete=True), PlanError, "#2", "id",
     "needs an id"),
    ("step id with a space", edited("steps.1.id", "net front"), PlanError, "#2", "id",
     "needs an id"),
    ("step without kind", edited("steps.1.kind", None, delete=True), PlanError, "net-front",
     "kind", "needs a kind"),
    ("unknown kind", edited("steps.1.kind", "teleport"), UnknownStepKindError, "net-front",
     "kind", "unknown step kind 'teleport'"),
    ("duplicate id", edited("steps.2.id", "net-front"), DuplicateStepIdError, "net-front", "id",
     "steps #2 and #3"),
    ("missing param", edited("steps.2.to", None, delete=True), PlanError, "db", "to",
     "needs 'to'"),
    ("unknown param", edited("steps.2.rename", True), PlanError, "db", "rename",
     "unknown parameter for service.replace"),
    ("param wrong type", edited("steps.2.stateful", "yes"), PlanError, "db", "stateful",
     "true or false"),
    ("empty name", edited("steps.2.to", " "), PlanError, "db", "to", "non-empty string"),
    ("volumes not a list", edited("steps.2.volumes", "demo_data"), PlanError, "db", "volumes",
     "list of non-empty strings"),
    ("env set not a mapping", edited("steps.3.set", ["A=1"]), PlanError, "env", "set",
     "map variable names"),
    ("env with nothing", edited("steps.3", {"id": "env", "kind": "config.env",
                                            "service": "api"}), PlanError, "env", "set",
     "needs 'set' or 'unset'"),
    ("aliases not a list", edited("steps.4.aliases", "db"), PlanError, "attach", "aliases",
     "list of non-empty strings"),
    ("parts not a mapping", edited("fingerprint_parts", ["a"]), PlanError, "",
     "fingerprint_parts", "map objects"),
]


@pytest.mark.parametrize(("data", "error", "step", "key", "words"),
                         [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_plan_is_rejected(data: Any, error: type[PlanError], step: str, key: str,
                                  words: str) -> None:
    """Each invalid plan raises its PlanError naming the file, the step and the key."""
    with pytest.raises(error) as info:
        parse_plan(data, "bad.yml")
    assert type(info.value) is error
    assert (info.value.path, info.value.step, info.value.key) == ("bad.yml", step, key)
    message = str(info.value)
    assert message.startswith("plan bad.yml")
    assert words in message
    if step:
        assert f"step {step!r}" in message
    if key:
        assert f"key {key!r}" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A file that is not YAML: PlanError with the file and the line."""
    path = tmp_path / "broken.yml"
    path.write_text("revivadiag_plan: 1\nsteps: [\n  {id: a\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    """A plan file that does not exist: PlanError, not OSError."""
    with pytest.raises(PlanError, match="cannot read it"):
        load_plan(tmp_path / "nope.yml")


def test_duplicate_targets_are_refused() -> None:
    """Two steps creating one container name, or replacing one service: DuplicateTargetError."""
    data = edited("steps.5", {"id": "db2", "kind": "service.replace", "service": "api",
                              "from": "demo_new_api", "to": "demo_db"})
    with pytest.raises(DuplicateTargetError, match="'demo_db' is created by steps 'db' and"):
        check_targets(parse_plan(data, "d.yml"))
    data = edited("steps.5", {"id": "db2", "kind": "service.replace", "service": "db",
                              "from": "demo_new_db", "to": "demo_db2"})
    with pytest.raises(DuplicateTargetError, match="service 'db' is replaced by steps"):
        check_targets(parse_plan(data, "d.yml"))
    data = edited("steps.5", {"id": "net2", "kind": "network.create", "network": "demo_front",
                              "compose_key": "f2"})
    with pytest.raises(DuplicateTargetError, match="'demo_front'"):
        check_targets(parse_plan(data, "d.yml"))


def test_a_template_is_stale_until_planned() -> None:
    """A plan without a fingerprint is refused before the engine is even asked."""
    plan = parse_plan(edited("fingerprint", None), "t.yml")

    class NoEngine:
        """Any engine call fails the test."""

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"engine used: {name}")

    with pytest.raises(StalePlanError, match="no fingerprint"):
        check_fresh(plan, NoEngine(), state=object())  # type: ignore[arg-type]


@pytest.mark.parametrize("stack", sorted(labplans.LAB_PLANS))
def test_shipped_plans_render_for_any_prefix(stack: str) -> None:
    """The shipped templates load for a prefix: known kinds, unique ids, no fingerprint,
    no absolute path and no trace of the prefix they were made with."""
    text = labplans.plan_file(stack).read_text()
    assert "fingerprint: null" in text and "/work/" not in text and "rdt" not in text
    plan = labplans.lab_plan("rdtabc123", stack)
    assert plan.project == "rdtabc123" and plan.fingerprint is None
    assert {s.kind for s in plan.steps} <= set(KINDS)
    assert plan.steps[0].kind == "readiness" and plan.steps[-1].kind == "cleanup"
    assert all(plan.resolve(f).is_file() for f in plan.target.compose_files)
    for s in plan.steps:
        for value in s.params.values():
            assert "${" not in json.dumps(value)
    replaced = [s for s in plan.steps if s.kind == "service.replace"]
    assert replaced and all(str(s.params["to"]).startswith("rdtabc123_") for s in replaced)
    # stateful services go before the others, the proxy's service last
    flags = [bool(s.params.get("stateful")) for s in replaced]
    assert flags == sorted(flags, reverse=True)
    reloads = {s.params["service"] for s in plan.steps if s.kind == "proxy.reload"}
    assert len(reloads) == 1 and replaced[-1].params["service"] in reloads


def test_plan_dict_round_trip_keeps_step_specs() -> None:
    """Plan.to_dict gives the file's mapping; StepSpec params carry no id or kind."""
    plan = Plan(name="n", project="p", target=parse_plan(VALID).target,
                steps=[StepSpec("r", "readiness"), StepSpec("v", "verify")])
    again = parse_plan(plan.to_dict())
    assert again.steps == plan.steps and again.fingerprint is None
    assert loads_plan(dump_plan(plan)).to_dict() == plan.to_dict()


def _plan_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register_plan_commands(parser.add_subparsers(dest="cmd"))
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(("argv", "error", "words"), [
    (["plan", "--project", "p"], ParameterError, "give --project and --target"),
    (["plan", "--target", "t.yml"], ParameterError, "give --project and --target"),
    (["plan", "--project", "p", "--target", "t.yml", "--template"], ParameterError,
     "only with --lab"),
    (["plan", "--lab", "x", "-o", "{tmp}"], OutputPathError, "is a directory"),
    (["plan", "--lab", "x", "-o", "{tmp}/no/such/plan.yml"], OutputPathError, "does not exist"),
    (["draft", "--project", "p", "-o", "{tmp}/file"], OutputPathError, "is a file"),
])
def test_plan_commands_refuse_bad_options(tmp_path: Path, argv: list[str],
                                          error: type[Exception], words: str) -> None:
    """Bad options are typed errors raised before any engine is asked."""
    (tmp_path / "file").write_text("")
    args = _plan_args(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # any engine use fails
        with pytest.raises(error, match=words):
            args.func(args)
