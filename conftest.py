"""Settings for every test run from this checkout: tests/ and the package's doctests.

* Frames are strict under test: a collector that misspells a key or hands a value of the
  wrong type gets a ``FrameError`` from ``schemas.to_frame``, not a silently missing column.
  Subprocesses (the CLI, papermill and nbval kernels) inherit the setting.
* Under ``CI=true`` a skipped test is a failure: whatever it needed (the engine, root,
  chromium, a Compose CLI) must be there in CI. Each skip site also says so itself; this hook
  is the net for any that does not. Doctest examples marked ``+SKIP`` (they need a running
  stack) are documentation, not skipped tests, and stay skipped.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from _pytest.doctest import DoctestItem

from revivadiag.schemas import STRICT_ENV

os.environ[STRICT_ENV] = "1"


def in_ci() -> bool:
    """True under CI (CI=true), where a skip is a failure."""
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (report.skipped and in_ci() and not hasattr(report, "wasxfail")
            and not isinstance(item, DoctestItem)):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: a test may not skip in CI ({reason})"
    return report
