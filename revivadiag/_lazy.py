"""Lazy exports for package ``__init__`` modules (PEP 562).

Heavy modules (pandas, docker, matplotlib) load on first use of a name, so importing a
package (and ``revivadiag --version``) stays fast.

>>> getattr_ = lazy_exports("pkg", {"dumps": "json"}, {})
>>> getattr_("dumps").__module__
'json'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names[name]`` on first access and caching it."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
