"""The vocabulary every part of a migration shares.

A *plan* is a list of :class:`StepSpec`. The executor turns each into a :class:`Step`
(one implementation per ``kind``), and for each step:

1. ``before = step.capture(ctx)``: the before-state read from the engine (JSON-able, no
   secret value in it);
2. ``undo = step.inverse(before)``: what undoing it takes, computed from that state (never
   hand-written in the plan); intent + ``before`` + ``undo`` are journalled and fsync'd;
3. ``result = step.apply(ctx, before)``; the result is journalled;
4. on a failure, the steps already done are undone in reverse order (``step.undo``).

After a crash, ``step.classify(ctx, before)`` tells from the live engine whether the
interrupted step was not applied, applied, or partly applied; ``step.drift(ctx, result)``
lists what no longer matches what the step left (rollback refuses unless forced).

>>> StepStatus("rolled_back") is StepStatus.ROLLED_BACK
True
>>> StepSpec(id="net", kind="network.create", params={"name": "p_front"}).migration_type
'network_change'
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class StepStatus(enum.StrEnum):
    """The seed's ``MigrationStatus``, for runs and for steps."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Applied(enum.StrEnum):
    """What the live state says about a step that was interrupted."""

    NOT_APPLIED = "not_applied"
    APPLIED = "applied"
    PARTIAL = "partial"


class Mode(enum.StrEnum):
    """How a service's container is replaced."""

    BLUE_GREEN = "blue-green"
    IN_PLACE = "in-place"


#: ``kind`` prefix -> the seed's ``migration_type`` column value.
MIGRATION_TYPES: Mapping[str, str] = {
    "readiness": "readiness",
    "service": "container_rename",
    "network": "network_change",
    "config": "environment_update",
    "proxy": "proxy_config",
    "sql": "database_migration",
    "verify": "validation",
    "approval": "approval",
    "cleanup": "cleanup",
}


@dataclass(frozen=True)
class StepSpec:
    """One step as the plan file gives it: ``id`` unique in the plan, ``kind`` such as
    ``service.replace`` or ``network.create``, and the kind's own parameters."""

    id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def migration_type(self) -> str:
        return MIGRATION_TYPES.get(self.kind.split(".", 1)[0], self.kind)


@dataclass
class Context:
    """What a step needs while it runs. ``mark`` tells the prober which step is running
    (so each failed request is tagged with it); ``compose_env`` is the environment Compose
    needs to read the target files (secrets included: it is never written anywhere)."""

    project: str
    client: Any  # docker.DockerClient (kept Any: the docker package is untyped)
    mode: Mode = Mode.BLUE_GREEN
    dry_run: bool = False
    run_dir: Path = Path(".")
    target_files: tuple[Path, ...] = ()
    project_directory: Path | None = None
    compose_env: Mapping[str, str] = field(default_factory=dict)
    mark: Callable[[str | None], None] = lambda step_id: None
    log: Callable[[str], None] = lambda line: None
    drain_s: float = 10.0
    health_timeout_s: float = 120.0
    #: results of the steps completed so far in this run, by step id (``verify`` compares
    #: the data checksums ``readiness`` recorded)
    results: dict[str, Mapping[str, Any]] = field(default_factory=dict)


class Step(Protocol):
    """One kind of step. Implementations hold their :class:`StepSpec` as ``spec``."""

    spec: StepSpec

    def describe(self, ctx: Context) -> list[str]:
        """The Docker operations ``apply`` would do, one line each (the dry run)."""
        ...

    def capture(self, ctx: Context) -> dict[str, Any]:
        """The before-state this step touches, read from the engine; JSON-able, no secrets."""
        ...

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        """What undoing the step takes, computed from ``before`` (``rollback_data``)."""
        ...

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        """Do it; return what it left (JSON-able), the reference for ``drift``."""
        ...

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        """After a crash: whether the live state shows the step not applied, applied or
        partly applied."""
        ...

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        """Restore ``before`` (works from any of the three ``classify`` states)."""
        ...

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        """What in the live state no longer matches ``result`` (empty when nothing)."""
        ...
