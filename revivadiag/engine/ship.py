"""Ship the netprobe package into a container as one ``python3 -c`` program.

The sidecar and exec methods cannot import revivadiag inside the container, so every module
of :mod:`revivadiag.engine.netprobe` is packed (zlib + base64) into a small bootstrap that
installs an in-memory importer and calls ``netprobe.main([])``: the request (jobs, which may
carry credentials) travels on the program's stdin (:mod:`revivadiag.engine.stdin`), never in
its argv; the results come back as JSON on stdout. The setns method starts the same program
with the ``pool`` entry (the fork server of :mod:`netprobe.pool`) on the host.

>>> argv = probe_argv()
>>> argv[:2], "password" in " ".join(argv)
(['python3', '-c'], False)
>>> json.loads(request_bytes([{"kind": "dns", "name": "api"}], 8, 2))["jobs"][0]["name"]
'api'
"""

from __future__ import annotations

import base64
import json
import zlib
from functools import cache
from importlib import resources

PACKAGE = "revivadiag.engine.netprobe"
#: a batch's request stays this small (one exec or sidecar per chunk, bounded work each)
MAX_BATCH_BYTES = 100_000

_BOOT = """\
import base64, importlib.machinery, json, sys, zlib
S = json.loads(zlib.decompress(base64.b64decode({blob!r})))
class F:
    def find_spec(self, name, path, target=None):
        if name in S:
            return importlib.machinery.ModuleSpec(name, self, is_package=name == "netprobe")
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        exec(compile(S[module.__name__], module.__name__, "exec"), module.__dict__)
sys.meta_path.insert(0, F())
{entry}
"""
#: what the bootstrap runs: the batch CLI (sidecar, exec) or the fork server (setns)
ENTRIES = {
    "main": "import netprobe\nsys.exit(netprobe.main([]))",
    "pool": "from netprobe import pool\nsys.exit(pool.serve())",
}


@cache
def package_sources() -> dict[str, str]:
    """Module name (``netprobe``, ``netprobe.dnswire``, ...) -> source text."""
    sources: dict[str, str] = {}
    for entry in resources.files(PACKAGE).iterdir():
        name = entry.name
        if not name.endswith(".py") or name == "__main__.py":
            continue
        module = "netprobe" if name == "__init__.py" else f"netprobe.{name[:-3]}"
        sources[module] = entry.read_text(encoding="utf-8")
    return sources


@cache
def bootstrap_code(entry: str = "main") -> str:
    """The ``python3 -c`` program that runs netprobe (``entry``: main or pool) from memory."""
    packed = zlib.compress(json.dumps(package_sources()).encode(), 9)
    return _BOOT.format(blob=base64.b64encode(packed).decode("ascii"), entry=ENTRIES[entry])


def probe_argv(python: str = "python3") -> list[str]:
    """The argv that runs netprobe with ``python``; it reads its request from stdin."""
    return [python, "-c", bootstrap_code()]


def request_bytes(jobs: list[dict[str, object]], concurrency: int, dns_concurrency: int) -> bytes:
    """The JSON request netprobe reads on stdin."""
    return json.dumps({"jobs": jobs, "concurrency": concurrency,
                       "dns_concurrency": dns_concurrency}).encode()


def chunk_jobs(jobs: list[dict[str, object]],
               max_bytes: int = MAX_BATCH_BYTES) -> list[list[dict[str, object]]]:
    """Split ``jobs`` so that each chunk's JSON stays under ``max_bytes``."""
    chunks: list[list[dict[str, object]]] = [[]]
    size = 0
    for job in jobs:
        n = len(json.dumps(job)) + 2
        if chunks[-1] and size + n > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(job)
        size += n
    return [c for c in chunks if c] or [[]]
