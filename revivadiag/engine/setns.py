"""The fast path: a forked worker per container enters its network namespace and probes.

Needs root on the engine's host and a local engine. Each worker ``setns()`` into
``/proc/<pid>/ns/net`` (Python 3.11 has no ``os.setns``: libc via ctypes), runs
:func:`netprobe.run_batch` and writes the JSON results to a pipe. At most
``Settings.workers`` are in flight; one that overruns its deadline is killed by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import selectors
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from revivadiag.engine.base import ProbeMethod, Progress, Settings, Target, check_results
from revivadiag.engine.jobs import Result, batch_deadline_s
from revivadiag.engine.netprobe import run_batch
from revivadiag.errors import NetworkErrorType

CLONE_NEWNET = 0x40000000
NOT_FOUND = NetworkErrorType.CONTAINER_NOT_FOUND.value


def enter_netns(pid: int) -> None:
    """Move this (forked, single-threaded) process into the network namespace of ``pid``."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the netns of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(write_fd: int, target: Target, settings: Settings) -> None:
    """Body of a forked worker: never returns."""
    try:
        asyncio.events._set_running_loop(None)  # a parent's running loop (Jupyter) must not leak
        try:
            enter_netns(target.pid)
            payload: dict[str, Any] = {
                "results": run_batch(target.jobs, settings.concurrency, settings.dns_concurrency)
            }
        except OSError as exc:
            payload = {"error": str(exc), "errno": exc.errno}
        except BaseException as exc:
            payload = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        data = json.dumps(payload).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    finally:
        os._exit(0)


@dataclass
class Worker:
    """A forked child, the read end of its pipe and what it sent so far."""

    target: Target
    pid: int
    fd: int
    deadline: float
    chunks: list[bytes] = field(default_factory=list)


def decode_payload(target: Target, raw: bytes, method: str) -> list[Result]:
    """Results from a worker's output (or failure rows saying why there are none)."""
    try:
        payload = json.loads(raw) if raw else {"error": "worker exited without output"}
    except ValueError:
        payload = {"error": "worker output was not JSON"}
    if "results" in payload:
        return check_results(target, payload["results"], method)
    if payload.get("errno") in (2, 3):  # ENOENT, ESRCH: the process (container) is gone
        return target.gone(method, str(payload.get("error", "")))
    return target.fail_all(NOT_FOUND, f"could not probe from {target.name}: {payload.get('error')}",
                           method)


class SetnsMethod(ProbeMethod):
    """Forked workers inside the containers' network namespaces."""

    name = "setns"

    @classmethod
    def unavailable_reason(cls, client: Any, settings: Settings) -> str | None:
        if not settings.local:
            return "the engine is not on this host"
        if os.geteuid() != 0:
            return "setns needs root"
        if not os.path.exists("/proc/self/ns/net"):
            return "no /proc/<pid>/ns on this system"
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).setns  # noqa: B018
        except (OSError, AttributeError):
            return "libc.so.6 has no setns"
        return None

    def run(self, targets: Sequence[Target],
            progress: Progress | None = None) -> dict[str, list[Result]]:
        results: dict[str, list[Result]] = {}
        pending = list(reversed(targets))
        running: dict[int, Worker] = {}
        sel = selectors.DefaultSelector()
        try:
            while pending or running:
                while pending and len(running) < max(1, self.settings.workers):
                    worker = self._spawn(pending.pop())
                    running[worker.fd] = worker
                    sel.register(worker.fd, selectors.EVENT_READ)
                self._pump(sel, running, results, progress)
        finally:
            for worker in running.values():
                self._reap(worker, kill=True)
            sel.close()
        return results

    def _spawn(self, target: Target) -> Worker:
        budget = batch_deadline_s(target.jobs, self.settings.concurrency)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(write_fd, target, self.settings)
        os.close(write_fd)
        return Worker(target, pid, read_fd, time.monotonic() + budget)

    def _pump(self, sel: selectors.BaseSelector, running: dict[int, Worker],
              results: dict[str, list[Result]], progress: Progress | None) -> None:
        timeout = max(0.0, min(w.deadline for w in running.values()) - time.monotonic())
        for key, _ in sel.select(timeout):
            worker = running[int(key.fd)]  # type: ignore[arg-type]
            data = os.read(worker.fd, 1 << 16)
            if data:
                worker.chunks.append(data)
                continue
            self._finish(sel, running, worker, results, progress,
                         decode_payload(worker.target, b"".join(worker.chunks), self.name))
        now = time.monotonic()
        for worker in [w for w in running.values() if w.deadline <= now]:
            text = f"probe worker for {worker.target.name} overran its deadline and was killed"
            self._finish(sel, running, worker, results, progress,
                         worker.target.fail_all(NetworkErrorType.TIMEOUT.value, text, self.name),
                         kill=True)

    def _finish(self, sel: selectors.BaseSelector, running: dict[int, Worker], worker: Worker,
                results: dict[str, list[Result]], progress: Progress | None,
                rows: list[Result], kill: bool = False) -> None:
        sel.unregister(worker.fd)
        del running[worker.fd]
        self._reap(worker, kill)
        results[worker.target.key] = rows
        if progress is not None:
            progress(len(rows))

    @staticmethod
    def _reap(worker: Worker, kill: bool) -> None:
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        os.waitpid(worker.pid, 0)
        os.close(worker.fd)
