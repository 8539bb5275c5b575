"""The HTML report of an executed runbook, and the secret scrubbing of everything it writes.

A report is the executed notebook rendered by nbconvert with code hidden
(``exclude_input``), through revivadiag's template (``templates/revivadiag``): no script at
all, a Content-Security-Policy that forbids them anyway, and a run-metadata header (time,
host, tool version, parameters with secrets masked). Every value written into the header
is escaped by the template; notebook outputs are escaped by whoever made them (pandas
tables and :mod:`revivadiag.render.tables` escape cell text).

Scrubbing: the Scrubber comes from :mod:`revivadiag.redact` (the one home of the secret
rules, :func:`~revivadiag.redact.secret_scrubber` knows each secret's HTML- and JSON-escaped
forms); :func:`scrub_notebook` applies it to every string of a notebook (images and other
binary payloads excepted), and :func:`notebook_html` to the final HTML.
"""

from __future__ import annotations

import copy
import functools
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revivadiag.redact import Scrubber, scrub_value

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_NAME = "revivadiag"
#: output mimetypes holding binary (base64) payloads, never scrubbed (it would corrupt them)
SCRAP_MIMETYPE_PREFIX = "application/scrapbook.scrap."
BINARY_MIMETYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


# ---------------------------------------------------------------- scrubbing


def scrub_notebook(nb: Any, scrubber: Scrubber) -> Any:
    """A copy of notebook ``nb`` with secrets masked in sources, outputs and metadata."""
    import nbformat

    clean = copy.deepcopy(nb)
    clean["metadata"] = scrub_value(clean.get("metadata", {}), scrubber)
    for cell in clean.get("cells", []):
        cell["source"] = scrubber.scrub("".join(cell.get("source", "")))
        cell["metadata"] = scrub_value(cell.get("metadata", {}), scrubber)
        for output in cell.get("outputs", []):
            _scrub_output(output, scrubber)
    return nbformat.from_dict(clean)  # type: ignore[no-untyped-call]


def _scrub_output(output: dict[str, Any], scrubber: Scrubber) -> None:
    for key in ("text", "ename", "evalue"):
        if key in output:
            output[key] = scrub_value(output[key], scrubber)
    if "traceback" in output:
        output["traceback"] = scrub_value(output["traceback"], scrubber)
    data = output.get("data") or {}
    for mimetype in list(data):
        if mimetype not in BINARY_MIMETYPES:
            data[mimetype] = scrub_value(data[mimetype], scrubber)
    if "metadata" in output:
        output["metadata"] = scrub_value(output["metadata"], scrubber)


# ---------------------------------------------------------------- run metadata


