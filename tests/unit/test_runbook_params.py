"""Runbook parameters: defaults match the notebook's parameters cell, -p parsing, resolution."""

from __future__ import annotations

import ast
from pathlib import Path

import papermill as pm
import pytest

from revivadiag.errors import ParameterError
from revivadiag.runbook.params import DIAGNOSE, DiagnoseParams, coerce, defaults, parse_pairs

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "diagnose.ipynb"


def test_notebook_parameters_cell_matches_spec() -> None:
    """The parameters cell declares exactly DIAGNOSE, with the same defaults."""
    cell = pm.inspect_notebook(str(RUNBOOK))
    assert list(cell) == [p.name for p in DIAGNOSE]
    assert {k: ast.literal_eval(v["default"]) for k, v in cell.items()} == defaults()


def test_spec_matches_dataclass() -> None:
    """DiagnoseParams has the same fields and defaults as DIAGNOSE."""
    assert DiagnoseParams().as_dict() == defaults()


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [("samples", "7", 7), ("live", "false", False), ("live", "YES", True), ("live", "0", False),
     ("project", "demo", "demo"), ("environment", "production", "production")],
)
def test_coerce(name: str, text: str, value: object) -> None:
    """Values are typed like the parameter's default."""
    assert coerce(name, text) == value


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [("samples", "0", "bad samples '0'"), ("samples", "many", "expected an integer"),
     ("live", "maybe", "expected true or false"), ("colour", "red", "bad parameter 'colour'")],
)
def test_coerce_errors(name: str, text: str, message: str) -> None:
    """Bad values and unknown names raise ParameterError naming them."""
    with pytest.raises(ParameterError, match=message):
        coerce(name, text)


def test_parse_pairs_later_wins() -> None:
    """Repeated -p: the last one wins."""
    assert parse_pairs([["samples", "2"], ["samples", "3"], ["project", "p"]]) == {
        "samples": 3, "project": "p"}


def test_resolve_reads_project_from_environment() -> None:
    """An empty project falls back to $REVIVADIAG_PROJECT; an explicit one wins."""
    env = {"REVIVADIAG_PROJECT": "fromenv"}
    assert DiagnoseParams.resolve(environ=env).project == "fromenv"
    assert DiagnoseParams.resolve(environ=env, project="given").project == "given"
    assert DiagnoseParams.resolve(environ={}).project_or_none is None


def test_resolve_rejects_unknown_and_bad_values() -> None:
    """Unknown parameters and a bad environment are ParameterErrors."""
    with pytest.raises(ParameterError, match="bad parameter 'colour'"):
        DiagnoseParams.resolve(environ={}, colour="red")
    with pytest.raises(ParameterError, match="bad environment 'staging'"):
        DiagnoseParams.resolve(environ={}, environment="staging")


def test_compose_files_split() -> None:
    """compose_file is a comma-separated list."""
    assert DiagnoseParams(compose_file="a.yml, b.yml,").compose_files == ["a.yml", "b.yml"]
