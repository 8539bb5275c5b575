"""The probe job format shared by every probe method (setns, sidecar, exec).

A job is a plain JSON-able dict so that the same batch can run in a forked worker that
entered a container's network namespace, in a sidecar container sharing that namespace,
or through ``docker exec``. Results are dicts too, one per job, in the same order.

Job kinds and their result fields:

``dns``   ``{"kind": "dns", "name": "api", "server": "127.0.0.11", "timeout_s": 0.25,
          "retries": 2}`` (each retry waits twice as long as the one before; with
          ``"forwarded": true``, for names Docker sends upstream, one at a time)
          -> ``answers`` (list[str]), ``rcode``, ``latency_ms``, ``attempts``,
          ``error_type``, ``error``

``tcp``   ``{"kind": "tcp", "host": "10.0.0.3", "port": 5432, "timeout_s": 0.5, "retries": 2}``
          -> ``outcome`` (open/refused/timeout/unresolvable/error), ``connect_ms``,
          ``attempts``, ``ip``, ``error_type``, ``error``.  A host name is resolved at
          ``server`` (Docker's resolver; "" for the system's) first, once per batch;
          ``prefer_ips`` picks among its answers; ``retry_on`` lists the error types that
          are retried (with exponential backoff + jitter, ``backoff_s``). With
          ``"quiet_samples": N`` an open connect is repeated N times (after a warm-up one)
          once the whole batch is done, a few at a time: ``quiet_ms`` (list of float) are
          those uncontended times.

``http``  ``{"kind": "http", "url": "http://api:8000/api/health", "samples": 20,
          "warmup": 3, "timeout_s": 2.0, "headers": {...}, "new_connection": true,
          "via_proxy": false, "method": "GET", "verify_tls": true}``
          -> ``samples``: list of ``{"dns_ms", "connect_ms", "first_byte_ms", "total_ms",
          "status"}`` (cumulative from the request's start, like ``curl -w``; warm-up ones
          dropped), ``errors``: list of ``{"error_type", "error"}``, ``error_type`` and
          ``error`` (the most frequent failure). 502/503/504 with ``via_proxy`` is a
          PROXY_ERROR; after 3 failures in a row the rest are skipped (one error says so).

``postgres`` ``{"kind": "postgres", "host": ..., "port": 5432, "user": ..., "password": ...,
          "dbname": ..., "timeout_s": 2.0}`` -> ``ok``, ``auth_failed``, ``response_ms``,
          ``server_version``, ``ip``, ``error_type``, ``error``  (psycopg where the probe
          runs; the password never appears in a result)

``redis`` ``{"kind": "redis", "host": ..., "port": 6379, "password": ..., "user": "",
          "timeout_s": 2.0}`` -> ``ok`` (AUTH then PING answered +PONG), ``auth_failed``,
          ``response_ms``, ``ip``, ``error_type``, ``error``

``sockets`` ``{"kind": "sockets", "states": ["ESTABLISHED", "LISTEN"], "max_rows": 4000}``
          -> ``sockets``: list of ``{"family", "state", "local", "lport", "remote", "rport",
          "timer" (off/retransmit/keepalive/timewait/persist), "timer_ms", "retrans",
          "recv_q", "send_q", "inode", "last_send_ms", "last_recv_ms", "last_ack_ms"}``, the
          namespace's TCP sockets from the kernel's INET_DIAG (what ``ss -tino`` shows, see
          :mod:`revivadiag.engine.netprobe.sockdiag`); ``truncated``: rows left out

``interfaces`` ``{"kind": "interfaces"}`` -> ``interfaces``: list of ``{"name", "index",
          "mtu", "ipv4"}`` of the namespace's network interfaces (run in the engine host's
          namespace by :func:`revivadiag.engine.hostnet.host_interfaces`)

Every result also carries ``kind``, ``method`` (which probe method produced it) and
``elapsed_ms``, and echoes the job's ``tag`` when it has one. ``error_type`` is one of the
seed's six NetworkErrorType values, or empty when the probe succeeded or when what failed
was not the network (a rejected password, a missing tool).
"""

from __future__ import annotations

from typing import Any

Job = dict[str, Any]
Result = dict[str, Any]

JOB_KINDS = ("dns", "tcp", "http", "postgres", "redis", "sockets", "interfaces")
DOCKER_DNS = "127.0.0.11"

#: fields each job kind must carry
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "dns": ("name",),
    "tcp": ("host", "port"),
    "http": ("url",),
    "postgres": ("host", "port"),
    "redis": ("host", "port"),
    "sockets": (),
    "interfaces": (),
}
DEFAULT_TIMEOUTS_S = {"dns": 0.25, "tcp": 0.5, "http": 2.0, "postgres": 2.0, "redis": 2.0,
                      "sockets": 2.0, "interfaces": 1.0}
#: a name lookup (before tcp/http/postgres/redis): 0.25 + 0.5 + 1.0 s at worst
LOOKUP_BUDGET_S = 1.75
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
    if kind == "dns":
        return timeout * float(2 ** (1 + int(job.get("retries", 2))) - 1)
    if kind == "sockets":
        return 2 * timeout  # one dump per address family
    attempts = 1 + int(job.get("retries", 1))
    return LOOKUP_BUDGET_S + timeout * attempts + 1.0 * (attempts - 1)


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
    elif kind == "sockets":
        res.update(sockets=[], truncated=0)
    elif kind == "interfaces":
        res.update(interfaces=[])
    if "tag" in job:
        res["tag"] = job["tag"]
    return res
