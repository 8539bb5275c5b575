"""HTML report building, scrubbing and tables, on hand-built notebooks and frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from revivadiag import schemas
from revivadiag.redact import MASK, mask_parameters, scrub_value, secret_scrubber
from revivadiag.render import tables
from revivadiag.render.report import RunInfo, header_rows, notebook_html, scrub_notebook

SECRET = "s3cr&t<Value>"
XSS = "<script>alert(1)</script>"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
       "awAAAABJRU5ErkJggg==")


def notebook() -> Any:
    """A small executed notebook: a table with a hostile label, a leaked secret, an image."""
    findings = schemas.to_frame("findings", [
        {"id": "RD-1", "severity": "error", "category": "config", "title": f"label {XSS}",
         "evidence": f"password={SECRET}", "remediation": "README § Network isolation"},
    ])
    html_table = tables.findings_table(findings).to_html()
    return new_notebook(cells=[
        new_markdown_cell("## Findings"),
        new_code_cell("tables.findings_table(diag.findings)", outputs=[
            new_output("execute_result", data={"text/html": html_table, "text/plain": "<Styler>"},
                       execution_count=1),
        ]),
        new_code_cell(f"print('{SECRET}')", outputs=[
            new_output("stream", name="stdout", text=f"leaked {SECRET} and "
                                                     "postgresql://app:pw1234@db/app\n"),
        ]),
        new_code_cell("steps.topology()", outputs=[
            new_output("display_data", data={"image/png": PNG, "text/plain": "<Image>"}),
        ]),
        new_code_cell("sb.glue('x', 1)", outputs=[
            new_output("display_data", data={"application/scrapbook.scrap.json+json":
                                             {"name": "x", "data": 1}},
                       metadata={"scrapbook": {"name": "x"}}),
        ]),
    ], metadata={"papermill": {"parameters": {"docker_host": f"tcp://u:{SECRET}@h:2376"}}})


def info(**kw: Any) -> RunInfo:
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    base: dict[str, Any] = {
        "runbook": "diagnose", "project": "demo", "started_at": start,
        "finished_at": start + timedelta(seconds=42.5), "tool_version": "revivadiag 0.1.0",
        "parameters": {"project": "demo", "samples": "5"}, "outcome": "failed",
        "summary": "FAILED: 1 error", "host": "ci-host",
    }
    return RunInfo(**{**base, **kw})


def test_secret_scrubber_knows_escaped_forms() -> None:
    """A secret is masked raw, HTML-escaped and JSON-escaped."""
    s = secret_scrubber([SECRET])
    assert s.scrub(f"a {SECRET} b") == f"a {MASK} b"
    assert s.scrub("x s3cr&amp;t&lt;Value&gt; y") == f"x {MASK} y"
    assert SECRET not in s.scrub(json.dumps({"k": SECRET}))


def test_scrub_value_walks_structures() -> None:
    """Nested dicts and lists are scrubbed; non-strings are kept."""
    s = secret_scrubber(["hunter22"])
    assert scrub_value({"a": ["x hunter22", 3, {"b": "hunter22"}]}, s) == {
        "a": [f"x {MASK}", 3, {"b": MASK}]}


def test_scrub_notebook_masks_sources_outputs_metadata_not_images() -> None:
    """Secrets vanish from sources, outputs and metadata; image payloads stay intact."""
    nb = notebook()
    clean = scrub_notebook(nb, secret_scrubber([SECRET]))
    text = nbformat.writes(clean)
    assert SECRET not in text
    assert "pw1234" not in text  # URL credentials are redacted even when not registered
    assert clean.cells[3].outputs[0]["data"]["image/png"] == PNG
    assert SECRET in nbformat.writes(nb)  # the original is untouched


def test_mask_parameters() -> None:
    """Secret-looking names are masked; values lose registered secrets and URL passwords."""
    s = secret_scrubber(["tok-123456"])
    masked = mask_parameters({"api_token": "x", "docker_host": "ssh://me:pw99@host",
                              "note": "tok-123456", "empty_password": ""}, s)
    assert masked == {"api_token": MASK, "docker_host": "ssh://me:***@host", "note": MASK,
                      "empty_password": ""}


def test_header_rows() -> None:
    """The header names project, runbook, time, duration, host, version and parameters."""
    rows = dict(header_rows(info()))
    assert rows["Project"] == "demo"
    assert rows["Started (UTC)"] == "2025-01-02 03:04:05"
    assert rows["Duration"] == "42.5 s"
    assert rows["Host"] == "ci-host"
    assert rows["Parameters"] == "project=demo  samples=5"


@pytest.fixture(scope="module")
def report_html() -> str:
    """The HTML of the sample notebook (nbconvert is slow to start: built once)."""
    return notebook_html(notebook(), info(project=f"demo{XSS}"), secret_scrubber([SECRET]))


def test_html_hides_code_and_has_header(report_html: str) -> None:
    """Code inputs are hidden; the run-metadata header is there."""
    assert "tables.findings_table(diag.findings)" not in report_html
    assert 'id="rd-run-metadata"' in report_html
    assert "ci-host" in report_html
    assert "FAILED: 1 error" in report_html


def test_html_escapes_hostile_text(report_html: str) -> None:
    """A `<script>` in a table cell or in the project name stays text; the page has no script."""
    assert XSS not in report_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html
    assert "<script" not in report_html.lower()
    assert "script-src 'none'" in report_html


def test_html_is_scrubbed(report_html: str) -> None:
    """No secret reaches the HTML, in any spelling."""
    assert SECRET not in report_html
    assert "s3cr&amp;t&lt;Value&gt;" not in report_html
    assert "pw1234" not in report_html


def test_html_drops_scrap_outputs_keeps_images(report_html: str) -> None:
    """Scrapbook records are not rendered; images are inlined."""
    assert "scrapbook" not in report_html
    assert PNG[:40] in report_html


# ---------------------------------------------------------------- tables


def test_findings_frame_sorts_errors_first() -> None:
    """Findings are ordered error, warning, info, then by id."""
    f = schemas.to_frame("findings", [
        {"id": "B", "severity": "info"}, {"id": "C", "severity": "error"},
        {"id": "A", "severity": "warning"}, {"id": "A2", "severity": "error"},
    ])
    assert tables.findings_frame(f)["id"].tolist() == ["A2", "C", "A", "B"]
    assert tables.severity_counts(f) == {"error": 2, "warning": 1, "info": 1}


def test_tables_escape_cells_and_headers() -> None:
    """Cell text and column names are escaped in every table."""
    import pandas as pd

    html = tables.plain_table(pd.DataFrame({XSS: [XSS]})).to_html()
    assert XSS not in html
    assert html.count("&lt;script&gt;") == 2


def test_kpi_frame_formats_results() -> None:
    """pass / FAIL / n/a, value with unit, target with comparison."""
    k = schemas.to_frame("kpis", [
        {"kpi": "dns_resolution", "title": "DNS", "value": 0.512, "unit": "ms", "threshold": 5,
         "comparison": "<", "samples": 32, "passed": True, "detail": "d"},
        {"kpi": "connection_reuse", "title": "Reuse", "value": 12.5, "unit": "%",
         "threshold": 90, "comparison": ">", "samples": 50, "passed": False},
        {"kpi": "proxy_overhead", "title": "Proxy", "value": None, "unit": "ms",
         "threshold": 5, "comparison": "<", "samples": 0, "passed": None},
    ])
    rows = tables.kpi_frame(k).to_dict("records")
    assert [r["result"] for r in rows] == ["pass", "FAIL", "n/a"]
    assert rows[0]["measured"] == "0.512 ms" and rows[0]["target"] == "< 5 ms"
    assert rows[1]["measured"] == "12.5 %"
    assert rows[2]["measured"] == "not measured"
