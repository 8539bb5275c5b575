"""One migration run per project at a time: ``flock`` on ``<journal dir>/<project>/.lock``.

The kernel drops a ``flock`` when the process that holds it dies (SIGKILL included), so a
crashed run never leaves a stale lock behind: the next run simply gets it. While held, the
file says who holds it (one JSON line: pid, host, migration id, since); a second run is
refused with :class:`~revivadiag.errors.MigrationLocked` quoting that. The file itself stays
(removing it would race with a run that just opened it); only the ``flock`` counts.

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> with ProjectLock("demo", "m1", root=root) as lock:
...     holder(lock.path)["migration_id"]
'm1'
>>> holder(lock_path("demo", root)) is None
True
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from revivadiag.errors import JournalError, MigrationLocked
from revivadiag.migrate.journal import fsync_dir, project_dir

LOCK_NAME = ".lock"


def lock_path(project: str, root: str | Path | None = None) -> Path:
    """The project's lock file (beside its journals)."""
    return project_dir(project, root) / LOCK_NAME


def describe_holder(info: dict[str, Any] | None) -> str:
    """One line naming a lock holder.

    >>> describe_holder({"pid": 7, "host": "h", "migration_id": "m", "since": "t"})
    'migration m, pid 7 on h, since t'
    """
    if not info:
        return "an unknown process (the lock file says nothing)"
    return (f"migration {info.get('migration_id', '?')}, pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {info.get('since', '?')}")


def holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock at ``path`` now (None when nobody does). Takes a shared lock
    attempt only: it never blocks and never disturbs the holder."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_info(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        info = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


class ProjectLock:
    """The project's run lock. ``acquire`` raises :class:`MigrationLocked` when held."""

    def __init__(self, project: str, migration_id: str, root: str | Path | None = None) -> None:
        self.project = project
        self.migration_id = migration_id
        self.path = lock_path(project, root)
        self.fd: int | None = None

    def acquire(self) -> ProjectLock:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if created:
                fsync_dir(folder)
        except OSError as exc:
            raise JournalError(str(self.path), f"cannot open the lock file: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(fd)
            os.close(fd)
            raise MigrationLocked(self.project, describe_holder(info)) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "migration_id": self.migration_id,
                "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                .replace("+00:00", "Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
