"""The collection pipeline: ``revivadiag.snapshot()``, one call that collects every frame of
a compose project into a :class:`~revivadiag.collect.snapshot.Snapshot` (that module holds
the value itself, its metadata and its files; this one the steps that fill it).

Steps, each timed into ``meta.duration_s``: connect (version negotiated; an engine that does
not answer is :class:`~revivadiag.errors.EngineUnreachable`), inventory (one API pass, see
:mod:`revivadiag.collect.inventory`), the API frames (pure parsing), the roles (who is the
proxy, the backend, a database..., learned from the stack: :mod:`revivadiag.collect.stack`),
then the probe frames from inside the containers' namespaces (dns, reachability, latency)
and health, which work from the roles. The lookups (dns) need no roles: they run in the probe
workers while the roles' facts are read, so the two steps' times overlap.

A probe collector that fails as a whole leaves its frame empty and says why in
``meta.notes``; a container that vanished mid-snapshot gives rows with
``CONTAINER_NOT_FOUND``. Every free-text column passes through a Scrubber that knows the
project's secrets before the frames are returned.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import docker
import docker.errors
import pandas as pd
import requests.exceptions
from tqdm import tqdm

from revivadiag.collect.api_frames import api_frames
from revivadiag.collect.dns import collect_dns
from revivadiag.collect.health import HealthConfig, all_credentials, collect_health, members
from revivadiag.collect.inventory import RawInventory, gather
from revivadiag.collect.latency import measure_latency
from revivadiag.collect.reachability import collect_reachability
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.collect.snapshot import FRAME_NAMES, Snapshot, SnapshotMeta, concat_frames
from revivadiag.collect.sockets import collect_connections
from revivadiag.collect.stack import collect_roles
from revivadiag.collect.swarm_step import collect_swarm, node_mtu, swarm_columns
from revivadiag.engine.client import describe, engine_address, is_local_address
from revivadiag.engine.engines import EngineSpec, as_specs, open_engine
from revivadiag.engine.probe import ProbeEngine, prestart
from revivadiag.errors import (
    EngineError,
    EngineUnreachable,
    ParameterError,
    ProjectNotFound,
    RevivadiagError,
)
from revivadiag.redact import Scrubber, project_scrubber, redact_url
from revivadiag.schemas import empty_frame, to_frame

METHODS = ("auto", "setns", "sidecar", "exec")
#: the timed steps (keys of ``meta.duration_s``, with ``total``)
STEPS = ("connect", "inventory", "api_frames", "roles", "dns", "reachability", "latency",
         "health", "swarm", "connections")
#: the frames one engine's collection fills whose rows carry that engine's name
PER_ENGINE_FRAMES = ("containers", "networks", "endpoints", "ports", "env", "roles", "dns",
                     "reachability", "latency", "health", "connections")
#: a normalised compose dict, or a loader given the snapshot so far (``project`` and the API
#: frames as attributes: what :func:`revivadiag.collect.compose.declared_project` reads)
ComposeSource = Mapping[str, Any] | Callable[[Any], Mapping[str, Any] | None] | None
#: free-text columns scrubbed of the project's secrets before a snapshot is returned
#: (names are left alone: a secret that equals a service name would otherwise blank it)
FREE_TEXT = {"reachability": ("error",), "latency": ("url",), "health": ("detail",),
             "roles": ("evidence",)}


class _Timer:
    """Wall time per step, and a progress bar (stderr) that ticks once a step."""

    def __init__(self, steps: int, progress: bool) -> None:
        self.durations: dict[str, float] = {}
        self.probes = 0
        self.current = ""
        self.bar = tqdm(total=steps, file=sys.stderr, disable=not progress, unit="step",
                        desc="snapshot", leave=False)

    def probed(self, count: int) -> None:
        """Progress callback of the probe engine: ``count`` more probes finished."""
        self.probes += count
        self.bar.set_postfix_str(f"{self.current}: {self.probes} probes")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = name
        self.bar.set_postfix_str(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = round(time.perf_counter() - started, 4)
            self.bar.update(1)


def snapshot(
    project: str | None = None,
    docker_host: str | None = None,
    samples: int = 20,
    method: str = "auto",
    progress: bool = False,
    *,
    health_config: HealthConfig | None = None,
    policy: Any = None,
    compose: ComposeSource = None,
    full: bool = False,
    engines: Sequence[str | EngineSpec] | None = None,
) -> Snapshot:
    """Every frame of ``project`` (default: the only compose project, else the seed's).

    ``docker_host`` (or DOCKER_HOST) may be unix://, tcp:// or ssh://. ``samples`` is the
    number of HTTP samples per latency path; ``method`` the probe method (auto, setns,
    sidecar, exec). ``policy`` (a :class:`~revivadiag.analyze.policy.Policy`, optional) may
    assign roles to services; ``compose`` is the normalised compose dict (``docker compose
    config --format json``) or a loader given the files the containers' labels name, for
    ``x-revivadiag`` role declarations. ``full``: every container asks every name and
    connects to every target port itself, instead of one container per set of networks
    standing for the others (the rows say which: ``measured_on``, ``inferred``).

    ``engines`` (addresses or :class:`~revivadiag.engine.engines.EngineSpec`): snapshot
    ``project`` on each of them, one after the other, into one set of frames whose
    ``engine`` column says where each row comes from. With two or more, an engine that does
    not answer, or runs none of the project, is a row of the ``engines`` frame saying so, not
    an error; ProjectNotFound only when no engine runs it. Without ``engines``, one engine
    (``docker_host``) and EngineUnreachable, ProjectNotFound or ParameterError as they come.
    A Swarm manager's services, tasks and nodes fill the ``swarm_*`` frames.
    """
    if method not in METHODS:
        raise ParameterError("method", method, f"expected one of {', '.join(METHODS)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError("samples", samples, "expected an integer >= 1")
    options = _Options(samples, method, progress, health_config, _policy_roles(policy),
                       compose, full)
    if engines is None:
        return _snapshot_engine(EngineSpec(engine_address(docker_host)), project, options)
    specs = as_specs(engines)
    if not specs:
        raise ParameterError("engines", [], "expected at least one engine")
    if len(specs) == 1:  # nothing else to show: its failure is the run's
        return _snapshot_engine(specs[0], project, options)
    return _snapshot_engines(specs, project, options)


@dataclass(frozen=True)
class _Options:
    samples: int
    method: str
    progress: bool
    health_config: HealthConfig | None
    policy_roles: Mapping[str, Sequence[str]]
    compose: ComposeSource
    full: bool


def _snapshot_engines(specs: Sequence[EngineSpec], project: str | None,
                      options: _Options) -> Snapshot:
    """One snapshot per engine, merged; failures become ``engines`` rows."""
    started = time.perf_counter()
    parts: list[Snapshot] = []
    missing: list[ProjectNotFound] = []
    for spec in specs:
        t0 = time.perf_counter()
        try:
            parts.append(_snapshot_engine(spec, project, options))
        except ProjectNotFound as exc:
            missing.append(exc)
            parts.append(_failed_part(spec, project, "no_project", str(exc), t0))
        except EngineError as exc:
            parts.append(_failed_part(spec, project, "unreachable"
                                      if isinstance(exc, EngineUnreachable) else "error",
                                      str(exc), t0))
    if len(missing) == len(specs):
        raise missing[0]
    return merge_snapshots(parts, time.perf_counter() - started)


def _failed_part(spec: EngineSpec, project: str | None, status: str, error: str,
                 t0: float) -> Snapshot:
    snap = Snapshot.empty(project or "")
    snap.meta.engine_address = redact_url(spec.address)
    snap.meta.notes.append(f"engine {spec.label}: {status}: {error}")
    snap.engines = to_frame("engines", [{
        "engine": spec.label, "address": redact_url(spec.address), "status": status,
        "local": is_local_address(spec.address), "error": error[:300],
        "duration_s": round(time.perf_counter() - t0, 4)}])
    return snap


def merge_snapshots(parts: Sequence[Snapshot], total_s: float | None = None) -> Snapshot:
    """One snapshot of several engines' snapshots: frames concatenated (each row keeps its
    ``engine``), metadata joined (notes prefixed by nothing: they name their engine)."""
    ok = [p for p in parts if p.engines.empty or (p.engines["status"] == "ok").any()]
    first = (ok or list(parts))[0]
    meta = SnapshotMeta(project=first.meta.project, method_requested=first.meta.method_requested,
                        samples=first.meta.samples, revivadiag_version=_version())
    meta.taken_at = min((p.meta.taken_at for p in parts if p.meta.taken_at), default="")
    meta.engine_address = ", ".join(p.meta.engine_address for p in parts)
    meta.engine_version = ", ".join(sorted({p.meta.engine_version for p in ok
                                            if p.meta.engine_version}))
    meta.api_version = ", ".join(sorted({p.meta.api_version for p in ok if p.meta.api_version}))
    meta.method = ",".join(dict.fromkeys(m for p in ok for m in p.meta.method.split(",") if m))
    meta.api_calls = sum(p.meta.api_calls for p in parts)
    for p in parts:
        meta.notes.extend(p.meta.notes)
        for key, value in p.meta.duration_s.items():
            if key != "total":
                meta.duration_s[key] = round(meta.duration_s.get(key, 0.0) + value, 4)
    meta.duration_s["total"] = round(total_s if total_s is not None else
                                     sum(p.meta.duration_s.get("total", 0) for p in parts), 4)
    frames = {name: concat_frames(name, [p[name] for p in parts]) for name in FRAME_NAMES}
    return Snapshot(meta, **frames)


def _snapshot_engine(spec: EngineSpec, project: str | None, options: _Options) -> Snapshot:
    """The snapshot of one engine, every row's ``engine`` set to ``spec.label``."""
    started = time.perf_counter()
    taken_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    timer = _Timer(steps=len(STEPS), progress=options.progress)
    try:
        with timer.step("connect"):
            client = open_engine(spec)
            info = describe(client, spec.address)
            prestart(options.method, info.is_local)  # the setns fork server starts meanwhile
        try:
            engine_info = _engine_info(client, spec.address)
            snap = _collect(client, project, options.samples, options.method, info.is_local,
                            options.health_config, timer, options.policy_roles,
                            options.compose, options.full, engine=spec.label,
                            engine_info=engine_info)
            host_mtu, mtu_note = node_mtu(client, engine_info, info.is_local)
            snap.meta.notes.extend([mtu_note] if mtu_note else [])
        finally:
            client.close()
    finally:
        timer.bar.close()
    snap.meta.taken_at = taken_at
    snap.meta.engine_address = redact_url(info.address)
    snap.meta.engine_version = info.server_version
    snap.meta.api_version = info.api_version
    snap.meta.duration_s = {**timer.durations, "total": round(time.perf_counter() - started, 4)}
    snap.engines = to_frame("engines", [{
        "engine": spec.label, "address": redact_url(info.address), "status": "ok",
        "server_version": info.server_version, "api_version": info.api_version,
        "local": info.is_local, "method": snap.meta.method,
        **swarm_columns(engine_info, info.is_local, host_mtu),
        "containers": len(snap.containers), "duration_s": snap.meta.duration_s["total"],
        "error": ""}])
    return snap


