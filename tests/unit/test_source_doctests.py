"""The `>>>` examples in the source audit's modules hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["revivadiag.analyze.source_files", "revivadiag.analyze.source_stack",
           "revivadiag.analyze.source_context", "revivadiag.analyze.source_scan",
           "revivadiag.analyze.source_cli"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    """Every example in the module passes."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
