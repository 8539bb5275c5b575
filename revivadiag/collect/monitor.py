"""A live health monitor: the seed's ``DockerServiceHealthMonitor``, run every few seconds.

Each cycle reads the project's containers (one list; an inspect of those whose list entry
changed, and of all every :data:`REINSPECT_CYCLES` cycles), runs the checks of
:mod:`revivadiag.collect.health` (which services, ports and paths come from the stack's roles,
learned once from the stack: :mod:`revivadiag.collect.stack`) and folds the rows into one state
per service:

``status``               the worst status among the checks that ran (unhealthy > degraded >
                         healthy; ``unknown`` rows say nothing and are left out; a service with
                         no other evidence is ``unknown``), after the seed's rules
                         (:func:`revivadiag.collect.health_rules.rate`)
``response_ms``          the time of the service's main check: ``http`` for the backend, the
                         check from inside the network for a database or cache, else the one
                         from the host (None for a service only Docker's view covers)
``error_rate_pct``       unhealthy cycles among the last ``window`` cycles that checked it
``consecutive_failures`` unhealthy cycles in a row
``circuit``              ``closed``; ``open`` once a service with probes of its own failed
                         ``breaker_threshold`` cycles in a row (counted with the probe engine's
                         :class:`~revivadiag.engine.netprobe.Breaker`): its probes are then
                         skipped (the ``docker`` row, the engine's view, is still read) until a
                         cooldown of 2, 4, 8 ... intervals (at most ``max_cooldown_s``) has passed,
                         or Docker shows its container started again or its healthcheck
                         turned healthy; that cycle is a
                         ``half_open`` trial: a success closes the circuit, a failure opens it
                         for the next, longer cooldown. A skipped cycle keeps the last status and
                         is not counted in the error rate.

Callbacks registered with ``on_change`` get a :class:`StatusChange` whenever a service's
status differs from the previous cycle's (``old`` is ``""`` the first time a service is seen).
They run on the monitor's thread; one that raises is logged and kept.

>>> mon = HealthMonitor("shop", interval_s=10)                  # doctest: +SKIP
>>> mon.on_change(lambda c: print(c.service, c.old, "->", c.new))  # doctest: +SKIP
>>> mon.start()          # a background thread: the notebook's kernel stays free  # doctest: +SKIP
>>> mon.status()         # one row per service (frame ``monitor_status``)   # doctest: +SKIP
>>> mon.history          # time series, at most ``history_rows`` rows       # doctest: +SKIP
>>> mon.stop()                                                   # doctest: +SKIP

Memory is bounded however long it runs: the history is a ring buffer of ``history_rows`` rows,
the error-rate window a ring of ``window`` cycles per service, the errors a ring of
:data:`MAX_ERRORS`. Traffic goes only where :mod:`revivadiag.collect.health` sends it (the
project's containers, and 127.0.0.1 for published ports when the engine is local).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import docker.errors
import pandas as pd

from revivadiag.collect.containers import compose_identity, parse_containers
from revivadiag.collect.health import SKIPPED, HealthConfig, Prober, health_rows
from revivadiag.collect.inventory import RawInventory, inspect_containers, list_project
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.engine.base import METHODS as PROBE_METHODS
from revivadiag.engine.client import engine_address
from revivadiag.engine.netprobe import Breaker
from revivadiag.engine.netprobe.context import DEFAULT_BREAKER_THRESHOLD as PROBE_THRESHOLD
from revivadiag.errors import ParameterError, RevivadiagError
from revivadiag.redact import Scrubber, project_scrubber, redact_url, secret_values
from revivadiag.schemas import to_frame

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
Callback = Callable[["StatusChange"], None]
#: worst first: the status a service gets from several checks
SEVERITY = {"unhealthy": 3, "degraded": 2, "healthy": 1, "unknown": 0}
#: the check whose time is a service's response time, in order of preference
MAIN_CHECKS = ("http", "postgres_internal", "redis_internal", "postgres_external",
               "redis_external")
CIRCUITS = ("closed", "open", "half_open")
#: rows the history keeps (a ring: the oldest go first)
DEFAULT_HISTORY_ROWS = 10_000
#: checked cycles the error rate is computed over
DEFAULT_WINDOW = 20
#: unhealthy cycles in a row that open a service's circuit (the probe engine's default)
DEFAULT_BREAKER_THRESHOLD = PROBE_THRESHOLD
#: errors kept in :attr:`HealthMonitor.errors`
MAX_ERRORS = 100
#: every container is inspected again at least this often (cycles), changed or not
REINSPECT_CYCLES = 10


@dataclass(frozen=True)
class StatusChange:
    """A service's status changed (``old`` is ``""`` the first time it is seen)."""

    at: datetime
    cycle: int
    service: str
    role: str
    old: str
    new: str
    response_ms: float | None
    error_rate_pct: float
    consecutive_failures: int
    circuit: str
    error_type: str
    detail: str
    #: the engine the service runs on (its name in frames)
    engine: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``at`` as ISO 8601 text."""
        return {**asdict(self), "at": self.at.isoformat(timespec="milliseconds")}


@dataclass(frozen=True)
class ServiceResult:
    """What one cycle's rows say about one service (see :func:`service_results`)."""

    status: str
    response_ms: float | None
    error_type: str
    detail: str
    #: some check of its own (not only Docker's view) ran
    active: bool
    #: its probes were skipped (open circuit)
    skipped: bool


