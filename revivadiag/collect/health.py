"""The ``health`` frame: per service and check path, the seed's health rules.

Checks (the ``check`` column):

``http``               the backend's ``/health`` over HTTP from inside the network: a probe
                       engine ``http`` job run in the frontend's namespace when the frontend
                       shares a network with the backend, else in the backend's own
``postgres_internal``  psycopg from the backend's namespace to ``<database service>:5432``
``postgres_external``  psycopg from this process to the published port on 127.0.0.1
``redis_internal``     AUTH + PING from the backend's namespace to ``<redis service>:6379``
``redis_external``     AUTH + PING from this process to the published port on 127.0.0.1
``docker``             Docker's own view: state and healthcheck status, one row per container

The rules are in :mod:`revivadiag.collect.health_rules` (HTTP 200 -> healthy, other status
or slower than ``degraded_ms`` -> degraded, exception -> unhealthy, could not run -> unknown).
Credentials come from the containers' environment (:mod:`revivadiag.collect.credentials`),
stay in memory and are registered with a :class:`~revivadiag.redact.Scrubber` through which
every free-text field passes. Host checks only go to 127.0.0.1, and only when the engine is
local (a remote engine's published ports are not on this host).

>>> cfg = HealthConfig(degraded_ms=500.0)
>>> cfg.backend, cfg.backend_port, cfg.backend_path
('backend', 3011, '/health')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from revivadiag.collect import health_rules as hr
from revivadiag.collect.containers import compose_identity, container_name
from revivadiag.collect.credentials import Credentials, credentials_from_env
from revivadiag.collect.env import raw_env
from revivadiag.collect.host_checks import check_postgres, check_redis
from revivadiag.collect.inventory import RawInventory
from revivadiag.errors import EngineError, ParameterError, RevivadiagError
from revivadiag.redact import Scrubber
from revivadiag.schemas import to_frame

HealthConfig = hr.HealthConfig
Row = dict[str, Any]
Inspect = Mapping[str, Any]
LOOPBACK = "127.0.0.1"
_ANY_ADDRESS = ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1")


class Prober(Protocol):
    """What the health checks need of the probe engine."""

    def run(self, batches: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """Run each container's jobs in its network namespace; results in job order."""
        ...


@dataclass(frozen=True)
class Member:
    """One container of a service, as the checks see it."""

    service: str
    name: str
    container_id: str
    running: bool
    inspect: Inspect

    def networks(self) -> set[str]:
        return set(((self.inspect.get("NetworkSettings") or {}).get("Networks") or {}).keys())


def members(inv: RawInventory) -> dict[str, Member]:
    """service -> its first container (a running one when there is one)."""
    out: dict[str, Member] = {}
    for inspect in inv.containers:
        _, service, _ = compose_identity(inspect, inv.project)
        running = bool((inspect.get("State") or {}).get("Running"))
        member = Member(service, container_name(inspect), str(inspect.get("Id", "")), running,
                        inspect)
        if service not in out or (running and not out[service].running):
            out[service] = member
    return out


def find_service(by_service: Mapping[str, Member], name: str, port: int) -> Member | None:
    """The service called ``name``, else the one whose container exposes ``port``/tcp."""
    if name in by_service:
        return by_service[name]
    spec = f"{port}/tcp"
    for member in by_service.values():
        if spec in ((member.inspect.get("Config") or {}).get("ExposedPorts") or {}):
            return member
    return None


def published_port(inspect: Inspect, port: int) -> tuple[str, int] | None:
    """(host ip, host port) publishing ``port``/tcp; the configured binding when stopped."""
    spec = f"{port}/tcp"
    live = ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).get(spec)
    configured = ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).get(spec)
    for binding in (live or configured or []):
        if binding.get("HostPort"):
            return str(binding.get("HostIp") or ""), int(binding["HostPort"])
    return None


def credentials_of(by_service: Mapping[str, Member], cfg: HealthConfig) -> Credentials:
    """Credentials from the backend, database and redis containers' environment."""
    def env_of(name: str, port: int) -> dict[str, str]:
        member = find_service(by_service, name, port)
        return raw_env(member.inspect) if member else {}
    return credentials_from_env(env_of(cfg.backend, cfg.backend_port),
                                env_of(cfg.database, cfg.database_port),
                                env_of(cfg.redis, cfg.redis_port))


