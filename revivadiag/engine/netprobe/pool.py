"""A small fork server: one forked worker per container network namespace (setns method).

Runs in a fresh, small interpreter started by :mod:`revivadiag.engine.setns` (forking the
caller itself, a process holding pandas and friends, costs ~10-100 ms a fork; forking this
one costs well under one). Standard library only.

Protocol, one JSON object per line. Request on stdin::

    {"id": 1, "workers": 8, "concurrency": 64, "dns_concurrency": 4,
     "targets": [{"key": "3f2a...", "pid": 4242, "deadline_s": 6.5, "jobs": [...]}]}

Replies on stdout: one line per target as soon as its worker ends, then a closing line::

    {"id": 1, "key": "3f2a...", "results": [...]}
    {"id": 1, "key": "...", "error": "...", "errno": 2}      (setns failed: process gone)
    {"id": 1, "key": "...", "deadline": true}                (worker killed at its deadline)
    {"id": 1, "done": true}

Each worker enters ``/proc/<pid>/ns/net`` with ``setns`` (libc via ctypes: Python 3.11 has
no ``os.setns``), runs :func:`run_batch` and writes its results to a pipe. At most
``workers`` are in flight; a worker past its deadline is killed by its PID. Workers die with
this server (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .batch import run_batch

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
Reply = Callable[[dict[str, Any]], None]


def enter_netns(pid: int) -> None:
    """Move this (single-threaded) process into the network namespace of ``pid``."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the netns of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(write_fd: int, target: dict[str, Any], request: dict[str, Any]) -> None:
    """Body of a forked worker: never returns."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        asyncio.events._set_running_loop(None)
        try:
            enter_netns(int(target["pid"]))
            payload: dict[str, Any] = {"results": run_batch(
                target["jobs"], int(request.get("concurrency", 64)),
                int(request.get("dns_concurrency", 8)))}
        except OSError as exc:
            payload = {"error": str(exc), "errno": exc.errno}
        except BaseException as exc:
            payload = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        view = memoryview(json.dumps(payload).encode())
        while view:
            view = view[os.write(write_fd, view):]
    finally:
        os._exit(0)


class Worker:
    """A forked child: its pid, the read end of its pipe, its deadline, what it sent."""

    def __init__(self, target: dict[str, Any], pid: int, fd: int, deadline: float) -> None:
        self.target, self.pid, self.fd, self.deadline = target, pid, fd, deadline
        self.chunks: list[bytes] = []


def spawn(target: dict[str, Any], request: dict[str, Any]) -> Worker:
    """Fork a worker for one target."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, target, request)
    os.close(write_fd)
    return Worker(target, pid, read_fd, time.monotonic() + float(target.get("deadline_s", 30)))


def reap(worker: Worker, kill: bool) -> None:
    """Kill (when asked) and wait for our own child; close its pipe."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
    os.waitpid(worker.pid, 0)
    os.close(worker.fd)


def run_request(request: dict[str, Any], reply: Reply) -> None:
    """Fork workers for every target (bounded), reply per target, then ``done``."""
    rid = request.get("id")
    pending = list(reversed(request.get("targets", [])))
    running: dict[int, Worker] = {}
    sel = selectors.DefaultSelector()
    try:
        while pending or running:
            while pending and len(running) < max(1, int(request.get("workers", 8))):
                worker = spawn(pending.pop(), request)
                running[worker.fd] = worker
                sel.register(worker.fd, selectors.EVENT_READ)
            timeout = max(0.0, min(w.deadline for w in running.values()) - time.monotonic())
            for key, _ in sel.select(timeout):
                worker = running[int(key.fd)]  # type: ignore[arg-type]
                data = os.read(worker.fd, 1 << 16)
                if data:
                    worker.chunks.append(data)
                    continue
                sel.unregister(worker.fd)
                del running[worker.fd]
                reap(worker, kill=False)
                reply({"id": rid, "key": worker.target["key"], **_payload(worker.chunks)})
            now = time.monotonic()
            for worker in [w for w in running.values() if w.deadline <= now]:
                sel.unregister(worker.fd)
                del running[worker.fd]
                reap(worker, kill=True)
                reply({"id": rid, "key": worker.target["key"], "deadline": True})
    finally:
        for worker in running.values():
            reap(worker, kill=True)
        sel.close()
    reply({"id": rid, "done": True})


def _payload(chunks: list[bytes]) -> dict[str, Any]:
    raw = b"".join(chunks)
    if not raw:
        return {"error": "worker exited without output"}
    try:
        payload: dict[str, Any] = json.loads(raw)
    except ValueError:
        return {"error": "worker output was not JSON"}
    return payload


def serve(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Answer requests, one per line, until stdin closes."""
    src, out = stdin or sys.stdin, stdout or sys.stdout

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in src:
        if line.strip():
            run_request(json.loads(line), reply)
    return 0
