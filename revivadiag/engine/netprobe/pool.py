"""A small fork server for the setns method: forked workers probe inside container netns.

Runs in a fresh, small interpreter started by :mod:`revivadiag.engine.setns` (forking the
caller itself, a process holding pandas and friends, costs far more). Standard library only.

Protocol with the caller, one JSON object per line. Request on stdin::

    {"id": 1, "workers": 16, "concurrency": 64, "dns_concurrency": 2,
     "targets": [{"key": "3f2a...", "pid": 4242, "deadline_s": 6.5, "jobs": [...]}]}

Replies on stdout: one line per target as soon as it is done, then a closing line::

    {"id": 1, "key": "3f2a...", "results": [...]}
    {"id": 1, "key": "...", "error": "...", "errno": 2}      (setns failed: process gone)
    {"id": 1, "key": "...", "deadline": true}                (worker killed at its deadline)
    {"id": 1, "done": true}

Up to ``workers`` workers are forked per request; each takes targets one after the other.
For each target a worker forks a short-lived *prober* (a fork of this small interpreter
costs a few ms here, a ``setns`` well under one), which enters ``/proc/<pid>/ns/net`` with
``setns`` (libc via ctypes: Python 3.11 has no ``os.setns``), then — before it reads a byte
the container controls — gives up root for good: no supplementary groups, uid and gid
``nobody``, ``PR_SET_NO_NEW_PRIVS``. Only then does it run :func:`run_batch` on a fresh event
loop and write its results to the worker. The worker, still root, never enters a container's
namespace and only relays the prober's bytes. A worker past its target's deadline is killed
by its PID and replaced; workers die with this server and probers with their worker
(``PR_SET_PDEATHSIG``). Worker <-> server messages are length-prefixed JSON on pipes.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import selectors
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any, TextIO

from .batch import run_batch

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
#: the unprivileged identity a prober takes once inside the namespace (``nobody``)
UNPRIVILEGED_ID = 65534
_LEN = struct.Struct("!I")
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


def drop_privileges(uid: int = UNPRIVILEGED_ID, gid: int = UNPRIVILEGED_ID) -> None:
    """Give up root for good: no groups, ``uid``/``gid`` (real, effective, saved), no new privs.

    A no-op for a process that is not root. Raises OSError when any step fails (the prober
    must then not probe).
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid):
            raise OSError(0, "could not drop root")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_NO_NEW_PRIVS: {os.strerror(err)}")


