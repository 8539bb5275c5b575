"""Recorded run values (scrapbook) and their comparison frame, from real Diagnosis objects."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from revivadiag import __version__, schemas
from revivadiag.analyze.diagnosis import Diagnosis
from revivadiag.errors import RunbookError
from revivadiag.runbook.record import (
    diagnosis_scraps,
    read_runs,
    run_row,
    scrap_output,
    scraps_of,
)


def make_diagnosis(errors: int = 1, reuse: float | None = 12.5) -> Diagnosis:
    """A Diagnosis of hand-built frames: ``errors`` error findings, one warning, two KPIs."""
    findings = schemas.to_frame("findings", [
        *({"id": f"RD-E-{i}", "severity": "error", "title": "e"} for i in range(errors)),
        {"id": "RD-W-1", "severity": "warning", "title": "w"},
    ])
    kpis = schemas.to_frame("kpis", [
        {"kpi": "dns_resolution", "value": 0.4567, "unit": "ms", "passed": True},
        {"kpi": "connection_reuse", "value": reuse, "unit": "%",
         "passed": None if reuse is None else reuse > 90},
    ])
    return Diagnosis("demo", "production", findings, kpis, schemas.empty_frame("violations"),
                     schemas.empty_frame("checks"))


def test_scraps_of_a_diagnosis() -> None:
    """Counts, verdict, KPI values and flags, masked parameters and the whole diagnosis."""
    scraps = diagnosis_scraps(make_diagnosis(), {"project": "demo", "db_password": "x"})
    assert scraps["passed"] is False
    assert scraps["counts"] == {"error": 1, "warning": 1, "info": 0}
    assert scraps["kpis"] == {"dns_resolution": 0.457, "connection_reuse": 12.5}
    assert scraps["kpi_passed"] == {"dns_resolution": True, "connection_reuse": False}
    assert scraps["parameters"] == {"project": "demo", "db_password": "***"}
    assert scraps["tool_version"] == __version__
    assert scraps["diagnosis"]["findings"][0]["id"] == "RD-E-0"
    json.dumps(scraps, allow_nan=False)  # every scrap is strict JSON


def test_unmeasured_kpi_is_none() -> None:
    """A KPI without a value is recorded as None (not NaN)."""
    scraps = diagnosis_scraps(make_diagnosis(errors=0, reuse=None), {})
    assert scraps["passed"] is True
    assert scraps["kpis"]["connection_reuse"] is None
    assert scraps["kpi_passed"]["connection_reuse"] is None


def _glued(scraps: dict[str, object]) -> nbformat.NotebookNode:
    """A notebook whose outputs hold the scraps as glue_diagnosis displays them."""
    outputs = []
    for name, value in scraps.items():
        data, metadata = scrap_output(name, value)
        outputs.append(new_output("display_data", data=data, metadata=metadata))
    nb: nbformat.NotebookNode = new_notebook(cells=[new_code_cell("record()", outputs=outputs)])
    return nb


@pytest.mark.parametrize("value", ["text", {"a": [1, None]}, 3, True])
def test_scrap_output_is_what_scrapbook_writes(value: object) -> None:
    """Our scrap outputs are byte-for-byte scrapbook's own encoding of the same value."""
    from scrapbook.api import _prepare_ipy_data_format
    from scrapbook.encoders import registry
    from scrapbook.scraps import Scrap, scrap_to_payload

    encoder = "text" if isinstance(value, str) else "json"
    encoded = registry.encode(Scrap("v", value, encoder))
    expected = _prepare_ipy_data_format("v", scrap_to_payload(encoded), encoder)
    assert scrap_output("v", value) == expected
    assert scraps_of(_glued({"v": value})) == {"v": value}


def test_read_runs_compares_runs(tmp_path: Path) -> None:
    """read_runs gives one row per notebook, with counts and one column per KPI."""
    paths = []
    for i, diag in enumerate((make_diagnosis(errors=2), make_diagnosis(errors=0, reuse=95.0))):
        path = tmp_path / f"run{i}.ipynb"
        nbformat.write(_glued(diagnosis_scraps(diag, {"project": "demo"})), str(path))
        paths.append(path)
    runs = read_runs(paths)
    assert runs["n_error"].tolist() == [2, 0]
    assert runs["passed"].tolist() == [False, True]
    assert runs["kpi_connection_reuse"].tolist() == [12.5, 95.0]
    assert runs["kpi_connection_reuse_passed"].tolist() == [False, True]
    assert list(runs.columns[:5]) == ["path", "project", "environment", "tool_version", "passed"]


def test_scraps_of_reads_text_and_json() -> None:
    """Text scraps come back as str, JSON scraps as structures."""
    scraps = scraps_of(_glued({"project": "demo", "counts": {"error": 0}}))
    assert scraps == {"project": "demo", "counts": {"error": 0}}


def test_read_runs_without_records(tmp_path: Path) -> None:
    """A notebook without recorded values (an unfinished run) is a RunbookError."""
    path = tmp_path / "empty.ipynb"
    nbformat.write(new_notebook(), str(path))
    with pytest.raises(RunbookError, match="no recorded values"):
        read_runs([path])
    with pytest.raises(RunbookError, match="cannot read"):
        read_runs([tmp_path / "missing.ipynb"])


def test_run_row_lists_finding_ids() -> None:
    """The row carries the finding ids, comma-separated."""
    row = run_row("p", diagnosis_scraps(make_diagnosis(), {}))
    assert row["finding_ids"] == "RD-E-0,RD-W-1"
    assert isinstance(pd.DataFrame([row]), pd.DataFrame)