def _engine_info(client: docker.DockerClient, address: str) -> dict[str, Any]:
    """The engine's ``/info`` (its Swarm state); EngineUnreachable when it stops answering."""
    try:
        info: dict[str, Any] = client.info()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnreachable(redact_url(address), str(exc)[:300]) from exc
    return info


def _policy_roles(policy: Any) -> dict[str, tuple[str, ...]]:
    """role -> services a policy assigns (its ``roles`` mapping), or nothing."""
    return {str(k): tuple(v) for k, v in (getattr(policy, "roles", None) or {}).items()}


def _compose_data(inv: RawInventory, frames: Mapping[str, pd.DataFrame],
                  compose: ComposeSource, meta: SnapshotMeta) -> Mapping[str, Any] | None:
    if compose is None or isinstance(compose, Mapping):
        return compose
    try:
        return compose(SimpleNamespace(project=inv.project, **frames))
    except RevivadiagError as exc:
        meta.notes.append(f"roles: compose file not read: {exc}")
        return None


def _collect(client: docker.DockerClient, project: str | None, samples: int, method: str,
             local: bool, health_config: HealthConfig | None, timer: _Timer,
             policy_roles: Mapping[str, Sequence[str]], compose: ComposeSource,
             full: bool = False, engine: str = "",
             engine_info: Mapping[str, Any] | None = None) -> Snapshot:
    with timer.step("inventory"):
        inv = gather(client, project)
    scrubber = project_scrubber(inv.containers)
    with timer.step("api_frames"):
        frames = api_frames(inv, scrubber)
    meta = SnapshotMeta(project=inv.project, method_requested=method, samples=samples,
                        api_calls=inv.api_calls, revivadiag_version=_version())
    # ParameterError when an explicit method cannot work here
    with ProbeEngine(client, method=method) as prober:
        with ThreadPoolExecutor(2, "revivadiag-beside-roles") as pool:
            # the lookups need no roles: they run (in the probe workers) while the roles'
            # facts are read here, and Compose (a subprocess, up to a second) is asked
            dns = pool.submit(_timed_probe_frame, "dns", prober, frames, samples, meta, timer,
                              full)
            with timer.step("roles"):
                declared = pool.submit(_compose_data, inv, frames, compose, meta)
                frames["roles"], quiet = _roles_frame(client, inv, frames, local,
                                                      policy_roles, declared.result, meta)
            frames["dns"] = dns.result()
        roles = Roles(frames["roles"])
        for creds in all_credentials(members(inv), roles):
            creds.register(scrubber)
        for name in ("reachability", "latency"):
            with timer.step(name):
                frames[name] = _probe_frame(name, prober, frames, samples, meta, timer.probed,
                                            full)
        roles = Roles(frames["roles"])
        with timer.step("health"):
            frames["health"] = collect_health(inv, prober, roles=roles, config=health_config,
                                              local_engine=local, scrubber=scrubber)
        with timer.step("swarm"):
            frames.update(collect_swarm(client, prober, engine, engine_info or {}, inv,
                                        frames, meta))
        with timer.step("connections"):
            frames["connections"] = _connections_frame(prober, frames, meta, quiet)
    for name, cols in FREE_TEXT.items():
        frames[name] = scrub_columns(frames[name], cols, scrubber)
    meta.method = methods_used(frames)
    for name in PER_ENGINE_FRAMES:
        frames[name] = with_engine(frames[name], engine)
    return Snapshot(meta, **{name: frames[name] for name in FRAME_NAMES if name in frames})


