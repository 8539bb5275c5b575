"""ProbeEngine: run job batches from inside containers, by the best method available.

>>> engine = ProbeEngine(client)                                   # doctest: +SKIP
>>> engine.method                                                  # doctest: +SKIP
'setns'
>>> engine.run({"3f2a...": [{"kind": "dns", "name": "backend"}]})  # doctest: +SKIP
{'3f2a...': [{'kind': 'dns', 'answers': ['172.20.0.3'], ..., 'method': 'setns'}]}

``auto`` picks setns when the engine is local and we are root, else a sidecar when an image
with python3 exists, else exec. A container that is not running, or vanishes, yields
CONTAINER_NOT_FOUND results; an engine that stops answering raises EngineUnreachable.
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import docker.errors
import requests.exceptions

from revivadiag.engine.base import (
    METHODS,
    ProbeMethod,
    Progress,
    Settings,
    Target,
    method_class,
    stamp,
)
from revivadiag.engine.client import client_address
from revivadiag.engine.jobs import Job, Result, validate_job
from revivadiag.engine.netprobe import Breaker, run_batch
from revivadiag.errors import EngineUnreachable, ParameterError

AUTO_ORDER = ("setns", "sidecar", "exec")
INSPECT_THREADS = 8


def is_local_client(client: Any) -> bool:
    """True when docker-py talks to an engine on this host (unix socket or loopback TCP)."""
    base = str(getattr(client.api, "base_url", ""))
    if base.startswith(("http+docker://localhost", "http+docker://localunixsocket")):
        return True
    return urlsplit(base).hostname in ("127.0.0.1", "localhost", "::1")


class ProbeEngine:
    """Probes from inside containers' network namespaces; see the module docstring."""

    def __init__(self, client: Any, method: str = "auto", concurrency: int = 64,
                 timeout_s: float = 0.5, workers: int = 16, dns_budget: int = 32,
                 sidecar_image: str | None = None, local: bool | None = None) -> None:
        self.client = client
        self.settings = Settings(workers=workers, concurrency=concurrency, timeout_s=timeout_s,
                                 dns_budget=dns_budget, sidecar_image=sidecar_image,
                                 local=is_local_client(client) if local is None else local)
        self.requested = method
        self.method = self._choose(method)
        #: answers for names unknown on a network set, shared by the collectors of one run
        self.name_cache: dict[tuple[frozenset[str], str], Result] = {}
        self.breaker = Breaker()
        self._runners: dict[str, ProbeMethod] = {}
        self._finalizer = weakref.finalize(self, _close_all, self._runners)
        runner = self._runners[self.method] = method_class(self.method)(client, self.settings)
        runner.start()  # setns: its fork server imports for ~0.1 s while we plan the probes

    def close(self) -> None:
        """Stop helper processes kept between runs (the setns fork server)."""
        self._finalizer()

    def __enter__(self) -> ProbeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _choose(self, method: str) -> str:
        if method != "auto" and method not in METHODS:
            raise ParameterError("probe method", method, f"one of auto, {', '.join(METHODS)}")
        for name in (AUTO_ORDER if method == "auto" else (method,)):
            reason = method_class(name).unavailable_reason(self.client, self.settings)
            if reason is None:
                return name
            if method != "auto":
                raise ParameterError("probe method", method, f"unavailable here: {reason}")
        return "exec"

    @property
    def address(self) -> str:
        """The engine's address (``unix:///...`` for a socket)."""
        return client_address(self.client)

    def run(self, batches: Mapping[str, Sequence[Job]], progress: Progress | None = None,
            concurrency: int | None = None,
            known: Mapping[str, tuple[str, int]] | None = None) -> dict[str, list[Result]]:
        """Run each container's jobs there; results keyed like ``batches``, one per job.

        ``concurrency`` overrides the probes in flight per container for this run (latency
        is measured with 1). ``known`` maps container id -> (name, pid) as the containers
        frame has them: a pid whose cgroup names that id is used without asking the engine.
        """
        for jobs in batches.values():
            for job in jobs:
                validate_job(job)
        settings = self._settings(concurrency)
        targets, results = self._targets(batches, known or {})
        if progress is not None:
            progress(sum(len(rows) for rows in results.values()))
        for name, group in self._route(targets).items():
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = method_class(name)(self.client, settings)
            runner.settings = settings
            results.update(runner.run(group, progress))
        self._learn(results)
        return {key: results[key] for key in batches}

    def run_host(self, jobs: Sequence[Job], concurrency: int | None = None) -> list[Result]:
        """Run ``jobs`` from this host (published ports); rows say method ``host``."""
        for job in jobs:
            validate_job(job)
        settings = self._settings(concurrency)
        with ThreadPoolExecutor(max_workers=1) as pool:  # a fresh thread: no running loop
            rows = pool.submit(run_batch, self._guard(jobs), settings.concurrency,
                               settings.dns_concurrency).result()
        return stamp(rows, "host")

    def _settings(self, concurrency: int | None) -> Settings:
        if concurrency is None:
            return self.settings
        return dataclasses.replace(self.settings, concurrency=max(1, concurrency))

    def _targets(self, batches: Mapping[str, Sequence[Job]],
                 known: Mapping[str, tuple[str, int]]
                 ) -> tuple[list[Target], dict[str, list[Result]]]:
        infos: dict[str, dict[str, Any]] = {}
        for key in batches:
            name, pid = known.get(key, ("", 0))
            if pid and self.settings.local and pid_belongs_to(pid, key):
                infos[key] = {"Id": key, "Name": name or key,
                              "State": {"Running": True, "Pid": pid, "Status": "running"}}
        rest = [key for key in batches if key not in infos]
        with ThreadPoolExecutor(max_workers=INSPECT_THREADS) as pool:
            infos.update(zip(rest, pool.map(self._inspect, rest), strict=True))
        targets: list[Target] = []
        results: dict[str, list[Result]] = {}
        for key, jobs in batches.items():
            info = infos[key]
            target = Target(key, str(info.get("Id", key)), _name(info, key),
                            int((info.get("State") or {}).get("Pid") or 0), self._guard(jobs))
            state = info.get("State") or {}
            if not info:
                results[key] = target.gone(self.method, "no such container")
            elif not state.get("Running") or state.get("Paused") or target.pid <= 0:
                results[key] = target.gone(self.method, f"state {state.get('Status', '?')}")
            else:
                targets.append(target)
        return targets, results

    def _inspect(self, key: str) -> dict[str, Any]:
        try:
            return dict(self.client.api.inspect_container(key))
        except docker.errors.NotFound:
            return {}
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnreachable(self.address, str(exc)[:300]) from exc

    def _route(self, targets: list[Target]) -> dict[str, list[Target]]:
        """Targets per method: under ``auto``, setns only where /proc/<pid>/ns/net is ours."""
        groups: dict[str, list[Target]] = {}
        fallback = None
        for target in targets:
            name = self.method
            if name == "setns" and not os.path.exists(f"/proc/{target.pid}/ns/net"):
                if self.requested != "auto":
                    groups.setdefault("_gone", []).append(target)
                    continue
                fallback = fallback or self._choose_after("setns")
                name = fallback
            groups.setdefault(name, []).append(target)
        gone = groups.pop("_gone", [])
        if gone:
            raise ParameterError("probe method", "setns", "container PIDs are not visible here "
                                 f"(e.g. {gone[0].name}, pid {gone[0].pid})")
        return groups

    def _choose_after(self, skipped: str) -> str:
        for name in AUTO_ORDER[AUTO_ORDER.index(skipped) + 1:]:
            if method_class(name).unavailable_reason(self.client, self.settings) is None:
                return name
        return "exec"

    def _guard(self, jobs: Sequence[Job]) -> list[Job]:
        """Copies of ``jobs`` with defaults filled; no retries towards an open breaker."""
        out = []
        for job in jobs:
            job = dict(job)
            if job["kind"] == "tcp":
                job.setdefault("timeout_s", self.settings.timeout_s)
                if self.breaker.is_open(f"{job['host']}:{job['port']}"):
                    job["retries"] = 0
            out.append(job)
        return out

    def _learn(self, results: Mapping[str, list[Result]]) -> None:
        """Feed TCP outcomes to the engine-wide breaker (it spans runs)."""
        for rows in results.values():
            for row in rows:
                if row.get("kind") == "tcp" and row.get("outcome") not in ("", "unresolvable"):
                    key = f"{row.get('host')}:{row.get('port')}"
                    self.breaker.record(key, row.get("outcome") == "open")


def prestart(method: str = "auto", local: bool = True) -> bool:
    """Start the setns fork server ahead of the first :class:`ProbeEngine` when that engine
    will use setns (``method`` auto or setns, a ``local`` engine, root here): its start-up
    then overlaps with the caller's API work. True when one was started."""
    if method not in ("auto", "setns"):
        return False
    cls = method_class("setns")
    if cls.unavailable_reason(None, Settings(local=local)) is not None:
        return False
    from revivadiag.engine import setns

    setns.prestart()
    return True


def pid_belongs_to(pid: int, container_id: str) -> bool:
    """True when host process ``pid`` runs in the container ``container_id`` (its cgroup
    path names the full id), so a pid from a frame is still valid."""
    if len(container_id) != 64:
        return False
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii", errors="replace") as fh:
            return container_id in fh.read()
    except OSError:
        return False


def _close_all(runners: dict[str, ProbeMethod]) -> None:
    for runner in runners.values():
        runner.close()
    runners.clear()


def _name(info: Mapping[str, Any], key: str) -> str:
    return str(info.get("Name") or key).lstrip("/")