def _probe_here(target: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """In the prober: enter the netns, drop root, run the jobs (never raises)."""
    try:
        enter_netns(int(target["pid"]))
        parent = os.getppid()
        drop_privileges()
        # a change of uid clears the parent-death signal: arm it again
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            return {"error": "the worker ended before the probe started"}
        return {"results": run_batch(target["jobs"], int(request.get("concurrency", 64)),
                                     int(request.get("dns_concurrency", 8)))}
    except OSError as exc:
        return {"error": str(exc), "errno": exc.errno}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def probe(target: dict[str, Any], request: dict[str, Any]) -> bytes:
    """Run the target's jobs in a forked prober; its reply payload as JSON bytes."""
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the worker died before the signal was armed
                os._exit(1)
            payload = json.dumps(_probe_here(target, request)).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return json.dumps({"error": f"prober ended with status {status} and no reply"}).encode()
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    """A length-prefixed frame; an empty one means 'no more work'."""
    view = memoryview(_LEN.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int) -> bytes | None:
    """The next frame (blocking), or None at end of file or an empty frame."""
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(_LEN.size)
    if not head or not (size := _LEN.unpack(head)[0]):
        return None
    return exactly(size)


def _worker(cmd_fd: int, out_fd: int, request: dict[str, Any]) -> None:
    """Body of a forked worker: targets in, payloads out, until told to stop. Never returns."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        asyncio.events._set_running_loop(None)  # a parent's running loop must not leak
        while (frame := read_frame(cmd_fd)) is not None:
            write_frame(out_fd, probe(json.loads(frame), request))
    finally:
        os._exit(0)


class Worker:
    """A forked child, its two pipes, its current target and that target's deadline."""

    def __init__(self, request: dict[str, Any]) -> None:
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(out_r)
            _worker(cmd_r, out_w, request)
        os.close(cmd_r)
        os.close(out_w)
        self.pid, self.cmd, self.out = pid, cmd_w, out_r
        self.target: dict[str, Any] | None = None
        self.deadline = float("inf")
        self.buffer = b""

    def assign(self, target: dict[str, Any]) -> None:
        self.target = target
        self.deadline = time.monotonic() + float(target.get("deadline_s", 30))
        write_frame(self.cmd, json.dumps(target).encode())

    def payload(self) -> dict[str, Any] | None:
        """The reply once a whole frame has arrived."""
        if len(self.buffer) < _LEN.size:
            return None
        size = _LEN.unpack(self.buffer[:_LEN.size])[0]
        if len(self.buffer) < _LEN.size + size:
            return None
        raw, self.buffer = self.buffer[_LEN.size:_LEN.size + size], self.buffer[_LEN.size + size:]
        self.target, self.deadline = None, float("inf")
        try:
            answer: dict[str, Any] = json.loads(raw)
        except ValueError:
            return {"error": "worker output was not JSON"}
        return answer

    def stop(self, kill: bool) -> None:
        """End our own child: politely (empty frame) or by its PID; wait for it."""
        if kill:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        else:
            with suppress(OSError):
                write_frame(self.cmd, b"")
        os.waitpid(self.pid, 0)
        os.close(self.cmd)
        os.close(self.out)


def run_request(request: dict[str, Any], reply: Reply) -> None:
    """Probe every target with at most ``workers`` workers; reply per target, then done."""
    rid = request.get("id")
    pending = list(reversed(request.get("targets", [])))
    wanted = min(max(1, int(request.get("workers", 8))), len(pending))
    workers: dict[int, Worker] = {}
    sel = selectors.DefaultSelector()

    def hire() -> None:
        worker = Worker(request)
        workers[worker.out] = worker
        sel.register(worker.out, selectors.EVENT_READ)
        worker.assign(pending.pop())

    def fire(worker: Worker, kill: bool) -> None:
        sel.unregister(worker.out)
        del workers[worker.out]
        worker.stop(kill)

    try:
        while pending and len(workers) < wanted:
            hire()
        while workers:
            _pump(sel, workers, pending, reply, rid, fire)
            for worker in [w for w in workers.values() if w.deadline <= time.monotonic()]:
                assert worker.target is not None
                reply({"id": rid, "key": worker.target["key"], "deadline": True})
                fire(worker, kill=True)
                if pending:
                    hire()
    finally:
        for worker in list(workers.values()):
            fire(worker, kill=True)
        sel.close()
    reply({"id": rid, "done": True})


def _pump(sel: selectors.BaseSelector, workers: dict[int, Worker], pending: list[Any],
          reply: Reply, rid: Any, fire: Callable[[Worker, bool], None]) -> None:
    """Wait for output (or the nearest deadline); hand out the next target or stop."""
    nearest = min(w.deadline for w in workers.values())
    for key, _ in sel.select(max(0.0, min(nearest - time.monotonic(), 3600.0))):
        worker = workers[int(key.fd)]  # type: ignore[arg-type]
        data = os.read(worker.out, 1 << 16)
        if not data:  # it died: report its target, do not reuse it
            if worker.target is not None:
                reply({"id": rid, "key": worker.target["key"], "error": "worker died"})
            fire(worker, True)
            continue
        worker.buffer += data
        target = worker.target
        answer = worker.payload()
        if answer is None or target is None:
            continue
        reply({"id": rid, "key": target["key"], **answer})
        if pending:
            worker.assign(pending.pop())
        else:
            fire(worker, False)


#: jobs per kind, all at this host's loopback discard port (closed or not, nothing leaves
#: the machine): running them once loads every module a probe of that kind imports lazily
WARM_UP_JOBS: dict[str, list[dict[str, Any]]] = {
    "tcp": [{"kind": "tcp", "host": "127.0.0.1", "port": 9, "retries": 0, "timeout_s": 0.2}],
    "http": [{"kind": "http", "url": "http://127.0.0.1:9/", "samples": 1, "warmup": 0,
              "timeout_s": 0.2, "retries": 0},
             {"kind": "http", "url": "https://127.0.0.1:9/", "samples": 1, "warmup": 0,
              "timeout_s": 0.2, "retries": 0}],
    "postgres": [{"kind": "postgres", "host": "127.0.0.1", "port": 9, "user": "-",
                  "password": "", "timeout_s": 0.2, "server": "127.0.0.1"}],
    "redis": [{"kind": "redis", "host": "127.0.0.1", "port": 9, "password": "",
               "timeout_s": 0.2, "server": "127.0.0.1"}],
}
_WARMED: set[str] = set()


def warm_up(kinds: Iterable[str] = ("tcp",)) -> None:
    """Import, while still root, what a prober would import once it is ``nobody``.

    The interpreter's standard library and site-packages may be readable by root only (say,
    under ``/root``); a prober that has dropped root could not import a module it needs
    lazily (``concurrent.futures.thread`` for the default executor, psycopg's parts, the
    ``idna`` codec), so such modules are loaded here, in the server, before any fork: the
    cheap ones at start, those of ``http``/``postgres``/``redis`` jobs (TLS, psycopg) before
    the first request that has such a job.
    """
    import concurrent.futures.thread  # noqa: F401  (asyncio's default executor)
    import encodings.idna  # noqa: F401  (host names in sockets)

    todo = sorted({k for k in kinds if k in WARM_UP_JOBS} - _WARMED)
    if todo:
        with suppress(Exception):
            run_batch([job for kind in todo for job in WARM_UP_JOBS[kind]], 8, 2)
        _WARMED.update(todo)


def kinds_of(request: dict[str, Any]) -> set[str]:
    """The job kinds a request holds."""
    return {str(job.get("kind")) for target in request.get("targets", [])
            for job in target.get("jobs", [])}


def serve(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Load what probes need, then answer requests, one per line, until stdin closes."""
    src, out = stdin or sys.stdin, stdout or sys.stdout
    warm_up()

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in src:
        if line.strip():
            request = json.loads(line)
            warm_up(kinds_of(request))
            run_request(request, reply)
    return 0