@dataclass(frozen=True)
class RunInfo:
    """What the report header says about one run."""

    runbook: str
    project: str
    started_at: datetime
    finished_at: datetime
    tool_version: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "passed"  # passed, failed (error findings), error (the tool failed)
    summary: str = ""
    host: str = field(default_factory=socket.gethostname)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Wall time of the run."""
        return (self.finished_at - self.started_at).total_seconds()


def header_rows(info: RunInfo) -> list[tuple[str, str]]:
    """(label, value) rows of the report's metadata header, parameters last."""
    rows = [
        ("Project", info.project or "(auto)"),
        ("Runbook", info.runbook),
        ("Started (UTC)", info.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
        ("Duration", f"{info.duration_s:.1f} s"),
        ("Host", info.host),
        ("Tool version", info.tool_version),
        *info.extra.items(),
    ]
    if info.parameters:
        rows.append(("Parameters", parameters_text(info.parameters)))
    return rows


def parameters_text(parameters: Mapping[str, str]) -> str:
    """``project=demo  samples=5  policy_file=""``: one line, in the given order.

    >>> parameters_text({"project": "demo", "policy_file": ""})
    'project=demo  policy_file=""'
    """
    return "  ".join(f"{k}={v if v != '' else chr(34) * 2}" for k, v in parameters.items())


def header_resources(info: RunInfo, scrubber: Scrubber) -> dict[str, Any]:
    """The ``resources.revivadiag`` mapping the template renders (scrubbed, not yet escaped)."""
    title = f"{info.runbook} report: {info.project}" if info.project else f"{info.runbook} report"
    scrubbed: dict[str, Any] = scrub_value(
        {
            "title": title,
            "summary": info.summary or info.outcome,
            "outcome": info.outcome,
            "rows": header_rows(info),
            "tool_version": info.tool_version,
        },
        scrubber,
    )
    return scrubbed


# ---------------------------------------------------------------- HTML


def notebook_html(nb: Any, info: RunInfo, scrubber: Scrubber | None = None) -> str:
    """The HTML report of executed notebook ``nb``: code hidden, header on top, scrubbed."""
    scrub = scrubber or Scrubber()
    resources = {"revivadiag": header_resources(info, scrub)}
    clean = without_scraps(scrub_notebook(nb, scrub))
    with _EXPORT_LOCK:
        body, _ = html_exporter().from_notebook_node(clean, resources=resources)
    return scrub.scrub(body)


#: one export at a time through the shared exporter (its template state is not thread-safe)
_EXPORT_LOCK = threading.Lock()


@functools.cache
def html_exporter() -> Any:
    """The report's nbconvert exporter, made once per process: its Jinja templates compile
    on the first export (~0.3 s) and stay compiled."""
    from nbconvert import HTMLExporter

    return HTMLExporter(  # type: ignore[no-untyped-call]
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


#: a 1x1 PNG: the warm-up notebook's image output
_WARM_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
             "RU5ErkJggg==")


def warm_html() -> None:
    """Export a small notebook with every kind of output a report holds (a table with
    escaped text, an image, a stream, markdown with a link), so that the templates compile
    and the HTML parser builds its entity tables (0.3 s on first use) before the real report
    is written (runbooks call it while the kernel runs the cells)."""
    import nbformat.v4 as nbf

    table = ("<table><thead><tr><th>a &amp; b</th></tr></thead>"
             "<tbody><tr><td>&lt;x&gt; &quot;y&quot; &#39;z&#39; &nbsp;</td></tr></tbody></table>")
    outputs = [nbf.new_output("display_data",  # type: ignore[no-untyped-call]
                              data={"text/html": table, "text/plain": "a & b"}),
               nbf.new_output("display_data",  # type: ignore[no-untyped-call]
                              data={"image/png": _WARM_PNG, "text/plain": "<Figure>"}),
               nbf.new_output("stream", name="stdout",  # type: ignore[no-untyped-call]
                              text="warm-up\n")]
    nb = nbf.new_notebook(cells=[  # type: ignore[no-untyped-call]
        nbf.new_markdown_cell("# warm-up\n\n[a link](https://example.org/) & *text*"),  # type: ignore[no-untyped-call]
        nbf.new_code_cell("1", outputs=outputs)])  # type: ignore[no-untyped-call]
    now = datetime.now(UTC)
    notebook_html(nb, RunInfo(runbook="warm-up", project="", started_at=now, finished_at=now,
                              tool_version=""))


def without_scraps(nb: Any) -> Any:
    """``nb`` without scrapbook's record-only outputs (nothing to show; nbconvert warns)."""
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if not _scrap_only(o)]
    return nb


def _scrap_only(output: Mapping[str, Any]) -> bool:
    data = output.get("data") or {}
    return bool(data) and all(str(k).startswith(SCRAP_MIMETYPE_PREFIX) for k in data)


def write_html(path: Path, nb: Any, info: RunInfo, scrubber: Scrubber | None = None) -> Path:
    """Write :func:`notebook_html` to ``path``; returns the path."""
    path.write_text(notebook_html(nb, info, scrubber), encoding="utf-8")
    return path
