"""Container resource figures and the engine's events, as frames.

:func:`collect_stats` (frame ``container_stats``): one row per container of the project, from
one ``GET /containers/<id>/stats?stream=false`` each. The engine takes about a second to
answer one (it samples the CPU twice), so the calls run concurrently, at most
:data:`STATS_THREADS` at once (docker-py's connection pool holds 10): a stack of 6 takes about
as long as one container. A stopped container gets a row with its state and no figures. The
figures are computed as ``docker stats`` computes them (:func:`parse_stats`).

:func:`collect_events` (frame ``container_events``): ``GET /events`` between ``since`` and
``until`` (``until`` in the past or now, so the stream ends; at most ``max_events`` rows):
the project's container events (filtered by its compose label) and the network connect and
disconnect events that name one of its containers. Only the actions in :data:`ACTIONS` are
kept: ``exec_*`` events are left out (probes and healthchecks make them by the hundred, and
their text is a command line, which may hold a secret). The engine keeps a limited backlog
of past events (256 here, shared by every project on the engine): older ones are gone.

>>> parse_events([{"Type": "container", "Action": "health_status: unhealthy", "time": 1,
...   "timeNano": 1_700_000_000_000_000_000, "Actor": {"ID": "ab", "Attributes": {
...   "name": "p_api_1", "com.docker.compose.service": "api"}}}])[0]["health_status"]
'unhealthy'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import pandas as pd
import requests.exceptions

from revivadiag.collect.containers import compose_identity, container_name, parse_started_at
from revivadiag.collect.inventory import PROJECT_LABEL, SERVICE_LABEL, list_project
from revivadiag.errors import EngineError, EngineUnreachable, ParameterError
from revivadiag.schemas import to_frame

Row = dict[str, Any]
#: stats calls in flight
STATS_THREADS = 8
#: actions kept (``health_status: healthy`` counts as ``health_status``)
ACTIONS = ("create", "start", "restart", "stop", "die", "kill", "oom", "pause", "unpause",
           "destroy", "health_status", "connect", "disconnect")
NETWORK_ACTIONS = ("connect", "disconnect")
MAX_EVENTS = 10_000
#: the widest window asked of the engine at once
MAX_WINDOW_S = 7 * 24 * 3600


# ---------------------------------------------------------------- stats


def parse_stats(raw: Mapping[str, Any]) -> Row:
    """The figures of one ``stats?stream=false`` answer (cgroup v1 or v2), as ``docker stats``
    computes them: CPU from the delta against the engine's previous sample, memory without
    the page cache of inactive files.

    >>> raw = {"read": "2026-01-01T00:00:01Z", "pids_stats": {"current": 3},
    ...   "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000,
    ...                 "online_cpus": 2},
    ...   "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
    ...   "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"inactive_file": 200}},
    ...   "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 7}, "eth1": {"rx_bytes": 1,
    ...                "tx_bytes": 1}},
    ...   "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 9},
    ...                   {"op": "Write", "value": 4}, {"op": "Read", "value": 1}]}}
    >>> r = parse_stats(raw)
    >>> r["cpu_pct"], r["mem_usage_bytes"], r["mem_pct"], r["net_rx_bytes"], r["block_read_bytes"]
    (40.0, 800, 20.0, 6, 10)
    """
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    online = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {})
                                               .get("percpu_usage") or []) or 0)
    cpu_delta = _int((cpu.get("cpu_usage") or {}).get("total_usage")) - _int(
        (pre.get("cpu_usage") or {}).get("total_usage"))
    system_delta = _int(cpu.get("system_cpu_usage")) - _int(pre.get("system_cpu_usage"))
    cpu_pct = (round(100.0 * cpu_delta / system_delta * max(online, 1), 3)
               if system_delta > 0 and cpu_delta >= 0 else None)
    mem = raw.get("memory_stats") or {}
    usage = mem.get("usage")
    inactive = (mem.get("stats") or {}).get("total_inactive_file",
                                            (mem.get("stats") or {}).get("inactive_file", 0))
    mem_used = None if usage is None else (
        _int(usage) - _int(inactive) if _int(inactive) < _int(usage) else _int(usage))
    limit = mem.get("limit")
    nets = (raw.get("networks") or {}).values()
    blk = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "read_at": _timestamp(raw.get("read")),
        "cpu_pct": cpu_pct,
        "online_cpus": online or None,
        "mem_usage_bytes": mem_used,
        "mem_limit_bytes": None if limit is None else _int(limit),
        "mem_pct": (round(100.0 * mem_used / _int(limit), 3)
                    if mem_used is not None and limit else None),
        "net_rx_bytes": sum(_int(n.get("rx_bytes")) for n in nets) if nets else None,
        "net_tx_bytes": sum(_int(n.get("tx_bytes")) for n in nets) if nets else None,
        "block_read_bytes": sum(_int(e.get("value")) for e in blk
                                if str(e.get("op", "")).lower() == "read"),
        "block_write_bytes": sum(_int(e.get("value")) for e in blk
                                 if str(e.get("op", "")).lower() == "write"),
        "pids": (raw.get("pids_stats") or {}).get("current"),
    }


def stats_row(inspect: Mapping[str, Any], project: str, raw: Mapping[str, Any] | None,
              error: str = "") -> Row:
    """One ``container_stats`` row: the container's identity and state, and its figures."""
    state = inspect.get("State") or {}
    row: Row = {"container": container_name(inspect),
                "service": compose_identity(inspect, project)[1],
                "state": str(state.get("Status") or ""),
                "restart_count": inspect.get("RestartCount"), "error": error}
    if raw is not None:
        row.update(parse_stats(raw))
    return row