def _roles_frame(client: docker.DockerClient, inv: RawInventory,
                 frames: Mapping[str, pd.DataFrame], local: bool,
                 policy_roles: Mapping[str, Sequence[str]],
                 compose: Callable[[], Mapping[str, Any] | None],
                 meta: SnapshotMeta) -> tuple[pd.DataFrame, set[str]]:
    """The roles from every fact the stack gives; from its API frames alone if that fails.
    ``compose`` gives the declared project once the facts are read. Also the containers
    whose socket tables held no connection (none when they could not be read)."""
    try:
        roles, facts = collect_roles(client, inv, frames, local=local, compose=compose,
                                     policy_roles=policy_roles)
    except (docker.errors.DockerException, OSError) as exc:
        meta.notes.append(f"roles: decided from the API frames only: {type(exc).__name__}")
        return infer_roles(frames["containers"], endpoints=frames["endpoints"],
                           compose=compose(), policy_roles=policy_roles), set()
    meta.notes.extend(facts.notes)
    return roles, facts.without_connections


def _timed_probe_frame(name: str, prober: ProbeEngine, frames: dict[str, pd.DataFrame],
                       samples: int, meta: SnapshotMeta, timer: _Timer,
                       full: bool = False) -> pd.DataFrame:
    """:func:`_probe_frame` timed as step ``name`` (for a thread of its own)."""
    with timer.step(name):
        return _probe_frame(name, prober, frames, samples, meta, timer.probed, full)


