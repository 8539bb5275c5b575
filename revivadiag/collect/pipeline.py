"""The collection pipeline: ``revivadiag.snapshot()``, one call that collects every frame of
a compose project into a :class:`~revivadiag.collect.snapshot.Snapshot` (that module holds
the value itself, its metadata and its files; this one the steps that fill it).

Steps, each timed into ``meta.duration_s``: connect (version negotiated; an engine that does
not answer is :class:`~revivadiag.errors.EngineUnreachable`), inventory (one API pass, see
:mod:`revivadiag.collect.inventory`), the API frames (pure parsing), the roles (who is the
proxy, the backend, a database..., learned from the stack: :mod:`revivadiag.collect.stack`),
then the probe frames from inside the containers' namespaces (dns, reachability, latency)
and health, which work from the roles.

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
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import docker
import pandas as pd
from tqdm import tqdm

from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.dns import collect_dns
from revivadiag.collect.env import parse_env
from revivadiag.collect.health import HealthConfig, all_credentials, collect_health, members
from revivadiag.collect.inventory import RawInventory, gather
from revivadiag.collect.latency import measure_latency
from revivadiag.collect.networks import parse_endpoints, parse_networks
from revivadiag.collect.reachability import collect_reachability
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.collect.snapshot import FRAME_NAMES, Snapshot, SnapshotMeta
from revivadiag.collect.stack import collect_roles
from revivadiag.engine.client import connect, describe
from revivadiag.engine.probe import ProbeEngine, prestart
from revivadiag.errors import EngineError, ParameterError, RevivadiagError
from revivadiag.redact import Scrubber, project_scrubber, redact_url
from revivadiag.schemas import empty_frame

METHODS = ("auto", "setns", "sidecar", "exec")
#: the timed steps (keys of ``meta.duration_s``, with ``total``)
STEPS = ("connect", "inventory", "api_frames", "roles", "dns", "reachability", "latency",
         "health")
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
) -> Snapshot:
    """Every frame of ``project`` (default: the only compose project, else the seed's).

    ``docker_host`` (or DOCKER_HOST) may be unix://, tcp:// or ssh://. ``samples`` is the
    number of HTTP samples per latency path; ``method`` the probe method (auto, setns,
    sidecar, exec). ``policy`` (a :class:`~revivadiag.analyze.policy.Policy`, optional) may
    assign roles to services; ``compose`` is the normalised compose dict (``docker compose
    config --format json``) or a loader given the files the containers' labels name, for
    ``x-revivadiag`` role declarations. ``full``: every container asks every name and
    connects to every target port itself, instead of one container per set of networks
    standing for the others (the rows say which: ``measured_on``, ``inferred``). Raises
    EngineUnreachable, ProjectNotFound or ParameterError.
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
            prestart(method, info.is_local)  # the setns fork server starts during inventory
        try:
            snap = _collect(client, project, samples, method, info.is_local, health_config,
                            timer, _policy_roles(policy), compose, full)
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
             full: bool = False) -> Snapshot:
    with timer.step("inventory"):
        inv = gather(client, project)
    scrubber = project_scrubber(inv.containers)
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
    with timer.step("roles"), ThreadPoolExecutor(1, "revivadiag-compose") as pool:
        # Compose is asked (a subprocess, up to a second) while the roles' facts are read
        declared = pool.submit(_compose_data, inv, frames, compose, meta)
        frames["roles"] = _roles_frame(client, inv, frames, local, policy_roles,
                                       declared.result, meta)
    roles = Roles(frames["roles"])
    for creds in all_credentials(members(inv), roles):
        creds.register(scrubber)
    # ParameterError when an explicit method cannot work here
    with ProbeEngine(client, method=method) as prober:
        for name in ("dns", "reachability", "latency"):
            with timer.step(name):
                frames[name] = _probe_frame(name, prober, frames, samples, meta, timer.probed,
                                            full)
        roles = Roles(frames["roles"])
        with timer.step("health"):
            frames["health"] = collect_health(inv, prober, roles=roles, config=health_config,
                                              local_engine=local, scrubber=scrubber)
    for name, cols in FREE_TEXT.items():
        frames[name] = scrub_columns(frames[name], cols, scrubber)
    meta.method = methods_used(frames)
    return Snapshot(meta, **{name: frames[name] for name in FRAME_NAMES})


def _roles_frame(client: docker.DockerClient, inv: RawInventory,
                 frames: Mapping[str, pd.DataFrame], local: bool,
                 policy_roles: Mapping[str, Sequence[str]],
                 compose: Callable[[], Mapping[str, Any] | None],
                 meta: SnapshotMeta) -> pd.DataFrame:
    """The roles from every fact the stack gives; from its API frames alone if that fails.
    ``compose`` gives the declared project once the facts are read."""
    try:
        roles, facts = collect_roles(client, inv, frames, local=local, compose=compose,
                                     policy_roles=policy_roles)
    except (docker.errors.DockerException, OSError) as exc:
        meta.notes.append(f"roles: decided from the API frames only: {type(exc).__name__}")
        return infer_roles(frames["containers"], endpoints=frames["endpoints"],
                           compose=compose(), policy_roles=policy_roles)
    meta.notes.extend(facts.notes)
    return roles


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