def collect_stats(client: docker.DockerClient | None = None, project: str | None = None, *,
                  threads: int = STATS_THREADS) -> pd.DataFrame:
    """The ``container_stats`` frame of ``project`` (see the module doc); ``client`` None:
    one connected to DOCKER_HOST for this call."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ParameterError("threads", threads, "a positive integer")
    if client is None:
        with _connected() as own:
            return collect_stats(own, project, threads=threads)
    chosen, summaries, _ = list_project(client, project)

    def one(summary: Mapping[str, Any]) -> Row:
        cid = str(summary["Id"])
        try:
            inspect = client.api.inspect_container(cid)
            if not (inspect.get("State") or {}).get("Running"):
                return stats_row(inspect, chosen, None, "not running")
            return stats_row(inspect, chosen, client.api.stats(cid, stream=False))
        except docker.errors.NotFound:
            return stats_row(summary, chosen, None, "vanished")
        except (requests.exceptions.ConnectionError, OSError) as exc:
            raise EngineUnreachable(_address(client), str(exc)[:300]) from exc

    with ThreadPoolExecutor(max_workers=min(threads, max(1, len(summaries)))) as pool:
        rows = list(pool.map(one, summaries))
    return to_frame("container_stats", sorted(rows, key=lambda r: str(r["container"])))


# ---------------------------------------------------------------- events


def parse_events(raw: Iterable[Mapping[str, Any]], containers: Mapping[str, str] | None = None,
                 actions: Sequence[str] = ACTIONS) -> list[Row]:
    """``container_events`` rows from engine event dicts, in the order given.

    ``containers``: id -> name of the containers a network event may name (the project's);
    a network event naming none of them is left out. Actions not in ``actions`` are left out.
    """
    rows: list[Row] = []
    for ev in raw:
        kind = str(ev.get("Type") or "")
        action_text = str(ev.get("Action") or ev.get("status") or "")
        action, _, rest = action_text.partition(":")
        if action not in actions:
            continue
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        when = _event_time(ev)
        if kind == "network":
            cid = str(attrs.get("container") or "")
            if containers is None or cid not in containers:
                continue
            rows.append({"at": when, "type": kind, "action": action, "container_id": cid,
                         "container": containers[cid], "service": "",
                         "network": str(attrs.get("name") or "")})
            continue
        if kind != "container":
            continue
        code = attrs.get("exitCode")
        rows.append({"at": when, "type": kind, "action": action,
                     "container_id": str((ev.get("Actor") or {}).get("ID") or ev.get("id") or ""),
                     "container": str(attrs.get("name") or ""),
                     "service": str(attrs.get(SERVICE_LABEL) or ""),
                     "health_status": rest.strip() if action == "health_status" else "",
                     "exit_code": int(code) if code is not None and str(code).isdigit() else None,
                     "signal": str(attrs.get("signal") or "")})
    return rows


def select_events(raw: Iterable[Mapping[str, Any]], project: str,
                  known: dict[str, str]) -> list[Mapping[str, Any]]:
    """The events about ``project``: its container events (by their compose label), and the
    network events naming one of its containers. ``known`` (id -> name, updated) holds the
    project's containers; a container event adds its container.

    >>> known = {}
    >>> evs = [{"Type": "container", "Actor": {"ID": "a1", "Attributes": {"name": "p_db_1",
    ...         "com.docker.compose.project": "p"}}},
    ...        {"Type": "network", "Actor": {"ID": "n", "Attributes": {"container": "a1"}}},
    ...        {"Type": "network", "Actor": {"ID": "n", "Attributes": {"container": "zz"}}}]
    >>> len(select_events(evs, "p", known)), known
    (2, {'a1': 'p_db_1'})
    """
    out: list[Mapping[str, Any]] = []
    for ev in raw:
        actor = ev.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        if ev.get("Type") == "container" and attrs.get(PROJECT_LABEL) == project:
            known.setdefault(str(actor.get("ID") or ""), str(attrs.get("name") or ""))
            out.append(ev)
        elif ev.get("Type") == "network" and str(attrs.get("container") or "") in known:
            out.append(ev)
    return out


def event_rows(events: Iterable[Mapping[str, Any]], project: str, known: Mapping[str, str],
               services: Mapping[str, str], actions: Sequence[str] = ACTIONS) -> list[Row]:
    """``container_events`` rows of selected events, services filled in, oldest first."""
    rows = parse_events(events, known, actions)
    found = dict(services)
    found.update({str(r["container_id"]): str(r["service"]) for r in rows if r["service"]})
    for row in rows:
        row["service"] = row["service"] or found.get(str(row["container_id"]), "")
    rows.sort(key=lambda r: r["at"])
    return rows


def _window(since: datetime | float | None, until: datetime | float | None,
            default_s: float = 300.0) -> tuple[float, float]:
    now = time.time()
    end = now if until is None else _epoch("until", until)
    start = end - default_s if since is None else _epoch("since", since)
    if end > now + 1.0:
        raise ParameterError("until", until, "a time not in the future (the stream would wait)")
    if not start < end:
        raise ParameterError("since", since, f"a time before until ({_iso(end)})")
    if end - start > MAX_WINDOW_S:
        raise ParameterError("since", since, "a window of at most 7 days")
    return start, end


def _check(max_events: int, actions: Sequence[str]) -> None:
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise ParameterError("max_events", max_events, "a positive integer")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions:
        raise ParameterError("actions", list(actions), f"actions among {', '.join(ACTIONS)}")


def _filters(actions: Sequence[str]) -> dict[str, list[str]]:
    """Asked of the engine: container and network events of these actions only (the engine
    matches ``health_status`` against ``health_status: healthy``)."""
    types = ["container"] + (["network"] if set(actions) & set(NETWORK_ACTIONS) else [])
    return {"type": types, "event": list(actions)}


def _services(summaries: Iterable[Mapping[str, Any]], project: str) -> dict[str, str]:
    return {str(s["Id"]): compose_identity(s, project)[1] for s in summaries}


def collect_events(client: docker.DockerClient | None = None, project: str | None = None, *,
                   since: datetime | float | None = None, until: datetime | float | None = None,
                   max_events: int = MAX_EVENTS,
                   actions: Sequence[str] = ACTIONS) -> pd.DataFrame:
    """The ``container_events`` frame of ``project`` from the engine's backlog (``client``
    None: one connected to DOCKER_HOST for this call), between
    ``since`` (default: ``until`` minus 5 minutes) and ``until`` (default: now); datetimes,
    or seconds since the epoch. The backlog is short on a busy engine: to be sure to see
    what happens from now on, use an :class:`EventWatcher`.

    Raises ParameterError for a window that is empty, in the future or wider than a week.
    """
    start, end = _window(since, until)
    _check(max_events, actions)
    if client is None:
        with _connected() as own:
            return collect_events(own, project, since=start, until=end,
                                  max_events=max_events, actions=actions)
    chosen, summaries, _ = list_project(client, project)
    known = {str(s["Id"]): container_name(s) for s in summaries}
    raw = _events(client, _filters(actions), {"since": _api_time(start),
                                              "until": _api_time(end), "decode": True},
                  max_events)
    selected = select_events(raw, chosen, known)
    return to_frame("container_events",
                    event_rows(selected, chosen, known, _services(summaries, chosen),
                               actions)[:max_events])


class EventWatcher:
    """Follows the engine's event stream from :meth:`start` on, on a daemon thread, keeping
    the project's events (at most ``max_events``: the oldest go first).

    >>> with EventWatcher("shop") as watch:       # doctest: +SKIP
    ...     ...                                   # stop a container, start it again
    ...     watch.frame()                         # frame ``container_events``
    """

    def __init__(self, project: str | None = None, *, client: docker.DockerClient | None = None,
                 docker_host: str | None = None, actions: Sequence[str] = ACTIONS,
                 max_events: int = MAX_EVENTS) -> None:
        _check(max_events, actions)
        self.requested_project = project
        self.project = project or ""
        self.actions = tuple(actions)
        self._client = client
        self._owns_client = client is None
        self._docker_host = docker_host
        self._events: deque[Mapping[str, Any]] = deque(maxlen=max_events)
        self._known: dict[str, str] = {}
        self._services: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self.error = ""

    def start(self) -> EventWatcher:
        """Look the project up (ProjectNotFound raises here) and start following."""
        if self._thread is not None:
            return self
        if self._client is None:
            from revivadiag.engine.client import connect

            self._client = connect(self._docker_host)
        chosen, summaries, _ = list_project(self._client, self.requested_project)
        self.project = chosen
        self._known = {str(s["Id"]): container_name(s) for s in summaries}
        self._services = _services(summaries, chosen)
        try:
            self._stream = self._client.api.events(since=_api_time(time.time()),
                                                   filters=_filters(self.actions), decode=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"the engine refused the events request: {exc}") from exc
        except (requests.exceptions.ConnectionError, OSError) as exc:
            raise EngineUnreachable(_address(self._client), str(exc)[:300]) from exc
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"revivadiag-events-{chosen}")
        self._thread.start()
        return self

    def _follow(self) -> None:
        try:
            for ev in self._stream:
                with self._lock:
                    self._events.extend(select_events([ev], self.project, self._known))
        except (requests.exceptions.RequestException, OSError, ValueError, AttributeError) as exc:
            if self._stream is not None:  # not closed by stop(): say why it ended
                self.error = f"event stream ended: {type(exc).__name__}"

    def stop(self) -> None:
        """Stop following (what was kept stays readable)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)

    def close(self) -> None:
        """Stop, and close the client this watcher created."""
        self.stop()
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> EventWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, since: datetime | float | None = None,
              until: datetime | float | None = None) -> pd.DataFrame:
        """The events kept, between ``since`` and ``until`` when given (frame
        ``container_events``)."""
        with self._lock:
            kept = list(self._events)
            known = dict(self._known)
        rows = event_rows(kept, self.project, known, self._services, self.actions)
        if since is not None:
            rows = [r for r in rows if r["at"].timestamp() >= _epoch("since", since)]
        if until is not None:
            rows = [r for r in rows if r["at"].timestamp() <= _epoch("until", until)]
        return to_frame("container_events", rows)


