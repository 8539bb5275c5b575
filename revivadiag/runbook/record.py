"""Key values of a runbook run, recorded in the executed notebook and read back.

The diagnose runbook's last cell calls :func:`glue_diagnosis`, which records in
scrapbook's format (``json`` and ``text`` encoders only: every recorded value stays
scrubbable text, never a binary blob) these scraps:

============== ==============================================================
scrap          value
============== ==============================================================
project        compose project diagnosed
environment    development or production
tool_version   revivadiag version that ran it
passed         True when there is no ``error`` finding
counts         {"error": n, "warning": n, "info": n}
kpis           {kpi: measured value or None}
kpi_passed     {kpi: True / False / None}
parameters     the parameters the run used (secret-looking ones masked)
diagnosis      the whole diagnosis as JSON: summary, findings, kpis, violations, checks
============== ==============================================================

:func:`read_runs` turns many executed notebooks into one comparison frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag import __version__
from revivadiag.errors import RunbookError
from revivadiag.redact import mask_parameters
from revivadiag.schemas import SEVERITIES

SCRAP_VERSION = 1
SCRAPS = (
    "project",
    "environment",
    "tool_version",
    "passed",
    "counts",
    "kpis",
    "kpi_passed",
    "parameters",
    "diagnosis",
)


def diagnosis_scraps(diagnosis: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The scraps of one diagnosis (pure; see the module table)."""
    counts = {s: int(diagnosis.counts().get(s, 0)) for s in SEVERITIES}
    kpis = diagnosis.kpis
    return {
        "project": str(diagnosis.project),
        "environment": str(diagnosis.environment),
        "tool_version": __version__,
        "passed": counts["error"] == 0,
        "counts": counts,
        "kpis": {str(r["kpi"]): _number(r["value"]) for r in kpis.to_dict("records")},
        "kpi_passed": {str(r["kpi"]): _flag(r["passed"]) for r in kpis.to_dict("records")},
        "parameters": mask_parameters(parameters),
        "diagnosis": diagnosis.to_json(),
    }


def scrap_output(name: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) of one scrap exactly as ``scrapbook.glue(name, value)`` displays it
    (payload version 1; strings with the ``text`` encoder, everything else ``json``).

    >>> scrap_output("n", 3)[0]["application/scrapbook.scrap.json+json"]
    {'name': 'n', 'data': 3, 'encoder': 'json', 'version': 1}
    """
    encoder = "text" if isinstance(value, str) else "json"
    payload = {"name": name, "data": value, "encoder": encoder, "version": SCRAP_VERSION}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    return {f"application/scrapbook.scrap.{encoder}+json": payload}, metadata


def glue_diagnosis(diagnosis: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Record the scraps in the running notebook (no visible output); returns them.

    The outputs are scrapbook's own (``scrapbook.read_notebook(path).scraps`` reads them),
    displayed directly: importing scrapbook in the kernel would import papermill, nbformat
    and jsonschema's format checkers (seconds of CPU) for a few ``display`` calls.
    """
    from IPython.display import display

    scraps = diagnosis_scraps(diagnosis, parameters)
    for name, value in scraps.items():
        data, metadata = scrap_output(name, value)
        display(data, metadata=metadata, raw=True)  # type: ignore[no-untyped-call]
    return scraps


def scraps_of(notebook: Any) -> dict[str, Any]:
    """name -> value of every scrap recorded in a notebook node."""
    from scrapbook.models import Notebook

    return {name: scrap.data for name, scrap in Notebook(notebook).scraps.items()}


def read_run(path: str | Path) -> dict[str, Any]:
    """The scraps of one executed notebook (RunbookError when unreadable or without them)."""
    import nbformat

    try:
        notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:
        raise RunbookError(str(path), f"cannot read the executed notebook: {exc}") from exc
    scraps = scraps_of(notebook)
    if "counts" not in scraps:
        raise RunbookError(str(path), "no recorded values (did the run finish?)")
    return scraps


def run_row(path: str | Path, scraps: Mapping[str, Any]) -> dict[str, Any]:
    """One comparison row: identity, verdict, counts per severity, one column per KPI."""
    row: dict[str, Any] = {
        "path": str(path),
        "project": scraps.get("project", ""),
        "environment": scraps.get("environment", ""),
        "tool_version": scraps.get("tool_version", ""),
        "passed": scraps.get("passed"),
    }
    counts = scraps.get("counts") or {}
    row.update({f"n_{s}": int(counts.get(s, 0)) for s in SEVERITIES})
    for kpi, value in (scraps.get("kpis") or {}).items():
        row[f"kpi_{kpi}"] = value
    for kpi, ok in (scraps.get("kpi_passed") or {}).items():
        row[f"kpi_{kpi}_passed"] = ok
    diagnosis = scraps.get("diagnosis") or {}
    row["finding_ids"] = ",".join((diagnosis.get("summary") or {}).get("finding_ids", []))
    return row


def read_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per executed diagnose notebook, to compare runs (see :func:`run_row`).

    >>> read_runs([])
    Empty DataFrame
    Columns: [path, project, environment, tool_version, passed, n_error, n_warning, n_info]
    Index: []
    """
    rows = [run_row(p, read_run(p)) for p in paths]
    base = [
        "path",
        "project",
        "environment",
        "tool_version",
        "passed",
        *(f"n_{s}" for s in SEVERITIES),
    ]
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in base]
    return frame.reindex(columns=base + extra)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)


def _flag(value: Any) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)
