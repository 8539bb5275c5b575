"""Every frame's schema: builds, validates, and rejects what does not match."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from revivadiag.collect.snapshot import FRAME_NAMES
from revivadiag.errors import FrameError
from revivadiag.schemas import (
    BOOL,
    FLOAT,
    INT,
    LIST,
    SCHEMAS,
    STR,
    STRICT_ENV,
    TS,
    empty_frame,
    strict_frames,
    to_frame,
    validate,
)

SAMPLE: dict[str, Any] = {STR: "x", INT: 7, FLOAT: 1.5, BOOL: True, LIST: ["a", "b"],
                          TS: "2026-01-02T03:04:05Z"}


def _row(name: str) -> dict[str, Any]:
    return {c.name: SAMPLE[c.dtype] for c in SCHEMAS[name].columns}


def test_snapshot_frames_all_have_schemas() -> None:
    """Each frame a Snapshot holds is documented in schemas.py."""
    assert set(FRAME_NAMES) <= set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_frame_builds_and_validates(name: str) -> None:
    """A full row and an empty frame both match the schema, dtypes included."""
    validate(name, to_frame(name, [_row(name)]))
    validate(name, empty_frame(name))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_missing_values_are_typed(name: str) -> None:
    """A row with only the first column still validates (missing values are NA/empty)."""
    first = SCHEMAS[name].columns[0].name
    frame = to_frame(name, [{first: SAMPLE[SCHEMAS[name].columns[0].dtype]}])
    validate(name, frame)
    for col in SCHEMAS[name].columns:
        if col.dtype == LIST:
            assert frame.iloc[0][col.name] == []


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_units_live_in_names(name: str) -> None:
    """Columns named *_ms or *_s are floats; every column has a one-line doc."""
    for col in SCHEMAS[name].columns:
        if col.name.endswith(("_ms", "_s")):
            assert col.dtype == FLOAT, f"{name}.{col.name}"
        assert col.doc and "\n" not in col.doc


def test_validate_rejects_wrong_columns_and_dtypes() -> None:
    """validate names the offending column."""
    frame = to_frame("ports", [_row("ports")])
    with pytest.raises(AssertionError, match="columns"):
        validate("ports", frame.drop(columns=["protocol"]))
    with pytest.raises(AssertionError, match="host_port"):
        validate("ports", frame.assign(host_port=frame["host_port"].astype("float64")))
    bad_list = to_frame("endpoints", [_row("endpoints")])
    bad_list["aliases"] = pd.Series(["not-a-list"], dtype=object)
    with pytest.raises(AssertionError, match="aliases"):
        validate("endpoints", bad_list)


BAD: dict[str, Any] = {STR: 7, INT: "seven", FLOAT: "1.5 ms", BOOL: "yes", LIST: "a,b",
                       TS: "yesterday"}


def test_suite_runs_with_strict_frames() -> None:
    """The root conftest switches strict frames on for every test (and its subprocesses)."""
    assert strict_frames()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_strict_rejects_a_misspelled_key(name: str) -> None:
    """A key the schema does not have is a FrameError naming frame, key and value."""
    row = {**_row(name), "misspelt_key": 42}
    with pytest.raises(FrameError, match=rf"frame '{name}', column 'misspelt_key'.*42"):
        to_frame(name, [row])
    assert list(to_frame(name, [row], strict=False).columns) == SCHEMAS[name].names


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_strict_rejects_uncastable_values(name: str) -> None:
    """Each column rejects a value of the wrong kind, naming the column and the value."""
    for col in SCHEMAS[name].columns:
        row = {**_row(name), col.name: BAD[col.dtype]}
        with pytest.raises(FrameError) as err:
            to_frame(name, [_row(name), row])
        assert (err.value.frame, err.value.column, err.value.value) == (
            name, col.name, BAD[col.dtype])


def test_strict_accepts_numbers_as_text() -> None:
    """A CSV cell read back as text ('7', '1.5') casts; missing values stay missing."""
    frame = to_frame("dns", [{"latency_ms": "1.5"}, {"latency_ms": None}])
    assert frame["latency_ms"].iloc[0] == 1.5 and pd.isna(frame["latency_ms"].iloc[1])


def test_strict_is_switched_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable, to_frame keeps the lenient behaviour (drops, coerces)."""
    monkeypatch.setenv(STRICT_ENV, "0")
    assert not strict_frames()
    frame = to_frame("networks", [{"network_id": "n", "nmae": "x"}])
    assert "nmae" not in frame.columns and frame["name"].iloc[0] == ""
    assert pd.isna(to_frame("dns", [{"latency_ms": "abc"}])["latency_ms"].iloc[0])
