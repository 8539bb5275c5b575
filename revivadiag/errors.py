"""Every error revivadiag raises, under one base class.

The tree::

    RevivadiagError
     ├── EngineError                 the Docker Engine cannot be used
     │    └── EngineUnreachable      no engine answers at the socket / DOCKER_HOST
     ├── NotFoundError
     │    ├── ProjectNotFound        no container carries that compose project label
     │    └── ServiceNotFound        the project has no such service
     ├── InputError                  bad input; nothing was changed
     │    ├── ComposeFileError       a compose file that does not parse or validate
     │    ├── PolicyError            a malformed policy file
     │    ├── PlanError              a malformed migration plan (file, step, key)
     │    │    ├── UnknownStepKindError   a step kind no implementation knows
     │    │    ├── DuplicateStepIdError   two steps with one id
     │    │    ├── UnknownProjectError    the plan's project runs no container
     │    │    ├── UnknownContainerError  a step names a container the project lacks
     │    │    ├── UnknownServiceError    a step names a service the project lacks
     │    │    ├── TargetNameTakenError   a target name held by a container outside the plan
     │    │    ├── DuplicateTargetError   two steps create the same name
     │    │    ├── MissingVolumeError     a volume the plan keeps does not exist
     │    │    ├── UnhealthyServiceError  a service is not healthy (or not running)
     │    │    └── StalePlanError         the live state changed since the plan was made
     │    ├── ParameterError         an unknown variant, profile, port or option
     │    └── OutputPathError        an output path that is a file, or cannot be written
     ├── CredentialsError            a password or token was rejected
     ├── LabError                    the reference lab could not be built or started
     │    ├── ImageBuildError
     │    ├── PortInUseError
     │    ├── LabStartError
     │    └── FaultStateError        `lab break` on a broken lab, `lab heal` with nothing broken
     ├── RunbookError                a runbook step or its notebook failed
     │    └── StepError              a migration step could not be applied or undone
     ├── MigrationError              a migration run could not go on
     │    ├── JournalError           a journal that cannot be read or written
     │    ├── MigrationLocked        another run holds the project's lock
     │    ├── ApprovalRequired       the run is not approved (exit 3 in the CLI)
     │    ├── MigrationNotFound      no journal for that migration id
     │    ├── StepFailed             a step failed (its completed steps were rolled back)
     │    └── RollbackRefused        the live state drifted from what the steps left
     ├── ProberError                 the migration prober cannot send its traffic
     │    └── NoProxyPort            the proxy publishes no port the prober can reach on loopback
     └── FrameError                  a row does not fit its frame's schema (strict frames)

Failed probes are *rows* (with an ``error_type`` column, one of :class:`NetworkErrorType`),
not exceptions.
Third-party exceptions are translated where they enter (``raise X(...) from exc``).
"""

from __future__ import annotations

import enum


class NetworkErrorType(enum.StrEnum):
    """The seed design's six network error types."""

    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    TIMEOUT = "TIMEOUT"
    DNS_RESOLUTION_FAILED = "DNS_RESOLUTION_FAILED"
    PROXY_ERROR = "PROXY_ERROR"
    CONTAINER_NOT_FOUND = "CONTAINER_NOT_FOUND"
    CERTIFICATE_ERROR = "CERTIFICATE_ERROR"

    @property
    def retryable(self) -> bool:
        """Whether a retry with backoff may help (the seed's handling table)."""
        return self in (NetworkErrorType.CONNECTION_REFUSED, NetworkErrorType.TIMEOUT)


class RevivadiagError(Exception):
    """Base class of every error raised by revivadiag."""


class EngineError(RevivadiagError):
    """The Docker Engine could not be used."""


