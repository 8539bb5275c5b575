"""The contract every probe method (setns, sidecar, exec) follows, and their registry.

Like testinfra's backends: one small module per method, each a :class:`ProbeMethod`
subclass, imported lazily by name from :data:`METHODS`.

A method receives :class:`Target` s (a running container and its jobs) and returns one
result per job, in order, each stamped with ``method``. It never raises for a probe that
failed or a container that vanished: those become results whose ``error_type`` says so.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from revivadiag.engine.jobs import Job, Result, failure_result
from revivadiag.errors import NetworkErrorType, ParameterError

#: method name -> "module:Class"
METHODS = {
    "setns": "revivadiag.engine.setns:SetnsMethod",
    "sidecar": "revivadiag.engine.sidecar:SidecarMethod",
    "exec": "revivadiag.engine.exec:ExecMethod",
}
#: callback told how many jobs just finished (``tqdm.update`` fits)
Progress = Callable[[int], Any]
#: DNS queries in flight per engine, all workers together (the design brief: a few dozen)
DNS_BUDGET = 32


@dataclass(frozen=True)
class Settings:
    """How hard to probe: containers in flight, probes in flight per container, timeouts."""

    workers: int = 16
    concurrency: int = 64
    timeout_s: float = 0.5
    dns_budget: int = DNS_BUDGET
    local: bool = True
    sidecar_image: str | None = None

    @property
    def dns_concurrency(self) -> int:
        """DNS queries in flight per container so that all workers stay within the budget."""
        return max(1, self.dns_budget // max(1, self.workers))


@dataclass
class Target:
    """One running container to probe from, and the jobs to run there."""

    key: str
    container_id: str
    name: str
    pid: int
    jobs: list[Job] = field(default_factory=list)

    def fail_all(self, error_type: str, error: str, method: str) -> list[Result]:
        """A failure result for each job (nothing could run)."""
        return [failure_result(j, error_type, error, method) for j in self.jobs]

    def gone(self, method: str, why: str = "") -> list[Result]:
        """CONTAINER_NOT_FOUND results for each job."""
        text = f"container {self.name} is not running" + (f": {why}" if why else "")
        return self.fail_all(NetworkErrorType.CONTAINER_NOT_FOUND.value, text, method)


def stamp(results: Sequence[Result], method: str) -> list[Result]:
    """Set ``method`` on every result."""
    out = []
    for res in results:
        res["method"] = method
        out.append(res)
    return out


def check_results(target: Target, results: Any, method: str) -> list[Result]:
    """The results if there is one dict per job; else failure rows saying what came back."""
    if isinstance(results, list) and len(results) == len(target.jobs) and all(
        isinstance(r, dict) for r in results
    ):
        return stamp(results, method)
    got = len(results) if isinstance(results, list) else type(results).__name__
    return target.fail_all("", f"probe returned {got} results for {len(target.jobs)} jobs", method)


class ProbeMethod(abc.ABC):
    """Runs batches of jobs from inside containers' network namespaces."""

    name: ClassVar[str]

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls, client: Any, settings: Settings) -> str | None:
        """Why this method cannot be used here, or None when it can."""

    @abc.abstractmethod
    def run(self, targets: Sequence[Target],
            progress: Progress | None = None) -> dict[str, list[Result]]:
        """Results per ``Target.key``: one per job, in order, stamped with ``method``."""

    def start(self) -> None:  # noqa: B027 (optional hook; most methods need nothing)
        """Get ready for runs ahead of the first one (e.g. start a helper process)."""

    def close(self) -> None:  # noqa: B027 (optional hook; most methods keep nothing)
        """Release what the method keeps between runs (a helper process, ...)."""


def method_class(name: str) -> type[ProbeMethod]:
    """The class registered under ``name`` (imported on first use)."""
    try:
        module_name, _, class_name = METHODS[name].partition(":")
    except KeyError:
        raise ParameterError("probe method", name, f"one of auto, {', '.join(METHODS)}") from None
    cls: type[ProbeMethod] = getattr(importlib.import_module(module_name), class_name)
    return cls