def collect_health(
    inv: RawInventory,
    prober: Prober | None,
    *,
    config: HealthConfig | None = None,
    credentials: Credentials | None = None,
    local_engine: bool = True,
    scrubber: Scrubber | None = None,
    why_no_prober: str = "no probe engine",
) -> pd.DataFrame:
    """The ``health`` frame of the project in ``inv`` (see the module doc for each check)."""
    cfg = config or HealthConfig()
    by_service = members(inv)
    creds = credentials or credentials_of(by_service, cfg)
    scrub = creds.register(scrubber if scrubber is not None else Scrubber())
    with ThreadPoolExecutor(max_workers=1) as pool:  # host checks overlap the probe engine's
        external = pool.submit(external_rows, by_service, creds, cfg, scrub, local_engine)
        rows = internal_rows(by_service, prober, creds, cfg, scrub, why_no_prober)
        rows += external.result()
    rows += [hr.docker_row(m, compose_identity(m, inv.project)[1], scrub) for m in inv.containers]
    rows += [hr.vanished_row(s, compose_identity(s, inv.project)[1]) for s in inv.vanished]
    return to_frame("health", rows)


def internal_jobs(
    backend: Member, database: Member | None, redis: Member | None, http_source: Member | None,
    creds: Credentials, cfg: HealthConfig,
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """container id -> [(check, job)] for the checks run from inside the network."""
    plan: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    if http_source is not None and http_source.running:
        url = f"http://{backend.service}:{cfg.backend_port}{cfg.backend_path}"
        plan.setdefault(http_source.container_id, []).append(("http", {
            "kind": "http", "url": url, "samples": 1, "warmup": 0,
            "timeout_s": cfg.timeout_s, "new_connection": True}))
    if not backend.running:
        return plan
    jobs = plan.setdefault(backend.container_id, [])
    if database is not None:
        jobs.append(("postgres_internal", {
            "kind": "postgres", "host": database.service, "port": cfg.database_port,
            "user": creds.db_user, "password": creds.db_password, "dbname": creds.db_name,
            "timeout_s": cfg.timeout_s}))
    if redis is not None:
        jobs.append(("redis_internal", {
            "kind": "redis", "host": redis.service, "port": cfg.redis_port,
            "password": creds.redis_password, "timeout_s": cfg.timeout_s}))
    return plan


def http_source_of(by_service: Mapping[str, Member], backend: Member, cfg: HealthConfig) -> Member:
    """The frontend when it runs on a network shared with the backend, else the backend."""
    front = by_service.get(cfg.http_from)
    if front is not None and front.running and front.networks() & backend.networks():
        return front
    return backend


def internal_rows(
    by_service: Mapping[str, Member], prober: Prober | None, creds: Credentials,
    cfg: HealthConfig, scrub: Scrubber, why_no_prober: str,
) -> list[Row]:
    """``http``, ``postgres_internal`` and ``redis_internal`` rows."""
    backend = find_service(by_service, cfg.backend, cfg.backend_port)
    database = find_service(by_service, cfg.database, cfg.database_port)
    redis = find_service(by_service, cfg.redis, cfg.redis_port)
    if backend is None:
        why = f"no {cfg.backend!r} service (nor one exposing {cfg.backend_port}/tcp)"
        return [hr.unknown(cfg.backend, "", c, "", why)
                for c in ("http", "postgres_internal", "redis_internal")]
    targets = {
        "http": (backend, f"http://{backend.service}:{cfg.backend_port}{cfg.backend_path}"),
        "postgres_internal": (database, f"{database.service}:{cfg.database_port}"
                              if database else ""),
        "redis_internal": (redis, f"{redis.service}:{cfg.redis_port}" if redis else ""),
    }
    source = http_source_of(by_service, backend, cfg)
    plan = internal_jobs(backend, database, redis, source, creds, cfg)
    results, error = _run(prober, plan, why_no_prober)
    rows: list[Row] = []
    for check, (member, target) in targets.items():
        if member is None:
            wanted = cfg.database if check.startswith("postgres") else cfg.redis
            rows.append(hr.unknown(wanted, "", check, "", "no such service"))
            continue
        result = results.get(check)
        if result is not None:
            rows.append(_result_row(check, member, target, result, cfg, scrub))
        elif error:
            rows.append(hr.unknown(member.service, member.name, check, target, error))
        else:
            where = source if check == "http" else backend
            rows.append(_not_running_row(check, member, target, where))
    return rows


def _result_row(check: str, member: Member, target: str, result: Mapping[str, Any],
                cfg: HealthConfig, scrub: Scrubber) -> Row:
    if check == "http":
        return hr.http_row(member.service, member.name, target, result, cfg, scrub)
    return hr.probe_row(member.service, member.name, check, target, result, cfg, scrub)


def _not_running_row(check: str, member: Member, target: str, source: Member) -> Row:
    """The check's source container is not running: the target is down or unknown."""
    why = f"container {source.name} is not running"
    if check == "http":  # the backend itself is down (http_source_of fell back to it)
        return hr.row(member.service, member.name, check, target, "unhealthy", None,
                      hr.NOT_FOUND, why, "")
    return hr.unknown(member.service, member.name, check, target,
                      f"{why}: cannot probe from inside the network", hr.NOT_FOUND)


def _run(prober: Prober | None, plan: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
         why_no_prober: str) -> tuple[dict[str, Mapping[str, Any]], str]:
    """check -> result of running ``plan``; or ({}, reason) when nothing could run."""
    if not plan:
        return {}, ""
    if prober is None:
        return {}, why_no_prober
    batches = {cid: [job for _, job in jobs] for cid, jobs in plan.items()}
    try:
        results = prober.run(batches)
    except (EngineError, ParameterError):
        raise  # the engine went away, or the probe method cannot work here
    except (RevivadiagError, OSError) as exc:
        return {}, f"probe engine failed: {type(exc).__name__}"
    out: dict[str, Mapping[str, Any]] = {}
    for cid, jobs in plan.items():
        for (check, _), result in zip(jobs, results.get(cid) or [], strict=False):
            out[check] = result
    return out, ""


def external_rows(by_service: Mapping[str, Member], creds: Credentials, cfg: HealthConfig,
                  scrub: Scrubber, local_engine: bool) -> list[Row]:
    """``postgres_external`` and ``redis_external`` rows (psycopg / redis-py from here)."""
    rows: list[Row] = []
    for check, name, port in (("postgres_external", cfg.database, cfg.database_port),
                              ("redis_external", cfg.redis, cfg.redis_port)):
        member = find_service(by_service, name, port)
        if member is None:
            rows.append(hr.unknown(name, "", check, "", "no such service", method="host"))
            continue
        rows.append(_external_row(check, member, port, creds, cfg, scrub, local_engine))
    return rows


def _external_row(check: str, member: Member, port: int, creds: Credentials, cfg: HealthConfig,
                  scrub: Scrubber, local_engine: bool) -> Row:
    binding = published_port(member.inspect, port)
    if binding is None:
        return hr.unknown(member.service, member.name, check, "",
                          f"port {port}/tcp is not published on the host", method="host")
    host_ip, host_port = binding
    target = f"{LOOPBACK}:{host_port}"
    if not local_engine:
        return hr.unknown(member.service, member.name, check, target,
                          "the engine is remote: its published ports are not on this host",
                          method="host")
    if host_ip not in _ANY_ADDRESS and not host_ip.startswith("127."):
        return hr.unknown(member.service, member.name, check, f"{host_ip}:{host_port}",
                          "published on a non-loopback address only; not probed", method="host")
    addr = host_ip if host_ip.startswith("127.") else LOOPBACK
    if check == "postgres_external":
        outcome = check_postgres(addr, host_port, creds.db_user, creds.db_password,
                                 creds.db_name, cfg.timeout_s)
    else:
        outcome = check_redis(addr, host_port, creds.redis_password, cfg.timeout_s)
    return hr.outcome_row(member.service, member.name, check, f"{addr}:{host_port}", outcome,
                          cfg, scrub, "host")