class EngineUnreachable(EngineError):
    """No Docker Engine answers at the configured address."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"no Docker Engine answers at {address}: {reason}")


class NotFoundError(RevivadiagError):
    """Something named by the user does not exist."""


class ProjectNotFound(NotFoundError):
    """No container carries the compose project label asked for."""

    def __init__(self, project: str, known: list[str] | None = None) -> None:
        self.project = project
        self.known = sorted(known or [])
        hint = f" (projects seen: {', '.join(self.known)})" if self.known else ""
        if not project:  # none asked for, and none could be chosen
            why = "several run; pass a project" if self.known else "none runs"
            super().__init__(f"no compose project chosen on this engine: {why}{hint}")
            return
        super().__init__(f"no compose project named {project!r} on this engine{hint}")


class ServiceNotFound(NotFoundError):
    """The project has no service of that name."""

    def __init__(self, service: str, known: list[str] | None = None) -> None:
        self.service = service
        self.known = sorted(known or [])
        hint = f"; known services: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown service {service!r}{hint}")


class InputError(RevivadiagError):
    """Bad input from the user; nothing was changed."""


class ComposeFileError(InputError):
    """A compose file that does not parse or does not validate."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"compose file {path}: {reason}")


class PolicyError(InputError):
    """A malformed access-policy file."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"policy {path}: {reason}")


class PlanError(InputError):
    """A malformed migration plan (``step`` and ``key`` name where, when known)."""

    def __init__(self, path: str, reason: str, *, step: str = "", key: str = "") -> None:
        self.path = path
        self.reason = reason
        self.step = step
        self.key = key
        where = "".join([f", step {step!r}" if step else "", f", key {key!r}" if key else ""])
        super().__init__(f"plan {path}{where}: {reason}")


class UnknownStepKindError(PlanError):
    """A step's ``kind`` is none of the known kinds."""


class DuplicateStepIdError(PlanError):
    """Two steps of one plan share an ``id``."""


class UnknownProjectError(PlanError):
    """No container carries the plan's compose project label."""


class UnknownContainerError(PlanError):
    """A step names a container the project does not have."""


class UnknownServiceError(PlanError):
    """A step names a service the project does not have."""


class TargetNameTakenError(PlanError):
    """A name the plan would create is held by a container or network outside the plan."""


class DuplicateTargetError(PlanError):
    """Two steps would create the same container or network name."""


class MissingVolumeError(PlanError):
    """A volume a replaced service keeps does not exist on the engine."""


class UnhealthyServiceError(PlanError):
    """A service of the project is not healthy (or, without a healthcheck, not running)."""


class StalePlanError(PlanError):
    """The live state differs from the one the plan was made against: re-plan it.

    ``changes`` lists what changed, one line each."""

    def __init__(self, path: str, reason: str, changes: list[str] | None = None) -> None:
        self.changes = list(changes or [])
        super().__init__(path, reason)


class ParameterError(InputError):
    """An unknown variant, profile, port or option value."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"bad {name} {value!r}: {allowed}")


class OutputPathError(InputError):
    """An output directory or file that cannot be written (checked before any work)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write output to {path}: {reason}")


class CredentialsError(RevivadiagError):
    """A service rejected the credentials (the secret itself is never shown)."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(f"{service} rejected the credentials: {detail}")


class LabError(RevivadiagError):
    """The reference lab could not be built, started or stopped."""


class ImageBuildError(LabError):
    """An image of the lab failed to build."""

    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        self.reason = reason
        super().__init__(f"building {image} failed: {reason}")


class PortInUseError(LabError):
    """A host port the lab wants to publish is already taken."""

    def __init__(self, host: str, port: int, service: str) -> None:
        self.host = host
        self.port = port
        self.service = service
        super().__init__(
            f"host port {host}:{port} for service {service!r} is already in use; "
            f"pick another with --port {service}=PORT"
        )


class LabStartError(LabError):
    """`lab up` failed; what it had started was removed."""

    def __init__(self, prefix: str, reason: str, log_tail: str = "") -> None:
        self.prefix = prefix
        self.reason = reason
        self.log_tail = log_tail
        super().__init__(f"lab {prefix!r} did not start: {reason}")


class FaultStateError(LabError):
    """A fault scenario cannot run in the lab's present state (broken already, or nothing to
    heal); nothing was changed."""

    def __init__(self, prefix: str, reason: str) -> None:
        self.prefix = prefix
        self.reason = reason
        super().__init__(f"lab {prefix!r} {reason}")


class RunbookError(RevivadiagError):
    """A runbook step, or the notebook that runs it, failed."""

    def __init__(self, runbook: str, reason: str, cell: int | None = None) -> None:
        self.runbook = runbook
        self.reason = reason
        self.cell = cell
        where = f" (cell {cell})" if cell is not None else ""
        super().__init__(f"runbook {runbook}{where}: {reason}")


class StepError(RunbookError):
    """A migration step could not be applied, classified or undone: the engine refused an
    operation, a new container never became healthy, a value needed to recreate a container
    is held by no live container any more."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        RunbookError.__init__(self, "migrate", reason)
        self.args = (f"migrate: {what}: {reason}",)

    def __str__(self) -> str:
        return str(self.args[0])


