"""The `>>>` examples in the collector modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["inventory", "containers", "networks", "env", "credentials", "host_checks", "health",
           "health_rules", "snapshot", "cli", "nginx_conf", "compose", "compose_cli",
           "compose_spec", "compose_vars"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    """Every example in revivadiag.collect.<name> passes."""
    module = importlib.import_module(f"revivadiag.collect.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
