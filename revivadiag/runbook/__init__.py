"""Runbooks: papermill-executed notebooks, their parameters and their reports.

>>> from revivadiag import runbook
>>> runbook.read_runs(["out/a/diagnose.ipynb", "out/b/diagnose.ipynb"])  # doctest: +SKIP

``read_runs`` is imported on first use, so ``revivadiag --version`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revivadiag.runbook.params import DiagnoseParams
    from revivadiag.runbook.record import read_run, read_runs

_LAZY = {
    "read_runs": "revivadiag.runbook.record",
    "read_run": "revivadiag.runbook.record",
    "DiagnoseParams": "revivadiag.runbook.params",
}

__all__ = ["DiagnoseParams", "read_run", "read_runs"]


def __getattr__(name: str) -> Any:
    """Import the public names on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'revivadiag.runbook' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
