"""The probes themselves: standard library only, so they run anywhere Python 3 does.

The same code runs in a forked worker that entered a container's network namespace
(setns), in a sidecar container sharing that namespace, or through ``docker exec``; the
sidecar and exec methods ship every module of this package (see
:mod:`revivadiag.engine.ship`). Jobs and results are the dicts described in
:mod:`revivadiag.engine.jobs`.

>>> run_batch([{"kind": "tcp", "host": "127.0.0.1", "port": 9, "retries": 0}])[0]["outcome"]
'refused'
"""

from .batch import JOB_KINDS, main, run_batch, run_batch_async
from .context import Breaker

__all__ = ["JOB_KINDS", "Breaker", "main", "run_batch", "run_batch_async"]
