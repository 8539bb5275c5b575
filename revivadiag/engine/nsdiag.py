"""TCP socket tables of containers' network namespaces, read from this process.

As root on the engine's host: one dedicated thread enters each container's network namespace
(``setns`` acts on the calling thread only) just to open a ``NETLINK_SOCK_DIAG`` socket there,
and returns to its own namespace at once; the kernel's INET_DIAG answers are then asked and
read outside, through those sockets (:mod:`revivadiag.engine.netprobe.sockdiag` builds and
parses the messages). No byte a container sends is read, inside its namespace or out: the
answers are the kernel's own socket records. A thread that could not return to its own
namespace ends there, and nothing else ever runs on it.

The same facts as ``/proc/<pid>/net/tcp`` and ``tcp6``, at a third of the cost (0.85 ms a
namespace against 3.0 ms here: the proc files walk every socket of the host, a dump asks only
for the states wanted), which matters at hundreds of containers.

>>> open_diag_sockets([])
{}
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from revivadiag.engine.netprobe import sockdiag

CLONE_NEWNET = 0x40000000


def open_diag_sockets(pids: Iterable[int]) -> dict[int, socket.socket | OSError]:
    """A ``NETLINK_SOCK_DIAG`` socket in the network namespace of each host process of
    ``pids`` (or the OSError that stopped it: a process gone, not root)."""
    wanted = [int(p) for p in pids]
    opened: dict[int, socket.socket | OSError] = {}
    if not wanted:
        return opened

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        except OSError:
            return  # no namespace to come back to: nothing is entered
        try:
            for pid in wanted:
                try:
                    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                except OSError as exc:
                    opened[pid] = exc
                    continue
                entered = libc.setns(target, CLONE_NEWNET) == 0
                err = ctypes.get_errno()
                os.close(target)
                if not entered:
                    opened[pid] = OSError(err, f"setns into pid {pid}: {os.strerror(err)}")
                    continue
                try:  # an exception other than OSError ends this thread, as a failed return
                    opened[pid] = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                                sockdiag.NETLINK_SOCK_DIAG)
                except OSError as exc:
                    opened[pid] = exc
                if libc.setns(own, CLONE_NEWNET) != 0:
                    return  # still in a container's namespace: this thread ends here
        finally:
            os.close(own)

    thread = threading.Thread(target=run, name="revivadiag-netns-open", daemon=True)
    thread.start()
    thread.join()
    for pid in wanted:
        opened.setdefault(pid, OSError(f"no socket opened for pid {pid}"))
    return opened


def namespace_sockets(sock: socket.socket, states: Sequence[str],
                      timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """The TCP sockets in ``states`` of the namespace ``sock`` was opened in (IPv4 and IPv6;
    rows as :func:`~revivadiag.engine.netprobe.sockdiag.parse_message` gives them). Closes
    ``sock``."""
    try:
        return sockdiag.read_sockets(sockdiag.state_mask(tuple(states)), timeout_s, sock)
    finally:
        sock.close()
