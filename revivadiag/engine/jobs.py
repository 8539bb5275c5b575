"""The probe job format shared by every probe method (setns, sidecar, exec).

A job is a plain JSON-able dict so that the same batch can run in a forked worker that
entered a container's network namespace, in a sidecar container sharing that namespace,
or through ``docker exec``. Results are dicts too, one per job, in the same order.

Job kinds and their result fields:

``dns``   ``{"kind": "dns", "name": "backend", "server": "127.0.0.11", "timeout_s": 1.0}``
          -> ``answers`` (list[str]), ``rcode``, ``latency_ms``, ``error_type``, ``error``

``tcp``   ``{"kind": "tcp", "host": "10.0.0.3", "port": 5432, "timeout_s": 0.5, "retries": 2}``
          -> ``outcome`` (open/refused/timeout/unresolvable/error), ``connect_ms``,
          ``attempts``, ``ip``, ``error_type``, ``error``.  A host name is resolved at
          ``server`` (Docker's resolver) first.

``http``  ``{"kind": "http", "url": "http://backend:3011/api/health", "samples": 20,
          "warmup": 3, "timeout_s": 2.0, "headers": {...}, "new_connection": true}``
          -> ``samples``: list of ``{"dns_ms", "connect_ms", "first_byte_ms", "total_ms",
          "status"}``, ``errors``: list of ``{"error_type", "error"}``

``postgres`` ``{"kind": "postgres", "host": ..., "port": 5432, "user": ..., "password": ...,
          "dbname": ..., "timeout_s": 2.0}`` -> ``ok``, ``response_ms``, ``server_version``,
          ``error_type``, ``error``  (the password never appears in a result)

``redis`` ``{"kind": "redis", "host": ..., "port": 6379, "password": ..., "timeout_s": 2.0}``
          -> ``ok``, ``response_ms``, ``error_type``, ``error``

Every result also carries ``kind`` and ``method`` (which probe method produced it).
"""

from __future__ import annotations

from typing import Any

Job = dict[str, Any]
Result = dict[str, Any]

JOB_KINDS = ("dns", "tcp", "http", "postgres", "redis")
DOCKER_DNS = "127.0.0.11"

#: fields each job kind must carry
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "dns": ("name",),
    "tcp": ("host", "port"),
    "http": ("url",),
    "postgres": ("host", "port"),
    "redis": ("host", "port"),
}
DEFAULT_TIMEOUTS_S = {"dns": 1.0, "tcp": 0.5, "http": 2.0, "postgres": 2.0, "redis": 2.0}
#: slack added to every worker's deadline (fork, interpreter start, JSON)
DEADLINE_SLACK_S = 5.0


def validate_job(job: Job) -> None:
    """Raise ParameterError naming what is wrong with ``job``."""
    from revivadiag.errors import ParameterError

    kind = job.get("kind")
    if kind not in JOB_KINDS:
        raise ParameterError("job kind", kind, f"one of {', '.join(JOB_KINDS)}")
    missing = [f for f in REQUIRED_FIELDS[kind] if f not in job]
    if missing:
        raise ParameterError(f"{kind} job", job.get("tag", ""), f"missing {', '.join(missing)}")


def job_budget_s(job: Job) -> float:
    """Worst-case seconds one job can take (timeouts x attempts, samples, backoff)."""
    kind = str(job.get("kind"))
    timeout = float(job.get("timeout_s", DEFAULT_TIMEOUTS_S.get(kind, 2.0)))
    if kind == "http":
        return timeout * (int(job.get("samples", 20)) + int(job.get("warmup", 3))) + timeout
    attempts = 1 + int(job.get("retries", 1))
    dns = float(job.get("dns_timeout_s", 1.0)) if kind in ("tcp", "redis", "postgres") else 0.0
    return dns + timeout * attempts + 1.0 * (attempts - 1)


def batch_deadline_s(jobs: list[Job], concurrency: int) -> float:
    """A hard deadline for one container's batch run ``concurrency`` at a time."""
    if not jobs:
        return DEADLINE_SLACK_S
    budgets = sorted((job_budget_s(j) for j in jobs), reverse=True)
    waves = -(-len(jobs) // max(1, concurrency))
    serial = sum(job_budget_s(j) for j in jobs if j.get("kind") in ("http", "postgres"))
    return budgets[0] * waves + serial + DEADLINE_SLACK_S


def failure_result(job: Job, error_type: str, error: str, method: str) -> Result:
    """The result of a job that could not run at all (container gone, no tools, deadline)."""
    kind = str(job.get("kind", ""))
    res: Result = {"kind": kind, "method": method, "error_type": error_type, "error": error}
    if kind == "dns":
        res.update(name=job.get("name", ""), server=job.get("server", DOCKER_DNS), answers=[],
                   rcode="ERROR", latency_ms=None, attempts=0)
    elif kind == "tcp":
        res.update(host=job.get("host", ""), port=job.get("port"), ip="", outcome="error",
                   connect_ms=None, dns_ms=None, attempts=0)
    elif kind == "http":
        from revivadiag.engine.netprobe.http_probe import strip_credentials

        res.update(url=strip_credentials(str(job.get("url", ""))), ip="", samples=[], warmup=0,
                   errors=[{"error_type": error_type, "error": error}])
    elif kind in ("postgres", "redis"):
        res.update(host=job.get("host", ""), port=job.get("port"), ip="", ok=False,
                   auth_failed=False, response_ms=None, server_version="")
    if "tag" in job:
        res["tag"] = job["tag"]
    return res
