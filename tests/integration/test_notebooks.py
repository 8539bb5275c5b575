"""Every notebook in the repo runs against a real lab under nbval, outputs compared.

nbval executes the notebooks as they are (parameters cell defaults), so the lab is chosen
through ``REVIVADIAG_PROJECT``, which both notebooks read when ``project`` is empty.
Not lax: every cell's output is compared with the one stored in the notebook (a run of the
``current`` lab, kept sanitized) after ``tests/nbval_sanitize.cfg`` has replaced the volatile
parts (prefixes, ids, times, latencies, IPs, ports, timing-dependent KPI findings). Cells
whose output cannot be made stable carry the ``nbval-ignore-output`` tag: the KPI table and
the scrapbook record of the runbook, the DNS table and the single probe of the debug notebook
(raw latency figures).

A notebook whose metadata says ``"revivadiag": {"breaks_lab": true}`` (the incident
walkthrough breaks and heals the lab) gets a private ``current`` lab from ``lab_factory``
instead of the shared one, so no other test sees it broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from revivadiag.lab import LabInstance
from revivadiag.runbook.execute import ensure_kernel

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted([*ROOT.glob("runbooks/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")])
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def breaks_lab(notebook: Path) -> bool:
    """True for a notebook that breaks the lab it runs on (its metadata says so)."""
    meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    return bool(meta.get("revivadiag", {}).get("breaks_lab"))


def test_every_notebook_is_covered() -> None:
    """The runbook and the debug notebook are both here (a renamed file is noticed)."""
    names = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert {"runbooks/diagnose.ipynb", "notebooks/debug-connectivity.ipynb",
            "notebooks/topology-explorer.ipynb", "notebooks/dns-latency.ipynb",
            "notebooks/config-audit.ipynb", "notebooks/health-monitor.ipynb"} <= names


@pytest.mark.integration
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_nbval(notebook: Path, request: pytest.FixtureRequest,
                                   tmp_path: Path) -> None:
    """nbval executes every cell without error against the `current` lab, and each output
    (roles, overview, verdict, findings, violations, reachability) matches the stored one."""
    if breaks_lab(notebook):
        factory: Callable[..., LabInstance] = request.getfixturevalue("lab_factory")
        lab = factory("current", publish=False)
    else:
        lab = request.getfixturevalue("lab_current")
    env = {**os.environ, "REVIVADIAG_PROJECT": lab.prefix}
    kernel = ensure_kernel()  # the notebooks' `python3` may be another Python's on some hosts
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-sanitize-with", str(SANITIZE),
         "--nbval-kernel-name", kernel, "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT),
         str(notebook)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
