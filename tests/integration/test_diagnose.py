"""`revivadiag diagnose` end to end: real engine, real lab copies, real papermill and chromium.

Each run is a subprocess of the real command (as a user or CI runs it) and costs about a
minute, so the runs are module fixtures shared by the tests that read their outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from revivadiag.lab import LabInstance, read_secrets
from revivadiag.runbook import read_runs

XSS = "<script>alert(1)</script>"
XSS_LABEL = "io.example.note"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Run:
    """One `revivadiag diagnose` run: its exit code, output and the directory it wrote."""

    returncode: int
    stdout: str
    stderr: str
    out: Path

    def file(self, name: str) -> Path:
        return self.out / name

    def findings(self) -> Any:
        return json.loads(self.file("findings.json").read_text())


def diagnose(out: Path, *args: str, timeout_s: float = 600) -> Run:
    """Run the real command in a subprocess (no REVIVADIAG_PROJECT leaking in)."""
    env = {k: v for k, v in os.environ.items() if k != "REVIVADIAG_PROJECT"}
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "diagnose", "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout_s, env=env, check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, out)


def written_text(run: Run) -> dict[str, str]:
    """Every file the run wrote, by name."""
    return {p.name: p.read_text(errors="replace") for p in run.out.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def xss_container(engine: docker.DockerClient, lab_current: LabInstance) -> Iterator[str]:
    """A throw-away container in the `current` lab's project whose label holds a `<script>`.

    No network, no ports: it only has to appear in the snapshot. Removed after the module.
    """
    name = f"{lab_current.prefix}_xsslabel_{secrets.token_hex(3)}"
    container = engine.containers.run(
        "revivadiag/lab-redis:latest", entrypoint=["sleep", "900"], name=name, detach=True,
        network_mode="none",
        labels={"com.docker.compose.project": lab_current.prefix,
                "com.docker.compose.service": "xsslabel",
                "com.docker.compose.container-number": "1", XSS_LABEL: XSS},
    )
    try:
        yield name
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def current_run(tmp_path_factory: pytest.TempPathFactory, lab_current: LabInstance,
                xss_container: str) -> Run:
    """diagnose on `current` (with the hostile label), JUnit included."""
    out = tmp_path_factory.mktemp("diag-current")
    return diagnose(out, "-p", "project", lab_current.prefix, "-p", "samples", "5",
                    "--junit", str(out / "junit.xml"))


@pytest.fixture(scope="module")
def target_run(tmp_path_factory: pytest.TempPathFactory, lab_target: LabInstance) -> Run:
    """diagnose on `target`."""
    out = tmp_path_factory.mktemp("diag-target")
    return diagnose(out, "-p", "project", lab_target.prefix, "-p", "samples", "5")


@pytest.mark.integration
def test_current_exits_1_with_error_findings(current_run: Run) -> None:
    """On `current` the exit code is 1 and findings.json holds error findings."""
    assert current_run.returncode == 1, current_run.stderr[-3000:]
    findings = current_run.findings()
    errors = [f for f in findings["findings"] if f["severity"] == "error"]
    assert errors
    assert findings["counts"]["error"] == len(errors)
    assert findings["passed"] is False
    assert findings["run"]["outcome"] == "failed"


@pytest.mark.integration
def test_current_writes_notebook_report_and_prints_its_path(current_run: Run) -> None:
    """The executed notebook, the report and findings.json are written; stdout names the report."""
    report = current_run.file("report.html")
    assert current_run.stdout.strip().splitlines()[-1] == str(report)
    for name in ("diagnose.ipynb", "report.html", "findings.json", "junit.xml"):
        assert current_run.file(name).stat().st_size > 0, name
    # nothing else: the kernel's IPC sockets live in the run's private temporary directory
    assert {p.name for p in current_run.out.iterdir()} <= {
        "diagnose.ipynb", "report.html", "findings.json", "junit.xml"}
    html = report.read_text()
    assert "Findings" in html and "KPIs" in html and 'id="rd-run-metadata"' in html
    assert "steps.take_snapshot(params)" not in html  # code is hidden
    assert "data:image/png;base64" in html  # the topology figure


@pytest.mark.integration
def test_recorded_values_match_findings_json(current_run: Run) -> None:
    """read_runs on the executed notebook agrees with findings.json."""
    runs = read_runs([current_run.file("diagnose.ipynb")])
    counts = current_run.findings()["counts"]
    assert runs.loc[0, "n_error"] == counts["error"]
    assert bool(runs.loc[0, "passed"]) is False
    assert any(c.startswith("kpi_") for c in runs.columns)


@pytest.mark.integration
def test_junit_has_one_case_per_finding_and_kpi(current_run: Run) -> None:
    """JUnit: findings + KPIs testcases; failures = error findings + missed KPIs."""
    data = current_run.findings()
    root = ET.parse(current_run.file("junit.xml")).getroot()  # noqa: S314 - our own file
    suite = root.find("testsuite")
    assert suite is not None
    findings, kpis = data["findings"], data["kpis"]
    assert int(suite.get("tests", "0")) == len(findings) + len(kpis)
    missed = sum(1 for k in kpis if k["passed"] is False)
    assert int(suite.get("failures", "0")) == data["counts"]["error"] + missed


@pytest.mark.integration
def test_target_exits_0_without_error_findings(target_run: Run) -> None:
    """On `target` the exit code is 0 and no finding is an error."""
    assert target_run.returncode == 0, target_run.stderr[-3000:]
    findings = target_run.findings()
    assert [f["id"] for f in findings["findings"] if f["severity"] == "error"] == []
    assert findings["passed"] is True


@pytest.mark.integration
@pytest.mark.parametrize("variant", ["current", "target"])
def test_no_secret_in_any_output(variant: str, request: pytest.FixtureRequest) -> None:
    """The lab's planted secrets appear in none of the files written."""
    run: Run = request.getfixturevalue(f"{variant}_run")
    lab: LabInstance = request.getfixturevalue(f"lab_{variant}")
    planted = read_secrets(lab.prefix)
    assert planted and all(len(v) >= 16 for v in planted.values())
    texts = written_text(run)
    assert {"diagnose.ipynb", "report.html", "findings.json"} <= set(texts)
    leaks = [(name, key) for name, text in texts.items() for key, value in planted.items()
             if value in text]
    assert leaks == []


