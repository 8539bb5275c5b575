"""The `>>>` examples in the probe engine's and probe collectors' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "revivadiag.engine.netprobe",
    "revivadiag.engine.netprobe.outcomes",
    "revivadiag.engine.netprobe.dnswire",
    "revivadiag.engine.netprobe.context",
    "revivadiag.engine.netprobe.http_probe",
    "revivadiag.engine.netprobe.services",
    "revivadiag.engine.ship",
    "revivadiag.engine.busybox",
    "revivadiag.collect.dns",
    "revivadiag.collect.reachability",
    "revivadiag.collect.latency",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    """Every example in the module passes."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