# ---------------------------------------------------------------- helpers


def _events(client: docker.DockerClient, filters: Mapping[str, Any], window: Mapping[str, Any],
            limit: int) -> list[dict[str, Any]]:
    """The engine's events in a closed window (the stream ends at ``until``)."""
    out: list[dict[str, Any]] = []
    try:
        stream = client.api.events(filters=dict(filters), **window)
        try:
            for ev in stream:
                out.append(ev)
                if len(out) >= limit:
                    break
        finally:
            stream.close()
    except docker.errors.APIError as exc:
        raise EngineError(f"the engine refused the events request: {exc.explanation or exc}"
                          ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, OSError) as exc:
        raise EngineUnreachable(_address(client), str(exc)[:300]) from exc
    return out


@contextmanager
def _connected() -> Iterator[docker.DockerClient]:
    from revivadiag.engine.client import connect

    client = connect()
    try:
        yield client
    finally:
        client.close()


def _address(client: docker.DockerClient) -> str:
    return str(getattr(client.api, "base_url", "")) or "the engine"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _timestamp(text: Any) -> pd.Timestamp | None:
    return parse_started_at(str(text)) if text else None


def _event_time(ev: Mapping[str, Any]) -> datetime:
    nano = ev.get("timeNano")
    seconds = int(nano) / 1e9 if nano else float(ev.get("time") or 0)
    return datetime.fromtimestamp(seconds, UTC)


def _epoch(name: str, value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ParameterError(name, value, "a timezone-aware datetime (e.g. UTC)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(name, value, "a datetime or seconds since the epoch")
    return float(value)


def _api_time(epoch: float) -> str:
    """The engine's ``since``/``until`` form: seconds.nanoseconds."""
    return f"{epoch:.9f}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
