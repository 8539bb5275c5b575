"""Settings for every test run from this checkout: tests/ and the package's doctests.

Frames are strict under test: a collector that misspells a key or hands a value of the wrong
type gets a ``FrameError`` from ``schemas.to_frame``, not a silently missing column.
Subprocesses (the CLI, papermill and nbval kernels) inherit the setting.
"""

from __future__ import annotations

import os

from revivadiag.schemas import STRICT_ENV

os.environ[STRICT_ENV] = "1"
