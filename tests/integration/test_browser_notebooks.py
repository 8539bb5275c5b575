"""Real browser checks: a notebook in JupyterLab, and a diagnose report, in Debian's chromium.

JupyterLab is started on 127.0.0.1, on a free port, with a random token, serving a copy of
``notebooks/`` (so that its autosave never touches the repository), and is ended by its PID.
The test runs every cell of the topology explorer against the `current` lab, waits for the
topology figure, the interactive graph and the probe control, picks another target, presses
**probe** and reads the result. With ``REVIVADIAG_UPDATE_DOCS=1`` the screenshots are also
copied into ``docs/`` (the README shows them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from revivadiag.lab import LabInstance

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 90.0
RUN_TIMEOUT_MS = 300_000
NOTEBOOK = "topology-explorer.ipynb"


def need_chromium() -> None:
    """Skip without chromium locally; fail under CI=true."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing (scripts/ensure-test-tools.sh installs it)")
        pytest.skip(f"{CHROMIUM} missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab: its base URL, token and the folder it serves."""

    url: str
    token: str
    root: Path


@pytest.fixture
def jupyterlab(lab_current: LabInstance, tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a copy of notebooks/ with REVIVADIAG_PROJECT set to the lab."""
    need_chromium()
    served = tmp_path / "served"
    served.mkdir()
    for path in (ROOT / "notebooks").glob("*.ipynb"):  # without outputs: all must be made here
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, served / path.name)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the DOM (no windowing), so that outputs far down can be waited for
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "REVIVADIAG_PROJECT": lab_current.prefix,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    log = (tmp_path / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url=None"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=served,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n"
                            + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield Lab(url, token, served)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def dismiss_popups(page: Any) -> None:
    """Close what JupyterLab may pop up over the notebook: a dialog (e.g. a stylesheet that
    loaded too slowly on a busy machine) and the one-time question about fetching news."""
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    news = page.locator(".jp-toast-button", has_text="No")
    if news.count():
        news.first.click(timeout=5000)


def run_all(page: Any, attempts: int = 8) -> None:
    """Run > Run All Cells until the kernel takes it (a cell shows ``[*]`` or a number): a
    request sent before the kernel's websocket has settled can be lost, so it is asked again
    (no cell has run then: nothing runs twice)."""
    started = page.locator(".jp-Notebook .jp-InputPrompt").filter(has_text="[")
    for _ in range(attempts):
        page.wait_for_timeout(3000)
        dismiss_popups(page)
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has focus
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            texts = started.all_inner_texts()
            if any(t.strip() not in ("[ ]:", "[ ]") for t in texts):
                return
            page.wait_for_timeout(500)
    pytest.fail(f"Run All Cells did not start the kernel in {attempts} attempts")


def save_docs(shot: Path) -> None:
    """Copy a screenshot into docs/ when asked to (REVIVADIAG_UPDATE_DOCS=1)."""
    if os.environ.get("REVIVADIAG_UPDATE_DOCS") == "1":
        shutil.copy(shot, ROOT / "docs" / shot.name)


@pytest.mark.integration
@pytest.mark.slow
def test_topology_explorer_in_jupyterlab(jupyterlab: Lab, tmp_path: Path) -> None:
    """All cells run in JupyterLab in chromium; the topology figure, the plotly graph and the
    probe control render; picking a target and pressing probe shows that path's outcome."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{jupyterlab.url}/lab/tree/{NOTEBOOK}?token={jupyterlab.token}")
            page.locator(".jp-Notebook").wait_for(timeout=60_000)
            assert page.locator(".jp-OutputArea-output img").count() == 0
            run_all(page)
            figure = page.locator(".jp-OutputArea-output img").first
            figure.wait_for(timeout=RUN_TIMEOUT_MS)
            page.locator(".js-plotly-plot").first.wait_for(timeout=RUN_TIMEOUT_MS)
            button = page.locator("button.widget-button", has_text="probe")
            button.wait_for(timeout=RUN_TIMEOUT_MS)
            assert figure.evaluate("img => img.naturalWidth") > 300
            dismiss_popups(page)
            figure.scroll_into_view_if_needed()
            shot_topology = tmp_path / "notebook-topology.png"
            page.screenshot(path=str(shot_topology))

            selects = page.locator(".widget-dropdown select")
            assert selects.count() == 2
            source = selects.nth(0).input_value()
            target_before = selects.nth(1).input_value()
            options = selects.nth(1).locator("option").all_inner_texts()
            target = next(o for o in options if o not in (source, target_before))
            selects.nth(1).select_option(label=target)
            button.click()
            result = page.locator(".widget-output table")
            result.wait_for(timeout=60_000)
            text = result.inner_text()
            dismiss_popups(page)
            button.scroll_into_view_if_needed()
            shot_probe = tmp_path / "notebook-probe.png"
            page.screenshot(path=str(shot_probe))
            errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']").count()
        finally:
            browser.close()
    assert target in text
    assert any(word in text for word in ("open", "refused", "timeout"))
    assert errors == 0
    save_docs(shot_topology)
    save_docs(shot_probe)


@pytest.mark.integration
@pytest.mark.slow
def test_diagnose_report_in_chromium(lab_current: LabInstance, tmp_path: Path) -> None:
    """The diagnose report opened in chromium shows its findings table (rows with finding
    ids) and its figures (images that decoded)."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    env = {k: v for k, v in os.environ.items() if k != "REVIVADIAG_PROJECT"}
    proc = subprocess.run(
        [sys.executable, "-m", "revivadiag", "diagnose", "--out", str(tmp_path / "out"),
         "-p", "project", lab_current.prefix, "-p", "samples", "3"],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = tmp_path / "out" / "report.html"
    found: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                ("file:", "data:")) else r.abort())
            page.goto(report.resolve().as_uri())
            found["finding_rows"] = page.locator("table tr", has_text="RD-").count()
            found["images"] = page.evaluate(
                "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
            found["header"] = page.locator("#rd-run-metadata").count()
            found["ids"] = set(page.locator("table td", has_text="RD-").all_inner_texts())
        finally:
            browser.close()
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())["findings"]
    assert found["header"] == 1
    assert found["finding_rows"] >= len(findings) > 0
    assert {f["id"] for f in findings} <= {t.strip() for t in found["ids"]}
    assert found["images"] >= 1