def _probe_frame(name: str, prober: ProbeEngine, frames: dict[str, pd.DataFrame], samples: int,
                 meta: SnapshotMeta, progress: Callable[[int], None],
                 full: bool = False) -> pd.DataFrame:
    """One probe frame; a collector that fails as a whole gives an empty frame and a note.

    Latency learns the HTTP paths that answer: they are written back into ``frames["roles"]``.
    """
    containers, endpoints, ports = frames["containers"], frames["endpoints"], frames["ports"]
    try:
        if name == "dns":
            return collect_dns(prober, containers, endpoints, progress=progress, full=full)
        if name == "reachability":
            learned = {str(r["service"]): [int(p) for p in r["ports"]]
                       for r in frames["roles"].to_dict("records")}
            return collect_reachability(prober, containers, endpoints, ports=ports,
                                        progress=progress, learned=learned, full=full)
        run = measure_latency(prober, containers, ports, samples, roles=Roles(frames["roles"]))
        if run.paths is not None:
            frames["roles"] = with_paths(frames["roles"], {
                run.paths.backend: run.paths.direct_path,
                **({run.paths.proxy: run.paths.proxy_path} if run.paths.proxy else {})})
        frame = run.summary
        frame.attrs["samples"] = run.samples
        return frame
    except (EngineError, ParameterError):
        raise  # the engine went away, or the method asked for cannot work here
    except RevivadiagError as exc:
        meta.notes.append(f"{name}: not collected: {type(exc).__name__}: {exc}")
        return empty_frame(name)


