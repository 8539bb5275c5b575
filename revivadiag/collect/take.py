"""``revivadiag.snapshot()``: one call that collects every frame of a compose project.

Steps, each timed into ``meta.duration_s``: connect (version negotiated; an engine that does
not answer is :class:`~revivadiag.errors.EngineUnreachable`), inventory (one API pass, see
:mod:`revivadiag.collect.inventory`), the API frames (pure parsing), then the probe frames
from inside the containers' namespaces (dns, reachability, latency) and health.

A probe collector that fails as a whole leaves its frame empty and says why in
``meta.notes``; a container that vanished mid-snapshot gives rows with
``CONTAINER_NOT_FOUND``. Every free-text column passes through a Scrubber that knows the
project's secrets before the frames are returned.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import docker
import pandas as pd
from tqdm import tqdm

from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.env import parse_env, project_secrets
from revivadiag.collect.health import HealthConfig, collect_health, credentials_of, members
from revivadiag.collect.inventory import gather
from revivadiag.collect.networks import parse_endpoints, parse_networks
from revivadiag.collect.snapshot import FRAME_NAMES, Snapshot, SnapshotMeta
from revivadiag.engine.client import connect, describe
from revivadiag.errors import EngineError, ParameterError, RevivadiagError
from revivadiag.redact import Scrubber, redact_url
from revivadiag.schemas import empty_frame

METHODS = ("auto", "setns", "sidecar", "exec")
#: the timed steps (keys of ``meta.duration_s``, with ``total``)
STEPS = ("connect", "inventory", "api_frames", "dns", "reachability", "latency", "health")
#: free-text columns scrubbed of the project's secrets before a snapshot is returned
#: (names are left alone: a secret that equals a service name would otherwise blank it)
FREE_TEXT = {"reachability": ("error",), "latency": ("url",), "health": ("detail",)}
#: (frame, module, function) of the probe collectors built on the probe engine
PROBE_COLLECTORS = (("dns", "revivadiag.collect.dns", "collect_dns"),
                    ("reachability", "revivadiag.collect.reachability", "collect_reachability"),
                    ("latency", "revivadiag.collect.latency", "collect_latency"))


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
    health: HealthConfig | None = None,
) -> Snapshot:
    """Every frame of ``project`` (default: the only compose project, else ``revivatech``).

    ``docker_host`` (or DOCKER_HOST) may be unix://, tcp:// or ssh://. ``samples`` is the
    number of HTTP samples per latency path; ``method`` the probe method (auto, setns,
    sidecar, exec). Raises EngineUnreachable, ProjectNotFound or ParameterError.
    """
    if method not in METHODS:
        raise ParameterError("method", method, f"expected one of {', '.join(METHODS)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError("samples", samples, "expected an integer >= 1")
    started = time.perf_counter()
    taken_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    timer = _Timer(steps=len(STEPS), progress=progress)
    try:
        with timer.step("connect"):
            client = connect(docker_host)
            info = describe(client, docker_host)
        try:
            snap = _collect(client, project, samples, method, info.is_local, health, timer)
        finally:
            client.close()
    finally:
        timer.bar.close()
    snap.meta.taken_at = taken_at
    snap.meta.engine_address = redact_url(info.address)
    snap.meta.engine_version = info.server_version
    snap.meta.api_version = info.api_version
    snap.meta.duration_s = {**timer.durations, "total": round(time.perf_counter() - started, 4)}
    return snap


def _collect(client: docker.DockerClient, project: str | None, samples: int, method: str,
             local: bool, health_cfg: HealthConfig | None, timer: _Timer) -> Snapshot:
    with timer.step("inventory"):
        inv = gather(client, project)
    scrubber = project_secrets(inv.containers)
    credentials_of(members(inv), health_cfg or HealthConfig()).register(scrubber)
    with timer.step("api_frames"):
        frames: dict[str, pd.DataFrame] = {
            "containers": parse_containers(inv.containers, inv.vanished, inv.project),
            "networks": parse_networks(inv.networks),
            "endpoints": parse_endpoints(inv.containers, inv.project),
            "ports": parse_ports(inv.containers, inv.project),
            "env": parse_env(inv.containers, inv.project, scrubber),
        }
    meta = SnapshotMeta(project=inv.project, method_requested=method, samples=samples,
                        api_calls=inv.api_calls, revivadiag_version=_version())
    prober, why = _probe_engine(client, method)
    try:
        frames.update(_probe_frames(prober, why, frames, samples, meta, timer))
        with timer.step("health"):
            frames["health"] = collect_health(inv, prober, config=health_cfg,
                                              local_engine=local, scrubber=scrubber,
                                              why_no_prober=why)
    finally:
        _close(prober)
    for name, cols in FREE_TEXT.items():
        frames[name] = scrub_columns(frames[name], cols, scrubber)
    meta.method = methods_used(frames)
    return Snapshot(meta, **{name: frames[name] for name in FRAME_NAMES})


def _probe_frames(prober: Any, why: str, frames: dict[str, pd.DataFrame], samples: int,
                  meta: SnapshotMeta, timer: _Timer) -> dict[str, pd.DataFrame]:
    """dns, reachability and latency from the probe collectors (empty + a note on failure)."""
    out: dict[str, pd.DataFrame] = {}
    for name, module, func in PROBE_COLLECTORS:
        with timer.step(name):
            out[name] = empty_frame(name)
            if prober is None:
                meta.notes.append(f"{name}: not collected: {why}")
                continue
            collector = _optional(module, func)
            if collector is None:
                meta.notes.append(f"{name}: not collected: {module}.{func} is not available")
                continue
            try:
                out[name] = _call_collector(name, collector, prober, frames, samples,
                                            timer.probed)
            except (EngineError, ParameterError):
                raise  # the engine went away, or the method asked for cannot work here
            except RevivadiagError as exc:
                meta.notes.append(f"{name}: failed: {type(exc).__name__}: {exc}")
    return out


def _call_collector(name: str, collector: Callable[..., pd.DataFrame], prober: Any,
                    frames: dict[str, pd.DataFrame], samples: int,
                    progress: Callable[[int], None]) -> pd.DataFrame:
    containers = frames["containers"]
    if name == "latency":
        return collector(prober, containers, frames["ports"], samples=samples)
    if name == "reachability":
        return collector(prober, containers, frames["endpoints"], ports=frames["ports"],
                         progress=progress)
    return collector(prober, containers, frames["endpoints"], progress=progress)


def _probe_engine(client: docker.DockerClient, method: str) -> tuple[Any, str]:
    """A ProbeEngine, or (None, why) when that layer is not built.

    An explicit ``method`` that cannot work here raises ParameterError (from the engine).
    """
    cls = _optional("revivadiag.engine.probe", "ProbeEngine")
    if cls is None:
        return None, "the probe engine (revivadiag.engine.probe.ProbeEngine) is not available"
    return cls(client, method=method), ""


def _optional(module: str, attr: str) -> Any:
    """``module.attr``, or None when that module is not built (yet)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, attr, None)


def _close(prober: Any) -> None:
    close = getattr(prober, "close", None)
    if callable(close):
        close()


def scrub_columns(
    frame: pd.DataFrame, columns: tuple[str, ...], scrubber: Scrubber
) -> pd.DataFrame:
    """``frame`` with the given string columns passed through ``scrubber``."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in columns:
        if col in out.columns:
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
        for value in frame["method"].dropna():
            if value in ("setns", "sidecar", "exec"):
                seen.setdefault(str(value), None)
    return ",".join(seen)


def _version() -> str:
    from revivadiag import __version__

    return __version__

