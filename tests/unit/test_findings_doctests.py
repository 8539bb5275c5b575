"""The `>>>` examples in the analysis modules' docstrings (and collect.connections) hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["revivadiag.analyze.policy", "revivadiag.analyze.urls",
           "revivadiag.analyze.config_audit", "revivadiag.analyze.proxy_audit",
           "revivadiag.analyze.source_audit", "revivadiag.analyze.source_eval",
           "revivadiag.analyze.findings", "revivadiag.collect.connections"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    """Every example in the module passes."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