def service_results(rows: Iterable[Row]) -> dict[str, ServiceResult]:
    """Fold ``health`` rows into one result per service (the module doc's rules).

    >>> rows = [{"service": "api", "check": "http", "status": "unhealthy", "response_ms": 3.0,
    ...          "error_type": "TIMEOUT", "detail": "timed out"},
    ...         {"service": "api", "check": "docker", "status": "healthy", "response_ms": None,
    ...          "error_type": "", "detail": "healthcheck healthy"},
    ...         {"service": "worker", "check": "docker", "status": "unknown",
    ...          "response_ms": None, "error_type": "", "detail": "no healthcheck"}]
    >>> r = service_results(rows)
    >>> r["api"].status, r["api"].response_ms, r["api"].detail, r["worker"].status
    ('unhealthy', 3.0, 'http: timed out', 'unknown')
    """
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(str(row["service"]), []).append(row)
    return {service: _fold(found) for service, found in grouped.items()}


def _fold(rows: Sequence[Row]) -> ServiceResult:
    worst = max(rows, key=lambda r: SEVERITY.get(str(r["status"]), 0))
    status = str(worst["status"]) if SEVERITY.get(str(worst["status"]), 0) else "unknown"
    by_check = {str(r["check"]): r for r in rows}
    response = next((_ms(by_check[c].get("response_ms")) for c in MAIN_CHECKS
                     if c in by_check and _ms(by_check[c].get("response_ms")) is not None), None)
    skipped = any(r["detail"] == SKIPPED for r in rows)
    active = any(r["check"] != "docker" and (r["status"] != "unknown" or r["detail"] == SKIPPED)
                 for r in rows)
    detail = f"{worst['check']}: {worst['detail']}" if worst["detail"] else str(worst["check"])
    return ServiceResult(status, response, str(worst.get("error_type") or ""), detail, active,
                         skipped)


def _ms(value: Any) -> float | None:
    if value is None:
        return None
    ms = float(value)
    return None if math.isnan(ms) else ms


@dataclass
class ServiceState:
    """The monitor's view of one service (see the module doc for each field)."""

    service: str
    role: str
    window: int
    status: str = ""
    since: datetime | None = None
    last_check: datetime | None = None
    response_ms: float | None = None
    consecutive_failures: int = 0
    circuit: str = "closed"
    error_type: str = ""
    detail: str = ""
    #: whether the service has probes of its own (a circuit only opens for those)
    active: bool = False
    #: unhealthy (True) or not, for each of the last ``window`` cycles that checked it
    outcomes: deque[bool] = field(default_factory=deque)
    #: clock time at which an open circuit allows a trial
    retry_at: float = 0.0
    #: failed trials since the circuit opened (the cooldown doubles with each)
    trials: int = 0
    #: the container's StartedAt and Docker health when the circuit opened (a new start, or
    #: its healthcheck turning healthy, allows a trial before the cooldown ends)
    started_at: str = ""

    def __post_init__(self) -> None:
        self.outcomes = deque(maxlen=self.window)

    @property
    def error_rate_pct(self) -> float:
        """Unhealthy share of the checked cycles in the window, in percent."""
        return round(100.0 * sum(self.outcomes) / len(self.outcomes), 1) if self.outcomes else 0.0

    def row(self) -> dict[str, Any]:
        """This state as a ``monitor_status`` row."""
        return {"service": self.service, "role": self.role, "status": self.status or "unknown",
                "since": self.since, "last_check": self.last_check,
                "response_ms": self.response_ms, "error_rate_pct": self.error_rate_pct,
                "window_checks": len(self.outcomes),
                "consecutive_failures": self.consecutive_failures, "circuit": self.circuit,
                "error_type": self.error_type, "detail": self.detail}


