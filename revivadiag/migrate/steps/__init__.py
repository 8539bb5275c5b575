"""One implementation per step kind of a migration plan, and :func:`build`.

>>> from revivadiag.migrate.model import StepSpec
>>> sorted(KINDS)[:3]
['cleanup', 'config.env', 'network.connect']
>>> build(StepSpec("db", "service.replace", {"service": "database", "stateful": True}))
ServiceReplace('db')
>>> build(StepSpec("x", "service.rename", {}))
Traceback (most recent call last):
...
revivadiag.errors.PlanError: plan step x: unknown kind 'service.rename' (known: cleanup, \
config.env, network.connect, network.create, network.disconnect, network.remove, proxy.reload, \
readiness, service.replace, sql, verify)
"""

from __future__ import annotations

from revivadiag.errors import PlanError
from revivadiag.migrate.model import Step, StepSpec
from revivadiag.migrate.steps.base import BaseStep
from revivadiag.migrate.steps.cleanup import Cleanup
from revivadiag.migrate.steps.data import Readiness, Sql, Verify
from revivadiag.migrate.steps.network import (
    NetworkConnect,
    NetworkCreate,
    NetworkDisconnect,
    NetworkRemove,
)
from revivadiag.migrate.steps.proxy import ProxyReload
from revivadiag.migrate.steps.service import ConfigEnv, ServiceReplace

#: kind -> its implementation
KINDS: dict[str, type[BaseStep]] = {cls.kind: cls for cls in (
    Readiness, ServiceReplace, NetworkCreate, NetworkConnect, NetworkDisconnect, NetworkRemove,
    ConfigEnv, ProxyReload, Sql, Verify, Cleanup)}


def build(spec: StepSpec) -> Step:
    """The step implementing ``spec.kind``; PlanError for an unknown kind or bad params."""
    cls = KINDS.get(spec.kind)
    if cls is None:
        raise PlanError(f"step {spec.id}", f"unknown kind {spec.kind!r} (known: "
                        f"{', '.join(sorted(KINDS))})")
    step: Step = cls(spec)
    return step


__all__ = ["KINDS", "BaseStep", "build"]
