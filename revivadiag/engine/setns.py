"""The fast path: forked workers enter each container's network namespace and probe there.

Needs root on the engine's host and a local engine. The workers are forked by a small fork
server (:mod:`revivadiag.engine.netprobe.pool`, started once per engine as a fresh
interpreter running the shipped netprobe code): forking this process, which holds pandas
and friends, would cost 10-100 ms a worker. At most ``Settings.workers`` workers run at
once; each takes one container at a time: ``setns()`` into ``/proc/<pid>/ns/net``,
``run_batch``, results back through a pipe, next container (a fork costs ~5 ms here, a
``setns`` well under one). A worker past its container's deadline is killed by its PID and
replaced. If the server itself overruns, it is killed (its workers die with it) and
restarted on next use.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from revivadiag.engine.base import ProbeMethod, Progress, Settings, Target, check_results
from revivadiag.engine.jobs import DEADLINE_SLACK_S, Result, batch_deadline_s
from revivadiag.engine.ship import bootstrap_code
from revivadiag.errors import NetworkErrorType

NOT_FOUND = NetworkErrorType.CONTAINER_NOT_FOUND.value
GONE_ERRNOS = (2, 3)  # ENOENT, ESRCH: the process (container) is gone
Reply = Callable[[dict[str, Any]], None]


def decode_reply(target: Target, reply: dict[str, Any], method: str) -> list[Result]:
    """Results from one fork-server reply (or failure rows saying why there are none)."""
    if "results" in reply:
        return check_results(target, reply["results"], method)
    if reply.get("deadline"):
        text = f"probe worker for {target.name} overran its deadline and was killed"
        return target.fail_all(NetworkErrorType.TIMEOUT.value, text, method)
    if reply.get("errno") in GONE_ERRNOS:
        return target.gone(method, str(reply.get("error", "")))
    return target.fail_all(NOT_FOUND, f"could not probe from {target.name}: {reply.get('error')}",
                           method)


class ForkServer:
    """The fork server process (our child) and its line-delimited JSON pipe.

    ``-I``: no user site or PYTHON* variables; the interpreter's own site-packages stay on
    the path, as postgres jobs import psycopg from there.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", bootstrap_code("pool")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""
        self.next_id = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, body: dict[str, Any], deadline_s: float, on_reply: Reply) -> bool:
        """Send one request; call ``on_reply`` per target reply. False if it overran."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.next_id += 1
        body = {**body, "id": self.next_id}
        self.proc.stdin.write((json.dumps(body) + "\n").encode())
        self.proc.stdin.flush()
        end = time.monotonic() + deadline_s
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                for line in self._lines():
                    reply = json.loads(line)
                    if reply.get("id") != self.next_id:
                        continue
                    if reply.get("done"):
                        return True
                    on_reply(reply)
                remaining = end - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    return False
                data = os.read(fd, 1 << 20)
                if not data:
                    return False
                self.buffer += data

    def _lines(self) -> list[bytes]:
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line for line in lines if line.strip()]

    def close(self) -> None:
        """Close its stdin (it exits) and wait; kill our own child if it lingers."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


#: a fork server started ahead of need (:func:`prestart`), taken by the next SetnsMethod
_SPARE: list[ForkServer] = []


def prestart() -> None:
    """Start a fork server now, for the next :class:`SetnsMethod` to take: its interpreter
    start overlaps with the caller's API work instead of delaying the first probe run. One
    that nobody takes is closed at exit."""
    if not any(server.alive() for server in _SPARE):
        _SPARE.clear()
        _SPARE.append(ForkServer())


@atexit.register
def _close_spare() -> None:
    while _SPARE:
        _SPARE.pop().close()


class SetnsMethod(ProbeMethod):
    """Forked workers inside the containers' network namespaces."""

    name = "setns"

    def __init__(self, client: Any, settings: Settings) -> None:
        super().__init__(client, settings)
        self.server: ForkServer | None = None

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
        if not targets:
            return {}
        by_key = {t.key: t for t in targets}
        results: dict[str, list[Result]] = {}

        def on_reply(reply: dict[str, Any]) -> None:
            target = by_key[str(reply["key"])]
            results[target.key] = decode_reply(target, reply, self.name)
            if progress is not None:
                progress(len(target.jobs))

        deadlines = [batch_deadline_s(t.jobs, self.settings.concurrency) for t in targets]
        waves = -(-len(targets) // max(1, self.settings.workers))
        body = {"workers": self.settings.workers, "concurrency": self.settings.concurrency,
                "dns_concurrency": self.settings.dns_concurrency,
                "targets": [{"key": t.key, "pid": t.pid, "jobs": t.jobs, "deadline_s": d}
                            for t, d in zip(targets, deadlines, strict=True)]}
        if not self._server().request(body, max(deadlines) * waves + DEADLINE_SLACK_S, on_reply):
            self._restart()
        for target in targets:
            if target.key not in results:
                text = f"probe workers for {target.name} overran their deadline and were killed"
                results[target.key] = target.fail_all(NetworkErrorType.TIMEOUT.value, text,
                                                      self.name)
        return results

    def start(self) -> None:
        """Start the fork server now (its ~0.1 s of imports overlap with the caller's work)."""
        self._server()

    def _server(self) -> ForkServer:
        if self.server is None or not self.server.alive():
            spare = _SPARE.pop() if _SPARE else None
            self.server = spare if spare is not None and spare.alive() else ForkServer()
            if spare is not None and spare is not self.server:
                spare.close()
        return self.server

    def _restart(self) -> None:
        if self.server is not None:
            self.server.proc.kill()
            self.server.close()
        self.server = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