@pytest.mark.integration
def test_hostile_label_is_escaped_in_the_html(current_run: Run, xss_container: str) -> None:
    """The `<script>` label is in the report as escaped text, never as markup."""
    html = current_run.file("report.html").read_text()
    assert xss_container in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS not in html
    assert "<script" not in html.lower()


@pytest.mark.integration
def test_hostile_label_shows_as_text_in_chromium(current_run: Run) -> None:
    """In a real browser the label reads as text and no script runs (no dialog, no element)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing (scripts/ensure-test-tools.sh installs it)")
        pytest.skip(f"{CHROMIUM} missing")
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else r.abort())
            page.goto(current_run.file("report.html").resolve().as_uri())
            text = page.inner_text("body")
            scripts = page.evaluate("document.querySelectorAll('script').length")
        finally:
            browser.close()
    assert f"{XSS_LABEL}={XSS}" in text
    assert scripts == 0
    assert dialogs == []


@pytest.mark.integration
def test_failed_cell_exits_2_and_names_the_cell(tmp_path: Path, lab_current: LabInstance) -> None:
    """A runbook cell that raises: exit 2, the cell named, notebook and report still written."""
    book = tmp_path / "broken.ipynb"
    nb = new_notebook(cells=[
        new_code_cell('project = ""', metadata={"tags": ["parameters"]}),
        new_code_cell("x = 1"),
        new_code_cell("raise RuntimeError('broken on purpose')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(book))
    run = diagnose(tmp_path / "out", "--runbook", str(book), "-p", "project", lab_current.prefix)
    assert run.returncode == 2
    assert f"cell 2 of {book} failed: RuntimeError: broken on purpose" in run.stderr
    assert (run.out / "diagnose.ipynb").exists() and (run.out / "report.html").exists()
    assert not (run.out / "findings.json").exists()


def test_unreachable_engine_exits_2(tmp_path: Path) -> None:
    """No engine at --docker-host: exit 2 with a message naming the address, nothing written."""
    run = diagnose(tmp_path / "out", "--docker-host", "tcp://127.0.0.1:9", "-p", "project", "x",
                   timeout_s=120)
    assert run.returncode == 2
    assert "no Docker Engine answers at tcp://127.0.0.1:9" in run.stderr
    assert not (tmp_path / "out").exists()


def test_bad_parameter_exits_2(tmp_path: Path) -> None:
    """An unknown -p name: exit 2 naming the allowed ones."""
    run = diagnose(tmp_path / "out", "-p", "colour", "red", timeout_s=120)
    assert run.returncode == 2
    assert "bad parameter 'colour'" in run.stderr


def test_unknown_project_exits_2_leaving_nothing(tmp_path: Path,
                                                 engine: docker.DockerClient) -> None:
    """A project no container belongs to: exit 2 naming it, and the output directory this
    run made is gone again (the engine is asked while the kernel boots)."""
    name = f"rdt{uuid.uuid4().hex[:8]}-nothing"
    run = diagnose(tmp_path / "out", "-p", "project", name, timeout_s=120)
    assert run.returncode == 2, run.stderr
    assert name in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
