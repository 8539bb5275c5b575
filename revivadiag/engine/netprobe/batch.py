"""Run a batch of probe jobs concurrently and return one result per job, in order.

``main()`` reads a JSON job list (or ``{"jobs": [...], "concurrency": n,
"dns_concurrency": m}``) from its first argument or stdin and prints the JSON result list:
that is how the sidecar and exec methods run this code inside a container.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from .context import Breaker, Context
from .http_probe import http_job
from .ifaces import interfaces_job
from .outcomes import OPEN
from .probes import connect_once, dns_job, tcp_job
from .services import postgres_job, redis_job
from .sockdiag import sockets_job

Job = dict[str, Any]
Result = dict[str, Any]
JOB_KINDS = ("dns", "tcp", "http", "postgres", "redis", "sockets", "interfaces")
DEFAULT_CONCURRENCY = 64
DEFAULT_DNS_CONCURRENCY = 16
#: at most this many quiet connects per job, this many in flight (see :func:`quiet_samples`)
MAX_QUIET_SAMPLES = 20
QUIET_IN_FLIGHT = 4


async def run_job(job: Job, ctx: Context) -> Result:
    """One job; never raises (a failure becomes the result's ``error``)."""
    kind = job.get("kind")
    start = time.perf_counter()
    try:
        if kind == "dns":
            res = await dns_job(job, ctx)
        elif kind == "tcp":
            res = await tcp_job(job, ctx)
        elif kind == "redis":
            res = await redis_job(job, ctx)
        elif kind == "http":
            res = await asyncio.to_thread(http_job, job, ctx.breaker)
        elif kind == "postgres":
            res = await asyncio.to_thread(postgres_job, job)
        elif kind == "sockets":
            res = await asyncio.to_thread(sockets_job, job)
        elif kind == "interfaces":
            res = interfaces_job(job)
        else:
            res = {"kind": str(kind), "error_type": "", "error": f"unknown job kind {kind!r}"}
    except (KeyError, TypeError, ValueError) as exc:
        res = {"kind": str(kind), "error_type": "", "error": f"bad {kind} job: {exc!r}"[:300]}
    res["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 3)
    if "tag" in job:
        res["tag"] = job["tag"]
    return res


async def run_batch_async(jobs: Sequence[Job], concurrency: int = DEFAULT_CONCURRENCY,
                          dns_concurrency: int = DEFAULT_DNS_CONCURRENCY,
                          breaker: Breaker | None = None) -> list[Result]:
    """All jobs at most ``concurrency`` at a time (DNS at most ``dns_concurrency``)."""
    ctx = Context(concurrency, dns_concurrency, breaker)

    async def bounded(job: Job) -> Result:
        async with ctx.slots:
            return await run_job(job, ctx)

    results = list(await asyncio.gather(*(bounded(j) for j in jobs)))
    await quiet_samples(jobs, results)
    return results


async def quiet_samples(jobs: Sequence[Job], results: Sequence[Result],
                        in_flight: int = QUIET_IN_FLIGHT) -> None:
    """For each open ``tcp`` job asking for ``quiet_samples``: that many more connects to the
    same address (after one warm-up connect, not kept), one after the other, once every job
    of the batch is done, at most ``in_flight`` at once: a connect timed while the batch runs
    hundreds at once is inflated many times over. The times go to ``quiet_ms``."""
    gate = asyncio.Semaphore(max(1, in_flight))

    async def repeat(job: Job, res: Result, count: int) -> None:
        times = []
        async with gate:
            for i in range(1 + min(count, MAX_QUIET_SAMPLES)):
                outcome, ms, _, _ = await connect_once(str(res["ip"]), int(res["port"]),
                                                       float(job.get("timeout_s", 0.5)))
                if outcome == OPEN and i > 0:  # the first one is a warm-up, not kept
                    times.append(round(ms, 3))
        res["quiet_ms"] = times

    pending = []
    for job, res in zip(jobs, results, strict=True):
        count = int(job.get("quiet_samples") or 0) if job.get("kind") == "tcp" else 0
        if count > 0 and res.get("outcome") == OPEN and res.get("ip"):
            pending.append(repeat(job, res, count))
    await asyncio.gather(*pending)


def run_batch(jobs: Sequence[Job], concurrency: int = DEFAULT_CONCURRENCY,
              dns_concurrency: int = DEFAULT_DNS_CONCURRENCY) -> list[Result]:
    """Run ``jobs`` on a fresh event loop; one result per job, in order."""
    return asyncio.run(run_batch_async(jobs, concurrency, dns_concurrency))


def parse_request(text: str) -> tuple[list[Job], int, int]:
    """(jobs, concurrency, dns_concurrency) from the JSON given to :func:`main`."""
    data = json.loads(text)
    if isinstance(data, list):
        return data, DEFAULT_CONCURRENCY, DEFAULT_DNS_CONCURRENCY
    return (list(data["jobs"]), int(data.get("concurrency", DEFAULT_CONCURRENCY)),
            int(data.get("dns_concurrency", DEFAULT_DNS_CONCURRENCY)))


def main(argv: Sequence[str] | None = None) -> int:
    """Read jobs (argv[0] or stdin), print results as JSON on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    jobs, concurrency, dns_concurrency = parse_request(args[0] if args else sys.stdin.read())
    results = run_batch(jobs, concurrency, dns_concurrency)
    sys.stdout.write(json.dumps(results))
    sys.stdout.flush()
    return 0
