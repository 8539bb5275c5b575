"""revivadiag: diagnostics and runbooks for the networking layer of Docker Compose stacks.

>>> import revivadiag as rd
>>> snap = rd.snapshot(project="revivatech")   # doctest: +SKIP
>>> snap.reachability.query("outcome == 'open'")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
