"""The exploration notebooks run top to bottom on the second reference stack (the shop:
proxy / web / api / worker / db / cache, Compose's default names, no role labels), so nothing
in them leans on the seed's names. Executed with papermill; a cell that raises fails."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from revivadiag.lab import LabInstance
from revivadiag.runbook.execute import ensure_kernel

ROOT = Path(__file__).resolve().parents[2]
EXPLORERS = ["topology-explorer.ipynb", "dns-latency.ipynb", "config-audit.ipynb"]


@pytest.mark.integration
@pytest.mark.parametrize("name", EXPLORERS)
def test_explorer_notebook_runs_on_shop(name: str, lab_shop_current: LabInstance,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell runs on shop-current; the roles found are the shop's, by role not name."""
    monkeypatch.setenv("REVIVADIAG_PROJECT", lab_shop_current.prefix)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / name
    pm.execute_notebook(str(ROOT / "notebooks" / name), str(out), cwd=str(ROOT),
                        kernel_name=ensure_kernel(), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(o.get("data", {}).get("text/plain", "") for c in nb.cells
                     if c.cell_type == "code" for o in c.get("outputs", []))
    assert "error" not in {o.get("output_type") for c in nb.cells if c.cell_type == "code"
                           for o in c.get("outputs", [])}
    if name != "dns-latency.ipynb":  # the roles table: the shop's proxy and backend
        assert "proxy" in text and "api" in text
