"""What a run writes (notebook, HTML, findings.json, JUnit), from hand-built executed notebooks."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output
from test_runbook_record import make_diagnosis

from revivadiag.errors import RunbookError
from revivadiag.runbook.execute import Execution
from revivadiag.runbook.output import summary_line, write_outputs
from revivadiag.runbook.record import diagnosis_scraps, scrap_output

PLANTED = "pl4nted-Secret-v4lue"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def executed(with_scraps: bool = True) -> nbformat.NotebookNode:
    """An executed notebook that leaks the planted secret in a stream and in a finding."""
    diag = make_diagnosis(errors=2)
    diag.findings.loc[0, "evidence"] = f"password {PLANTED} seen"
    outputs = [new_output("stream", name="stdout", text=f"oops {PLANTED}\n")]
    if with_scraps:
        for name, value in diagnosis_scraps(diag, {"project": "demo"}).items():
            data, metadata = scrap_output(name, value)
            outputs.append(new_output("display_data", data=data, metadata=metadata))
    nb: nbformat.NotebookNode = new_notebook(cells=[new_code_cell("run()", outputs=outputs)])
    return nb


def test_outputs_written_and_scrubbed(tmp_path: Path) -> None:
    """Notebook, HTML, findings.json and JUnit are written; the secret is in none of them."""
    run = Execution(executed(), None, 1.5, "python3")
    params = {"project": "demo", "db_password": PLANTED, "samples": 5}
    written = write_outputs(tmp_path, run, params, {PLANTED}, started=STARTED,
                            runbook=Path("diagnose.ipynb"), junit=tmp_path / "j.xml")
    names = sorted(p.name for p in written.paths)
    assert names == ["diagnose.ipynb", "findings.json", "j.xml", "report.html"]
    assert written.error_count == 2
    assert written.summary == "FAILED: 2 error, 1 warning, 0 info findings"
    for path in written.paths:
        assert PLANTED not in path.read_text(), path.name
    doc = json.loads((tmp_path / "findings.json").read_text())
    assert doc["run"]["parameters"] == {"project": "demo", "db_password": "***", "samples": "5"}
    assert doc["run"]["outcome"] == "failed" and doc["passed"] is False
    assert doc["counts"] == {"error": 2, "warning": 1, "info": 0}
    assert doc["findings"][0]["evidence"] == "password *** seen"
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "3"  # noqa: S314


def test_failed_run_writes_notebook_and_report_only(tmp_path: Path) -> None:
    """A run stopped by a cell: no findings.json; JUnit holds one error naming it."""
    error = RunbookError("diagnose", "EngineUnreachable: gone", cell=4)
    run = Execution(executed(with_scraps=False), error, 0.5, "python3")
    written = write_outputs(tmp_path, run, {"project": "demo"}, set(), started=STARTED,
                            runbook=Path("diagnose.ipynb"), junit=tmp_path / "j.xml")
    assert not (tmp_path / "findings.json").exists()
    assert written.summary.startswith("TOOL FAILED")
    assert "TOOL FAILED" in written.html.read_text()
    junit = (tmp_path / "j.xml").read_text()
    assert "EngineUnreachable: gone" in junit and 'errors="1"' in junit


def test_summary_line() -> None:
    """passed / failed / error outcomes."""
    assert summary_line({"error": 0, "warning": 2, "info": 1}, failed=False) == (
        "passed", "PASSED: 0 error, 2 warning, 1 info findings")
    assert summary_line(None, failed=False)[0] == "error"
    assert summary_line({"error": 1}, failed=True)[0] == "error"
