"""What ``revivadiag diagnose`` asks for its runbook's kernel while that kernel boots.

The runbook's snapshot asks the user's Compose CLI to normalise the project (``docker
compose config``; Compose v1 is a Python program: 0.5-1 s of CPU before it answers). The
CLI process has little to do while the kernel starts, and it has just read the project's
containers for their secrets: it asks Compose the very question the snapshot will ask (the
same files, the same variables read off the same live containers) and hands the answer over
in a file of a private directory, named to the kernel by
:data:`~revivadiag.collect.compose_cli.HANDOFF_ENV`. The kernel waits for the file when it
needs the answer and removes it once read. An answer to another question (the project
changed in between) is never used: the kernel then asks Compose itself, as it would
without a hand-off.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from revivadiag.collect.compose_cli import HANDOFF_ENV, HANDOFF_WAIT_S, write_handoff
from revivadiag.errors import RevivadiagError


class ComposePrefetch:
    """One run's hand-off: :meth:`kernel_env` for the kernel's start, then :meth:`start`
    (ask Compose in a thread) or :meth:`skip` (nothing to ask), and :meth:`close`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="revivadiag-handoff-"))
        self.path = self.directory / "compose-answers.json"
        self.answers = 0
        self.problem = ""
        self._thread: threading.Thread | None = None
        self._written = threading.Event()
        self._lock = threading.Lock()

    def kernel_env(self) -> dict[str, str]:
        """The variable naming the hand-off file, for the kernel's environment only (this
        process must not wait for a file it writes itself)."""
        return {HANDOFF_ENV: str(self.path)}

    def start(self, inventory: Any, compose_files: Sequence[str | Path] = ()) -> None:
        """Ask Compose about ``inventory``'s project in a thread; the file is written when
        the answer is in (an empty one when there is none, or asking failed)."""
        files = [Path(f) for f in compose_files]
        self._thread = threading.Thread(target=self._ask, args=(inventory, files),
                                        name="revivadiag-compose-prefetch", daemon=True)
        self._thread.start()

    def skip(self) -> None:
        """Nothing is asked here: an empty file tells the kernel not to wait."""
        self._write()

    def _ask(self, inventory: Any, files: list[Path]) -> None:
        try:
            from revivadiag.collect.api_frames import api_frames
            from revivadiag.collect.compose import compose_answer
            from revivadiag.redact import project_scrubber

            frames = api_frames(inventory, project_scrubber(inventory.containers))
            compose_answer(SimpleNamespace(project=inventory.project, **frames), files)
        except (RevivadiagError, OSError, ValueError, KeyError) as exc:
            # the kernel asks Compose itself and meets the problem where the run reports it
            self.problem = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self._write()

    def _write(self) -> None:
        with self._lock:
            if self._written.is_set():
                return
            try:
                self.answers = write_handoff(self.path)
            except OSError as exc:
                self.problem = self.problem or f"hand-off not written: {exc}"
            finally:
                self._written.set()

    def wait(self, timeout_s: float = HANDOFF_WAIT_S) -> bool:
        """True once the hand-off file is written (or could not be)."""
        return self._written.wait(timeout_s)

    def close(self) -> None:
        """Wait for the thread (bounded as the kernel's wait is), then remove the
        directory and whatever the kernel left in it."""
        if self._thread is not None:
            self._thread.join(HANDOFF_WAIT_S)
        else:
            self._write()
        shutil.rmtree(self.directory, ignore_errors=True)
