"""Tables for notebooks and reports: findings, KPIs, violations, as escaped, styled HTML.

Each ``*_table`` returns a pandas ``Styler`` whose cell text and headers are HTML-escaped
(``Styler`` does not escape by default; a container label holding ``<script>`` must stay
text). The plain ``*_frame`` functions give the same rows as a DataFrame, for text output
and tests.

>>> import pandas as pd
>>> from revivadiag import schemas
>>> f = schemas.to_frame("findings", [{"id": "X-1", "severity": "error", "title": "<b>t</b>"}])
>>> "&lt;b&gt;t&lt;/b&gt;" in findings_table(f).to_html()
True
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from revivadiag.schemas import SEVERITIES

SEVERITY_STYLE = {
    "error": "color: #b71c1c; font-weight: bold",
    "warning": "color: #e65100; font-weight: bold",
    "info": "color: #0d47a1",
}
PASS_STYLE = {
    "pass": "color: #1b5e20; font-weight: bold",
    "FAIL": "color: #b71c1c; font-weight: bold",
}
FINDING_COLUMNS = ["severity", "id", "category", "title", "evidence", "remediation"]
KPI_COLUMNS = ["result", "title", "measured", "target", "samples", "detail"]


def severity_counts(findings: pd.DataFrame) -> dict[str, int]:
    """Findings per severity, every severity present (0 when none).

    >>> severity_counts(pd.DataFrame({"severity": ["error", "info", "error"]}))
    {'error': 2, 'warning': 0, 'info': 1}
    """
    counts = findings["severity"].value_counts() if len(findings) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in SEVERITIES}


def findings_frame(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings sorted by severity (error first), then id, in display column order."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out = findings.assign(_rank=findings["severity"].map(order).fillna(len(order)))
    out = out.sort_values(["_rank", "id"], kind="stable").drop(columns="_rank")
    return out[[c for c in FINDING_COLUMNS if c in out.columns]].reset_index(drop=True)


def findings_table(findings: pd.DataFrame) -> Styler:
    """The findings, error first, severity coloured, every cell escaped."""
    frame = findings_frame(findings)
    styler = _escaped(frame)
    if "severity" in frame.columns:
        styler = styler.map(lambda v: SEVERITY_STYLE.get(str(v), ""), subset=["severity"])
    return styler.set_caption(_count_caption(findings))


def _count_caption(findings: pd.DataFrame) -> str:
    counts = severity_counts(findings)
    return ", ".join(f"{n} {sev}" for sev, n in counts.items())


def kpi_frame(kpis: pd.DataFrame) -> pd.DataFrame:
    """KPIs as display rows: result (pass / FAIL / n/a), measured and target with units."""
    rows = [
        {
            "result": _result(k.get("passed")),
            "title": k.get("title") or k.get("kpi"),
            "measured": _with_unit(k.get("value"), k.get("unit")),
            "target": _target(k),
            "samples": "" if _missing(k.get("samples")) else str(int(k["samples"])),
            "detail": k.get("detail") or "",
        }
        for k in kpis.to_dict("records")
    ]
    return pd.DataFrame(rows, columns=KPI_COLUMNS)


def kpi_table(kpis: pd.DataFrame) -> Styler:
    """The KPI table with pass/FAIL coloured, every cell escaped."""
    frame = kpi_frame(kpis)
    return _escaped(frame).map(lambda v: PASS_STYLE.get(str(v), ""), subset=["result"])


def plain_table(frame: pd.DataFrame) -> Styler:
    """Any frame as an escaped table without index (e.g. violations, DNS)."""
    return _escaped(frame.reset_index(drop=True))


def _escaped(frame: pd.DataFrame) -> Styler:
    styler = frame.style.format(escape="html", na_rep="")
    styler = styler.format_index(escape="html", axis=1).hide(axis="index")
    return styler.set_table_styles(
        [
            {"selector": "td", "props": "text-align: left; vertical-align: top"},
            {"selector": "th", "props": "text-align: left"},
            {"selector": "caption", "props": "caption-side: top; text-align: left; color: #455a64"},
        ]
    )


def _target(kpi: dict[str, Any]) -> str:
    comparison = kpi.get("comparison") or ""
    return f"{comparison} {_with_unit(kpi.get('threshold'), kpi.get('unit'))}".strip()


def _result(passed: Any) -> str:
    if _missing(passed):
        return "n/a"
    return "pass" if bool(passed) else "FAIL"


def _with_unit(value: Any, unit: Any) -> str:
    if _missing(value):
        return "not measured"
    unit = "" if _missing(unit) else str(unit)
    number = f"{float(value):.3g}" if abs(float(value)) < 1000 else f"{float(value):.0f}"
    return f"{number} {unit}".strip() if unit != "%" else f"{number} %"


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
