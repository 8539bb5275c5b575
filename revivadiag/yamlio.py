"""YAML reading through libyaml's C parser when PyYAML was built with it (the pure-Python
parser takes ~50 ms for a compose file; the C one a few), else PyYAML's own.

>>> safe_load("a: [1, 2]\\nb: &x {c: 1}\\nd: {<<: *x, e: 2}")
{'a': [1, 2], 'b': {'c': 1}, 'd': {'c': 1, 'e': 2}}
"""

from __future__ import annotations

from typing import Any

import yaml

#: the safe loader, C-accelerated where available
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :data:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader
