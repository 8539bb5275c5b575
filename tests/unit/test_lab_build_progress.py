"""`lab build` reports its steps as they happen, and a failed step still says why."""

from __future__ import annotations

import sys

import pytest

from revivadiag.errors import ImageBuildError
from revivadiag.lab import images

SCRIPT = ("import sys, time\n"
          "print('I: chroot architecture amd64', flush=True)\n"
          "print('Get:1 http://mirror noise', flush=True)\n"
          "print('Step 2/5 : RUN true', flush=True)\n"
          "sys.exit(int(sys.argv[1]))\n")


def test_progress_lines_as_they_come() -> None:
    """Only the phase and step lines are shown, prefixed with the image and elapsed time."""
    seen: list[str] = []
    images._run([sys.executable, "-c", SCRIPT, "0"], "rdt/base", progress=seen.append)
    assert [line.split("] ", 1)[1] for line in seen] == [
        "I: chroot architecture amd64", "Step 2/5 : RUN true"]
    assert all(line.startswith("rdt/base [") for line in seen)


def test_a_failed_step_raises_with_its_output_tail() -> None:
    """Exit status and the last lines of the tool's output are in the error."""
    with pytest.raises(ImageBuildError, match="exited 3") as info:
        images._run([sys.executable, "-c", SCRIPT, "3"], "rdt/base")
    assert "Get:1 http://mirror noise" in str(info.value)
