"""What a diagnose run writes: the scrubbed notebook, the HTML report, findings.json, JUnit.

Everything passes through one scrubber built from the project's secret values
(:func:`revivadiag.collect.inventory.read_project_secrets`, scrubbed with
:func:`revivadiag.redact.secret_scrubber`) before it touches the output directory.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag import __version__
from revivadiag.redact import Scrubber, mask_parameters, scrub_value, secret_scrubber
from revivadiag.render.report import RunInfo, scrub_notebook, write_html
from revivadiag.runbook.execute import Execution
from revivadiag.runbook.junit import error_junit, to_junit, write_junit
from revivadiag.runbook.record import scraps_of
from revivadiag.schemas import SEVERITIES

NOTEBOOK_NAME, HTML_NAME, JSON_NAME = "diagnose.ipynb", "report.html", "findings.json"


@dataclass
class Written:
    """Paths written and the verdict they carry."""

    html: Path
    paths: list[Path] = field(default_factory=list)
    error_count: int = 0
    summary: str = ""


def tool_versions() -> str:
    """``revivadiag 0.1.0, papermill 2.7.0, Python 3.11.2``."""
    import papermill

    python = platform.python_version()
    return f"revivadiag {__version__}, papermill {papermill.__version__}, Python {python}"


def summary_line(counts: dict[str, int] | None, failed: bool) -> tuple[str, str]:
    """(outcome, one-line summary) for the header and the console.

    >>> summary_line({"error": 2, "warning": 1, "info": 0}, failed=False)
    ('failed', 'FAILED: 2 error, 1 warning, 0 info findings')
    """
    if failed or counts is None:
        return "error", "TOOL FAILED: the runbook did not finish (see the failed cell below)"
    detail = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in SEVERITIES)
    if counts.get("error", 0):
        return "failed", f"FAILED: {detail} findings"
    return "passed", f"PASSED: {detail} findings"


def write_outputs(
    out_dir: Path,
    execution: Execution,
    parameters: dict[str, Any],
    secrets: set[str],
    *,
    started: datetime,
    runbook: Path,
    junit: Path | None = None,
) -> Written:
    """Scrub and write every output of one run into ``out_dir``."""
    import nbformat

    scrubber = secret_scrubber(secrets)
    notebook = scrub_notebook(execution.notebook, scrubber)
    nb_path = out_dir / NOTEBOOK_NAME
    nbformat.write(notebook, str(nb_path))  # type: ignore[no-untyped-call]
    scraps = scraps_of(notebook)
    counts = scraps.get("counts")
    outcome, summary = summary_line(counts, failed=execution.error is not None)
    info = RunInfo(
        runbook=runbook.stem,
        project=str(parameters.get("project", "")),
        started_at=started,
        finished_at=datetime.now(UTC),
        tool_version=tool_versions(),
        parameters=mask_parameters(parameters, scrubber),
        outcome=outcome,
        summary=summary,
        extra={"Kernel": execution.kernel_name},
    )
    html_path = write_html(out_dir / HTML_NAME, notebook, info, scrubber)
    written = Written(
        html=html_path,
        paths=[nb_path, html_path],
        summary=summary,
        error_count=int((counts or {}).get("error", 0)),
    )
    if execution.error is None and "diagnosis" in scraps:
        written.paths.append(write_findings(out_dir / JSON_NAME, info, scraps, scrubber))
    if junit is not None:
        written.paths.append(write_junit_for(junit, info, scraps, execution, scrubber))
    return written


def run_record(info: RunInfo) -> dict[str, Any]:
    """The ``run`` header of findings.json."""
    return {
        "runbook": info.runbook,
        "project": info.project,
        "host": info.host,
        "started_at": info.started_at.isoformat(),
        "finished_at": info.finished_at.isoformat(),
        "duration_s": round(info.duration_s, 3),
        "tool_version": info.tool_version,
        "parameters": dict(info.parameters),
        "outcome": info.outcome,
    }


def write_findings(path: Path, info: RunInfo, scraps: dict[str, Any], scrubber: Scrubber) -> Path:
    """findings.json: the run header, then the diagnosis (summary, findings, kpis, ...)."""
    document = {
        "run": run_record(info),
        "passed": bool(scraps.get("passed")),
        "counts": scraps.get("counts"),
        **scraps["diagnosis"],
    }
    text = json.dumps(scrub_value(document, scrubber), indent=2, sort_keys=True, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_junit_for(
    path: Path, info: RunInfo, scraps: dict[str, Any], execution: Execution, scrubber: Scrubber
) -> Path:
    """JUnit XML of the findings and KPIs, or of the failure when the run did not finish."""
    suite = f"revivadiag {info.runbook} {info.project}".strip()
    if execution.error is not None or "diagnosis" not in scraps:
        reason = str(execution.error) if execution.error else "no recorded diagnosis"
        return write_junit(path, error_junit(suite, reason, scrubber))
    diagnosis = scraps["diagnosis"]
    findings = pd.DataFrame(diagnosis.get("findings") or [])
    kpis = pd.DataFrame(diagnosis.get("kpis") or [])
    return write_junit(path, to_junit(findings, kpis, suite=suite, scrubber=scrubber))
