"""Checks of the places a command will write to, made before it does any work.

A command that would fail to write its results only after a minute of probing, or leave a
half-written directory, checks ``--out DIR`` and output files first and raises
:class:`~revivadiag.errors.OutputPathError`; the check itself creates nothing.

>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> check_output_dir(tmp / "new" / "dir") == tmp / "new" / "dir"
True
>>> (tmp / "f").write_text("x")
1
>>> check_output_dir(tmp / "f")
Traceback (most recent call last):
revivadiag.errors.OutputPathError: cannot write output to ...f: it is a file, not a directory
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from revivadiag.errors import OutputPathError


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _probe_writable(folder: Path, target: Path) -> None:
    """Create and remove a scratch file in ``folder`` (the only honest test: as root, access()
    says yes to read-only file systems and /proc)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".revivadiag-probe-"):
            pass
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutputPathError(str(target), f"cannot create files in {folder} ({why})") from None


def check_output_dir(path: Path) -> Path:
    """``path`` as a directory a command may create and fill; OutputPathError otherwise."""
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise OutputPathError(str(path), "it is a file, not a directory")
    if not existing.is_dir():
        raise OutputPathError(str(path), f"{existing} is a file, not a directory")
    _probe_writable(existing, path)
    return path


def check_output_file(path: Path) -> Path:
    """``path`` as a file a command may create or replace; OutputPathError otherwise."""
    if path.is_dir():
        raise OutputPathError(str(path), "it is a directory, not a file")
    if path.exists() and not path.is_file():
        raise OutputPathError(str(path), "it is not a regular file")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise OutputPathError(str(path), f"{existing} is a file, not a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(str(path), os.strerror(errno.EACCES))
    _probe_writable(existing, path)
    return path
