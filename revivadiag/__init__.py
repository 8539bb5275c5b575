"""revivadiag: diagnostics and runbooks for the networking layer of Docker Compose stacks.

>>> import revivadiag as rd
>>> snap = rd.snapshot(project="shop")   # doctest: +SKIP
>>> snap.reachability.query("outcome == 'open'")  # doctest: +SKIP
>>> snap.write("out/")                            # doctest: +SKIP
>>> rd.Snapshot.load("out/").health               # doctest: +SKIP
>>> rd.draw_topology(snap)                         # doctest: +SKIP
>>> rd.diagnose(snap, environment="production").findings  # doctest: +SKIP
>>> mon = rd.HealthMonitor("shop", interval_s=10).start()  # doctest: +SKIP

The public surface is ``__all__``; everything else is reachable through the subpackages.
Heavy imports (pandas, docker) happen on first use of ``snapshot`` / ``Snapshot``, so
``import revivadiag`` (and ``revivadiag --version``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revivadiag._lazy import lazy_exports
from revivadiag.errors import (
    CredentialsError,
    EngineError,
    EngineUnreachable,
    InputError,
    NetworkErrorType,
    NotFoundError,
    ParameterError,
    ProjectNotFound,
    RevivadiagError,
    ServiceNotFound,
)

if TYPE_CHECKING:
    from revivadiag.analyze.diagnosis import Diagnosis, diagnose
    from revivadiag.collect.container_stats import EventWatcher, collect_events, collect_stats
    from revivadiag.collect.health_rules import HealthConfig
    from revivadiag.collect.monitor import HealthMonitor
    from revivadiag.collect.pipeline import snapshot
    from revivadiag.collect.snapshot import Snapshot, SnapshotMeta
    from revivadiag.render.draw import draw_topology

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "snapshot": "revivadiag.collect.pipeline",
    "Snapshot": "revivadiag.collect.snapshot",
    "SnapshotMeta": "revivadiag.collect.snapshot",
    "HealthConfig": "revivadiag.collect.health_rules",
    "diagnose": "revivadiag.analyze.diagnosis",
    "Diagnosis": "revivadiag.analyze.diagnosis",
    "draw_topology": "revivadiag.render.draw",
    "HealthMonitor": "revivadiag.collect.monitor",
    "collect_stats": "revivadiag.collect.container_stats",
    "collect_events": "revivadiag.collect.container_stats",
    "EventWatcher": "revivadiag.collect.container_stats",
}

__all__ = [
    "CredentialsError",
    "Diagnosis",
    "EngineError",
    "EngineUnreachable",
    "EventWatcher",
    "HealthConfig",
    "HealthMonitor",
    "InputError",
    "NetworkErrorType",
    "NotFoundError",
    "ParameterError",
    "ProjectNotFound",
    "RevivadiagError",
    "ServiceNotFound",
    "Snapshot",
    "SnapshotMeta",
    "__version__",
    "collect_events",
    "collect_stats",
    "diagnose",
    "draw_topology",
    "snapshot",
]


__getattr__ = lazy_exports("revivadiag", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