def _positive(name: str, value: Any, integer: bool = False) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and value > 0 and (not integer or int(value) == value))
    if not ok:
        raise ParameterError(name, value, "a positive integer" if integer else
                             "a positive number of seconds")


class HealthMonitor:
    """Checks a compose project's services every ``interval_s`` (see the module doc).

    ``project``: the compose project (default: the only one running, else the seed's).
    ``timeout_s``: each check's timeout; an answer slower than ``degraded_ms`` is degraded.
    ``window``: cycles the error rate is computed over. ``on_change``: a callback or several.
    ``client``: a docker-py client to use (default: one connected to ``docker_host`` or
    DOCKER_HOST, closed by :meth:`close`). ``prober``: what runs the in-network checks
    (default: a :class:`~revivadiag.engine.probe.ProbeEngine` with ``method``).
    ``clock``: seconds since the epoch (tests drive the circuit's cooldown with their own).
    ``engine``: the name its rows carry (default: ``docker_host`` or DOCKER_HOST, redacted);
    ``close_client``: close ``client`` in :meth:`close` (default: only one it opened).
    Bad values raise :class:`~revivadiag.errors.ParameterError`.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
        degraded_ms: float = HealthConfig.degraded_ms,
        window: int = DEFAULT_WINDOW,
        history_rows: int = DEFAULT_HISTORY_ROWS,
        breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
        max_cooldown_s: float | None = None,
        on_change: Callback | Sequence[Callback] | None = None,
        client: Any = None,
        docker_host: str | None = None,
        method: str = "auto",
        prober: Prober | None = None,
        clock: Callable[[], float] = time.time,
        engine: str = "",
        close_client: bool | None = None,
    ) -> None:
        _positive("interval_s", interval_s)
        _positive("timeout_s", timeout_s)
        _positive("degraded_ms", degraded_ms)
        for name, value in (("window", window), ("history_rows", history_rows),
                            ("breaker_threshold", breaker_threshold)):
            _positive(name, value, integer=True)
        if max_cooldown_s is not None:
            _positive("max_cooldown_s", max_cooldown_s)
        if method not in ("auto", *PROBE_METHODS):
            raise ParameterError("method", method, f"one of auto, {', '.join(PROBE_METHODS)}")
        self.requested_project = project
        self.project = project or ""
        #: the ``engine`` of every row: given, else ``docker_host`` (or DOCKER_HOST) redacted
        self.engine = engine or ("" if client is not None
                                 else redact_url(engine_address(docker_host)))
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.config = HealthConfig(timeout_s=self.timeout_s, degraded_ms=float(degraded_ms))
        self.window = int(window)
        self.max_cooldown_s = float(max_cooldown_s or 8 * self.interval_s)
        self.method = method
        self.cycle = 0
        #: when the last cycle was folded in (None before the first)
        self.last_at: datetime | None = None
        #: the ``health`` rows of the last cycle run_once ran (free text scrubbed)
        self.last_rows: list[dict[str, Any]] = []
        self.errors: deque[tuple[datetime, str]] = deque(maxlen=MAX_ERRORS)
        self._history: deque[tuple[Any, ...]] = deque(maxlen=int(history_rows))
        self._states: dict[str, ServiceState] = {}
        self._breaker = Breaker(threshold=int(breaker_threshold))
        self._callbacks: list[Callback] = []
        if callable(on_change):
            self._callbacks.append(on_change)
        elif on_change is not None:
            self._callbacks.extend(on_change)
        self._client = client
        self._owns_client = client is None if close_client is None else close_client
        self._docker_host = docker_host
        self._prober = prober
        self._owns_prober = prober is None
        self._local: bool | None = None  # whether the engine is on this host (learned)
        self._clock = clock
        self._roles: Roles | None = None
        self._services: frozenset[str] = frozenset()
        self._container_ids: frozenset[str] = frozenset()
        #: container id -> (its list entry's state and status line, its inspect)
        self._inspected: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {}
        self._scrubber = Scrubber()
        self._lock = threading.Lock()        # the state, read by status() from other threads
        self._cycle_lock = threading.Lock()  # one cycle at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public surface

    def on_change(self, callback: Callback) -> Callback:
        """Call ``callback(change)`` on every status change (usable as a decorator)."""
        self._callbacks.append(callback)
        return callback

    def start(self) -> HealthMonitor:
        """Run cycles every ``interval_s`` on a daemon thread until :meth:`stop`.

        The project is looked up first, here (ProjectNotFound / EngineUnreachable raise now);
        errors of later cycles go to :attr:`errors` and the next cycle runs as planned.
        """
        if self.running:
            return self
        self._resolve_project()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"revivadiag-monitor-{self.project}")
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread after its current cycle (waits at most ``timeout_s``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s if timeout_s is not None else 4 * self.timeout_s + 10)

    @property
    def running(self) -> bool:
        """Whether the background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop, and release the probe engine and client this monitor created."""
        self.stop()
        if self._owns_prober and self._prober is not None:
            getattr(self._prober, "close", lambda: None)()
            self._prober = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HealthMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when the monitor is stopped (True then)."""
        return self._stop.wait(seconds)

    def run_once(self) -> list[StatusChange]:
        """One cycle now: read the containers, run the checks, fold them in; the changes."""
        with self._cycle_lock:
            inv = self._read()
            now = self._clock()
            skip = self._skip(inv, now)
            rows = health_rows(inv, _KnownPids(self._prober_for(), inv), roles=self._roles,
                               config=self.config, local_engine=bool(self._local),
                               scrubber=self._scrubber, skip=skip)
            self.last_rows = rows
            return self.ingest(rows, at=now, inventory=inv)

    def ingest(self, rows: Iterable[Row], at: float | None = None,
               inventory: RawInventory | None = None) -> list[StatusChange]:
        """Fold one cycle's ``health`` rows (dicts, or a frame's records) into the state,
        append them to the history and call the callbacks; the changes of this cycle.

        :meth:`run_once` calls it with what it collected; recorded rows can be replayed
        through it directly (``at``: seconds since the epoch, default now).
        """
        now = self._clock() if at is None else float(at)
        stamp = datetime.fromtimestamp(now, UTC)
        self.last_at = stamp
        results = service_results(rows)
        started = _started_at(inventory) if inventory is not None else {}
        changes: list[StatusChange] = []
        with self._lock:
            self.cycle += 1
            for service in sorted(results):
                change = self._fold_service(service, results[service], now, stamp,
                                            started.get(service, ""))
                if change is not None:
                    changes.append(change)
        for change in changes:
            self._notify(change)
        return changes

    def checks(self) -> pd.DataFrame:
        """What each check said in the last cycle :meth:`run_once` ran (frame ``health``)."""
        return to_frame("health", self.last_rows)

    def status(self) -> pd.DataFrame:
        """One row per service (frame ``monitor_status``)."""
        with self._lock:
            rows = [{**s.row(), "engine": self.engine} for _, s in sorted(self._states.items())]
        return to_frame("monitor_status", rows)

    @property
    def history(self) -> pd.DataFrame:
        """Every service's status per cycle, oldest first (frame ``monitor_history``)."""
        with self._lock:
            kept = list(self._history)
        return to_frame("monitor_history", ({**dict(zip(HISTORY_COLUMNS, t, strict=True)),
                                             "engine": self.engine} for t in kept))

    @property
    def history_size(self) -> int:
        """Rows held in the history now (at most ``history_rows``)."""
        return len(self._history)

    @property
    def roles(self) -> Roles | None:
        """The roles learned from the stack (None before the first cycle)."""
        return self._roles

    # ------------------------------------------------------------------ one service

    def _fold_service(self, service: str, res: ServiceResult, now: float, stamp: datetime,
                      started_at: str) -> StatusChange | None:
        state = self._states.get(service)
        if state is None:
            role = self._roles.role(service) if self._roles is not None else None
            state = self._states[service] = ServiceState(service, role or "", self.window)
        state.active = state.active or res.active
        status, checked = res.status, True
        if res.skipped and res.status != "unhealthy":  # nothing new was learned
            status, checked = state.status or "unhealthy", False
        elif status == "unknown":
            checked = False
        if checked:
            failed = status == "unhealthy"
            state.outcomes.append(failed)
            self._breaker.record(service, ok=not failed)
            state.consecutive_failures = self._breaker.failures.get(service, 0)
            state.response_ms = res.response_ms
            self._circuit_after(state, failed, now, started_at)
        if res.skipped and not checked:
            state.detail = f"circuit open until {_clock_text(state.retry_at)}: not probed"
        else:
            state.error_type, state.detail = res.error_type, res.detail
        state.last_check = stamp
        old = state.status
        change = None
        if status != old:
            state.status, state.since = status, stamp
            change = StatusChange(stamp, self.cycle, service, state.role, old, status,
                                  state.response_ms, state.error_rate_pct,
                                  state.consecutive_failures, state.circuit, state.error_type,
                                  state.detail, self.engine)
        self._history.append((stamp, self.cycle, service, state.role, state.status,
                              state.response_ms if checked else None, state.error_rate_pct,
                              state.consecutive_failures, state.circuit, checked))
        return change

    def _circuit_after(self, state: ServiceState, failed: bool, now: float,
                       started_at: str) -> None:
        if not failed:
            state.circuit, state.trials = "closed", 0
            return
        if state.circuit == "open":  # Docker's view failed again: the cooldown stands
            return
        if state.circuit == "half_open":
            state.trials += 1
        elif not (state.active and self._breaker.is_open(state.service)):
            return
        elif state.circuit == "closed":
            state.trials = 0
        state.circuit = "open"
        state.started_at = started_at
        state.retry_at = now + min(self.max_cooldown_s, self.interval_s * 2 ** (state.trials + 1))

    def _skip(self, inv: RawInventory, now: float) -> set[str]:
        """Services whose circuit stays open this cycle; the others due a trial go half-open."""
        started = _started_at(inv)
        skip: set[str] = set()
        with self._lock:
            for service, state in self._states.items():
                if state.circuit != "open":
                    continue
                seen = started.get(service, "")
                changed = bool(seen) and seen != state.started_at and (
                    seen.split(" ")[0] != state.started_at.split(" ")[0]
                    or seen.endswith(" healthy"))
                if now >= state.retry_at or changed:
                    state.circuit = "half_open"
                else:
                    skip.add(service)
        return skip

    def _notify(self, change: StatusChange) -> None:
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception as exc:  # a user's callback must not stop the monitor
                log.warning("monitor callback %r failed: %s: %s", callback,
                            type(exc).__name__, exc)
                self._note(f"callback {getattr(callback, '__name__', callback)!s} failed: "
                           f"{type(exc).__name__}: {exc}")

    def _note(self, message: str) -> None:
        self.errors.append((datetime.now(UTC), self._scrubber.scrub(message)[:300]))

    # ------------------------------------------------------------------ the engine side

    def _docker(self) -> Any:
        from revivadiag.engine.probe import is_local_client

        if self._client is None:
            from revivadiag.engine.client import connect

            self._client = connect(self._docker_host)
        if self._local is None:
            self._local = is_local_client(self._client)
        return self._client

    def _resolve_project(self) -> None:
        if not self.project:
            self.project = list_project(self._docker(), self.requested_project)[0]

    def _read(self) -> RawInventory:
        """The project's containers: one list, and an inspect of each container whose list
        entry (state, status line) changed since it was last inspected, or of every one each
        :data:`REINSPECT_CYCLES` cycles (no network inspects). The roles are learned again
        when the set of services changes."""
        client = self._docker()
        chosen, summaries, calls = list_project(client, self.project or self.requested_project)
        self.project = chosen
        every = self.cycle % REINSPECT_CYCLES == 0
        stale = [s for s in summaries if every or _entry(s) != self._inspected.get(
            str(s["Id"]), ("",))[0]]
        inv = RawInventory(project=chosen, api_calls=calls)
        inspect_containers(client, stale, inv)
        fresh = {str(c.get("Id")): c for c in inv.containers}
        gone = {str(s.get("Id")) for s in inv.vanished}
        listed = {str(s["Id"]): s for s in summaries if str(s["Id"]) not in gone}
        self._inspected = {cid: (_entry(listed[cid]), fresh[cid]) if cid in fresh else
                           self._inspected[cid] for cid in listed
                           if cid in fresh or cid in self._inspected}
        inv.containers = sorted((ins for _, ins in self._inspected.values()),
                                key=lambda c: str(c.get("Name", "")))
        services = frozenset(compose_identity(c, chosen)[1] for c in inv.containers)
        if self._roles is None or services != self._services:
            self._learn(client, inv)
            self._services = services
        ids = frozenset(str(c.get("Id")) for c in inv.containers)
        if ids != self._container_ids:  # new containers may carry new secrets
            self._scrubber.add(*secret_values(inv.containers))
            self._container_ids = ids
        return inv

    def _learn(self, client: Any, inv: RawInventory) -> None:
        from revivadiag.collect.stack import collect_roles

        frames = {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
                  "endpoints": parse_endpoints(inv.containers, inv.project)}
        try:
            frame, _facts = collect_roles(client, inv, frames, local=bool(self._local))
        except (docker.errors.DockerException, OSError) as exc:  # as the snapshot does
            self._note(f"roles decided from the API alone: {type(exc).__name__}")
            frame = infer_roles(frames["containers"], endpoints=frames["endpoints"])
        self._roles = Roles(frame)
        self._scrubber = project_scrubber(inv.containers)
        with self._lock:
            for state in self._states.values():
                state.role = self._roles.role(state.service) or ""

    def _prober_for(self) -> Prober:
        if self._prober is None:
            from revivadiag.engine.probe import ProbeEngine

            self._prober = ProbeEngine(self._docker(), method=self.method,
                                       timeout_s=self.timeout_s)
        return self._prober

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.run_once()
            except RevivadiagError as exc:  # e.g. the engine went away: say so, try again
                self._note(f"cycle failed: {type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))


class _KnownPids:
    """A prober told the pids this cycle's inspects already gave: the probe engine then
    enters those namespaces without inspecting the containers again."""

    def __init__(self, prober: Prober, inv: RawInventory) -> None:
        self.prober = prober
        self.known = {str(c.get("Id")): (str(c.get("Name", "")).lstrip("/"),
                                         int((c.get("State") or {}).get("Pid") or 0))
                      for c in inv.containers}

    def run(self, batches: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """The batches' results; a setns engine is not asked about a container that stopped
        since the inspect (its namespace is gone: the engine would fall back to a sidecar,
        which takes seconds): its jobs are CONTAINER_NOT_FOUND at once."""
        from revivadiag.engine.base import Target
        from revivadiag.engine.probe import ProbeEngine

        if not isinstance(self.prober, ProbeEngine):
            return self.prober.run(batches)
        gone = {}
        if self.prober.method == "setns" and self.prober.settings.local:
            for key, jobs in batches.items():
                name, pid = self.known.get(key, ("", 0))
                if pid and not os.path.exists(f"/proc/{pid}/ns/net"):
                    gone[key] = Target(key, key, name, pid, list(jobs)).gone(
                        "setns", "it stopped during the cycle")
        rest = {key: jobs for key, jobs in batches.items() if key not in gone}
        return {**gone, **(self.prober.run(rest, known=self.known) if rest else {})}


HISTORY_COLUMNS = ("at", "cycle", "service", "role", "status", "response_ms", "error_rate_pct",
                   "consecutive_failures", "circuit", "checked")


def _entry(summary: Mapping[str, Any]) -> tuple[str, ...]:
    """What of a container list entry says its inspect may have changed: state, status line
    (``Up 5 minutes (healthy)``: a restart or a health change rewrites it), image.

    >>> _entry({"State": "running", "Status": "Up 2 minutes (healthy)", "ImageID": "sha"})
    ('running', 'Up 2 minutes (healthy)', 'sha')
    """
    return (str(summary.get("State", "")), str(summary.get("Status", "")),
            str(summary.get("ImageID", "")))


def _started_at(inv: RawInventory) -> dict[str, str]:
    """service -> its running container's StartedAt and Docker health status (what a new
    start, or a healthcheck turning healthy, changes); no entry when none runs."""
    out: dict[str, str] = {}
    for inspect in inv.containers:
        state = inspect.get("State") or {}
        if state.get("Running"):
            health = str((state.get("Health") or {}).get("Status") or "")
            out[compose_identity(inspect, inv.project)[1]] = (
                f"{state.get('StartedAt') or ''} {health}")
    return out


def _clock_text(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