class MigrationError(RevivadiagError):
    """A migration run could not start or go on."""


class JournalError(MigrationError):
    """A migration journal that cannot be read (corrupt before its last line) or written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"journal {path}: {reason}")


class MigrationLocked(MigrationError):
    """Another run of a migration holds the project's lock."""

    def __init__(self, project: str, holder: str) -> None:
        self.project = project
        self.holder = holder
        super().__init__(f"project {project!r} is locked by another migration run: {holder}")


class ApprovalRequired(MigrationError):
    """The run is not approved: it stopped before its first change."""

    def __init__(self, migration_id: str, how: str) -> None:
        self.migration_id = migration_id
        self.how = how
        super().__init__(f"migration {migration_id} is not approved; nothing was changed. {how}")


class MigrationNotFound(MigrationError):
    """No journal holds that migration id."""

    def __init__(self, migration_id: str, where: str, known: list[str] | None = None) -> None:
        self.migration_id = migration_id
        self.where = where
        self.known = sorted(known or [])
        hint = f" (known: {', '.join(self.known[-5:])})" if self.known else ""
        super().__init__(f"no migration {migration_id!r} under {where}{hint}")


class StepFailed(MigrationError):
    """A step failed; the steps completed before it were rolled back."""

    def __init__(self, migration_id: str, step_id: str, reason: str, rolled_back: list[str],
                 undo_errors: list[str] | None = None) -> None:
        self.migration_id = migration_id
        self.step_id = step_id
        self.reason = reason
        self.rolled_back = list(rolled_back)
        self.undo_errors = list(undo_errors or [])
        done = ", ".join(self.rolled_back) or "none"
        tail = f"; undo FAILED for: {'; '.join(self.undo_errors)}" if self.undo_errors else ""
        super().__init__(f"migration {migration_id}: step {step_id!r} failed: {reason}; "
                         f"rolled back: {done}{tail}")


class RollbackRefused(MigrationError):
    """Rollback refused: the live state no longer matches what the steps left."""

    def __init__(self, migration_id: str, drift: list[str]) -> None:
        self.migration_id = migration_id
        self.drift = list(drift)
        super().__init__(f"migration {migration_id}: rollback refused, the live state drifted "
                         f"(use --force to undo anyway): " + "; ".join(self.drift))


class ProberError(RevivadiagError):
    """The migration prober cannot run against the stack (nothing was sent)."""

    def __init__(self, project: str, reason: str) -> None:
        self.project = project
        self.reason = reason
        super().__init__(f"prober for project {project!r}: {reason}")


class NoProxyPort(ProberError):
    """The proxy publishes no host port on loopback: the prober has nowhere to send."""

    def __init__(self, project: str, proxy: str, detail: str) -> None:
        self.proxy = proxy
        self.detail = detail
        super().__init__(
            project,
            f"the prober needs a published proxy port on 127.0.0.1, and {proxy or 'no proxy'} "
            f"offers none ({detail}); publish one, or give the plan's prober.port",
        )


class FrameError(RevivadiagError):
    """A row handed to ``schemas.to_frame`` does not fit the frame's schema (a collector bug).

    Raised in strict mode (``REVIVADIAG_STRICT_FRAMES=1``, which the test suite sets) for a
    key the schema does not know or a value that cannot be cast to the column's dtype.
    """

    def __init__(self, frame: str, column: str, value: object, reason: str) -> None:
        self.frame = frame
        self.column = column
        self.value = value
        self.reason = reason
        super().__init__(f"frame {frame!r}, column {column!r}: {reason} (value {value!r})")