def _connections_frame(prober: ProbeEngine, frames: Mapping[str, pd.DataFrame],
                       meta: SnapshotMeta, quiet: set[str]) -> pd.DataFrame:
    """The ``connections`` frame, from the containers not in ``quiet`` (their socket tables,
    read moments before for the roles, held no connection: named in the frame's
    ``attrs["not_read"]``); a failure as a whole gives an empty frame and a note."""
    try:
        frame = collect_connections(lambda batches, known: prober.run(batches, known=known),
                                    frames["containers"], frames["endpoints"], frames["roles"],
                                    frames.get("swarm_services"), skip=quiet)
        frame.attrs["not_read"] = sorted(quiet)  # held no connection: nothing to report
        return frame
    except (EngineError, ParameterError):
        raise
    except RevivadiagError as exc:
        meta.notes.append(f"connections: not collected: {type(exc).__name__}: {exc}")
        return empty_frame("connections")


def with_engine(frame: pd.DataFrame, engine: str) -> pd.DataFrame:
    """``frame`` with its ``engine`` column set to ``engine`` (``attrs`` kept)."""
    out = frame.copy()
    out["engine"] = pd.Series([engine] * len(out), index=out.index, dtype="string")
    out.attrs = frame.attrs
    return out


def with_paths(roles: pd.DataFrame, paths: Mapping[str, str]) -> pd.DataFrame:
    """``roles`` with ``http_path`` set for the services in ``paths``."""
    out = roles.copy()
    for service, path in paths.items():
        out.loc[out["service"] == service, "http_path"] = path
    return out


def scrub_columns(
    frame: pd.DataFrame, columns: tuple[str, ...], scrubber: Scrubber
) -> pd.DataFrame:
    """``frame`` with the given string columns passed through ``scrubber``."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in columns:
        if col in out.columns:
            # each distinct value once: rows carried over from an equivalent container repeat
            values = out[col].dropna().unique()
            if all(isinstance(v, str) for v in values):
                out[col] = out[col].map({v: scrubber.scrub(v) for v in values})
            else:
                out[col] = out[col].map(lambda v: scrubber.scrub(v) if isinstance(v, str) else v)
            out[col] = out[col].astype(frame[col].dtype)
    out.attrs = {key: scrub_columns(extra, (*columns, "error"), scrubber)
                 if isinstance(extra, pd.DataFrame) else extra
                 for key, extra in frame.attrs.items()}
    return out


def methods_used(frames: dict[str, pd.DataFrame]) -> str:
    """The probe methods that produced rows (setns, sidecar, exec), comma-separated."""
    seen: dict[str, None] = {}
    for name in ("dns", "reachability", "latency", "health"):
        frame = frames.get(name)
        if frame is None or "method" not in frame.columns:
            continue
        for value in frame["method"].dropna().unique():
            if value in ("setns", "sidecar", "exec"):
                seen.setdefault(str(value), None)
    return ",".join(seen)


def _version() -> str:
    from revivadiag import __version__

    return __version__

