"""The ``health`` frame: per service and check path, the seed's health rules.

Which services are checked comes from the stack's roles
(:class:`~revivadiag.collect.roles.Roles`), never from their names. Checks (``check``):

``http``               the backend's learned HTTP path (its healthcheck's, else ``/``) from
                       inside the network: a probe engine ``http`` job run in the proxy's
                       namespace when the proxy shares a network with the backend, else in
                       the backend's own
``postgres_internal``  psycopg to ``<database service>:<its port>``, for every PostgreSQL
                       database, from the namespace of a service that uses it (the backend
                       first; else the database's own)
``postgres_external``  psycopg from this process to the published port on 127.0.0.1
``redis_internal``     AUTH + PING to ``<cache service>:<its port>``, for every Redis-like
                       cache, from a user's namespace as above
``redis_external``     AUTH + PING from this process to the published port on 127.0.0.1
``docker``             Docker's own view: state and healthcheck status, one row per container
                       (``unknown`` when the service defines no healthcheck)

A database or cache whose software has no check here (MySQL, memcached, ...) gets an
``unknown`` row saying so. The rules are in :mod:`revivadiag.collect.health_rules` (HTTP 200
-> healthy, other status or slower than ``degraded_ms`` -> degraded, exception -> unhealthy,
could not run -> unknown). Credentials come from the environment of the services that use
each database or cache (:mod:`revivadiag.collect.credentials`), stay in memory and are
registered with a :class:`~revivadiag.redact.Scrubber` through which every free-text field
passes. Host checks only go to 127.0.0.1, and only when the engine is local.

>>> mentions({"DATABASE_URL": "postgresql://u:p@db:5432/app"}, {"db"})
True
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from revivadiag import seed
from revivadiag.collect import health_rules as hr
from revivadiag.collect.containers import compose_identity, container_name, parse_containers
from revivadiag.collect.credentials import Credentials, credentials_from_env
from revivadiag.collect.host_checks import check_postgres, check_redis
from revivadiag.collect.inventory import RawInventory
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.errors import EngineError, ParameterError, RevivadiagError
from revivadiag.redact import Scrubber, raw_env
from revivadiag.schemas import to_frame

HealthConfig = hr.HealthConfig
Row = dict[str, Any]
Inspect = Mapping[str, Any]
LOOPBACK = "127.0.0.1"
_ANY_ADDRESS = ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1")
_WORDS = re.compile(r"[A-Za-z0-9_.-]+")
#: software (as :mod:`revivadiag.collect.roles` names it) each client can log in to
CHECKABLE = {
    "postgres_internal": ("postgres", "postgresql", "postgis", "timescaledb"),
    "redis_internal": ("redis", "valkey", "keydb"),
}
CHECKABLE["postgres_external"] = CHECKABLE["postgres_internal"]
CHECKABLE["redis_external"] = CHECKABLE["redis_internal"]
#: detail of a check not run because the caller asked to skip its service
SKIPPED = "not probed: circuit open"


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


def roles_of(inv: RawInventory, roles: Roles | None) -> Roles:
    """``roles``, or roles inferred from the inventory alone (names, images, healthchecks)."""
    if roles is not None:
        return roles
    from revivadiag.collect.stack import health_paths

    return Roles(infer_roles(parse_containers(inv.containers, inv.vanished, inv.project),
                             endpoints=parse_endpoints(inv.containers, inv.project),
                             health_paths=health_paths(inv)))


def published_port(inspect: Inspect, port: int) -> tuple[str, int] | None:
    """(host ip, host port) publishing ``port``/tcp; the configured binding when stopped."""
    spec = f"{port}/tcp"
    live = ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).get(spec)
    configured = ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).get(spec)
    for binding in (live or configured or []):
        if binding.get("HostPort"):
            return str(binding.get("HostIp") or ""), int(binding["HostPort"])
    return None


def mentions(env: Mapping[str, str], names: set[str]) -> bool:
    """Whether any value of ``env`` names one of ``names`` (as a whole word, e.g. a URL host)."""
    lowered = {n.lower() for n in names if n}
    return any(w.lower() in lowered for v in env.values() for w in _WORDS.findall(str(v)))


def _names(member: Member) -> set[str]:
    nets = ((member.inspect.get("NetworkSettings") or {}).get("Networks") or {}).values()
    aliases = {str(a) for n in nets for a in ((n or {}).get("Aliases") or [])}
    return {member.service, member.name, *aliases}


def users_of(by_service: Mapping[str, Member], target: Member, roles: Roles) -> list[Member]:
    """Services whose environment names ``target`` (the backend first)."""
    names = _names(target)
    found = [m for s, m in by_service.items()
             if s != target.service and mentions(raw_env(m.inspect), names)]
    return sorted(found, key=lambda m: (roles.role(m.service) != "backend", m.service))


def _client(by_service: Mapping[str, Member], target: Member, roles: Roles) -> Member:
    """Where to check ``target`` from: a running user sharing a network, else itself."""
    users = users_of(by_service, target, roles)
    backend = roles.service("backend")
    if backend is not None and backend in by_service and by_service[backend] not in users:
        users.append(by_service[backend])
    for m in users:
        if m.running and m.networks() & target.networks():
            return m
    return target


def credentials_for(by_service: Mapping[str, Member], roles: Roles,
                    database: Member | None, cache: Member | None) -> Credentials:
    """Credentials for ``database`` and ``cache``, from the env of whoever uses them."""
    def env(member: Member | None) -> dict[str, str]:
        return raw_env(member.inspect) if member is not None else {}

    def user_env(target: Member | None) -> dict[str, str]:
        if target is None:
            return {}
        users = users_of(by_service, target, roles)
        return env(users[0]) if users else {}

    db = credentials_from_env(user_env(database), env(database), {})
    rd = credentials_from_env(user_env(cache), {}, env(cache))
    return Credentials(db.db_user, db.db_password, db.db_name, rd.redis_password)


def credentials_of(by_service: Mapping[str, Member], roles: Roles | None = None) -> Credentials:
    """Credentials of the first database and the first cache (see :func:`credentials_for`)."""
    known = roles if roles is not None else Roles(infer_roles(_frame_of(by_service)))
    db = next((by_service[s] for s in known.services("database") if s in by_service), None)
    cache = next((by_service[s] for s in known.services("cache") if s in by_service), None)
    return credentials_for(by_service, known, db, cache)


def all_credentials(by_service: Mapping[str, Member], roles: Roles) -> list[Credentials]:
    """Credentials of every database and cache (to register their secrets)."""
    out = []
    for role in ("database", "cache"):
        for s in roles.services(role):
            if s in by_service:
                m = by_service[s]
                out.append(credentials_for(by_service, roles, m if role == "database" else None,
                                           m if role == "cache" else None))
    return out


def _frame_of(by_service: Mapping[str, Member]) -> pd.DataFrame:
    return parse_containers([m.inspect for m in by_service.values()], [], None)


def collect_health(inv: RawInventory, prober: Prober | None, **options: Any) -> pd.DataFrame:
    """The ``health`` frame of the project in ``inv``: :func:`health_rows` (whose keyword
    ``options`` it takes: roles, config, credentials, local_engine, scrubber, why_no_prober,
    skip) as a frame. See the module doc for each check."""
    return to_frame("health", health_rows(inv, prober, **options))


def health_rows(
    inv: RawInventory,
    prober: Prober | None,
    *,
    roles: Roles | None = None,
    config: HealthConfig | None = None,
    credentials: Credentials | None = None,
    local_engine: bool = True,
    scrubber: Scrubber | None = None,
    why_no_prober: str = "no probe engine",
    skip: Collection[str] = (),
) -> list[Row]:
    """The ``health`` rows of the project in ``inv``, as dicts (:func:`collect_health` makes
    them a frame; a monitor that checks every few seconds folds the dicts in directly).

    ``credentials`` replaces what the containers' environment gives, for every check.
    ``skip``: services whose probes are not run this time (a monitor's open circuit): their
    ``http`` / database / cache checks give an ``unknown`` row saying so (:data:`SKIPPED`);
    their ``docker`` rows are read as always.
    """
    cfg = config or HealthConfig()
    known = roles_of(inv, roles)
    by_service = members(inv)
    scrub = scrubber if scrubber is not None else Scrubber()
    for creds in all_credentials(by_service, known):
        creds.register(scrub)
    if credentials is not None:
        credentials.register(scrub)
    plan = Plan(by_service, known, credentials, cfg, frozenset(skip))
    with ThreadPoolExecutor(max_workers=1) as pool:  # host checks overlap the probe engine's
        external = pool.submit(external_rows, plan, scrub, local_engine)
        rows = internal_rows(plan, prober, scrub, why_no_prober)
        rows += external.result()
    rows += [hr.docker_row(m, compose_identity(m, inv.project)[1], scrub) for m in inv.containers]
    rows += [hr.vanished_row(s, compose_identity(s, inv.project)[1]) for s in inv.vanished]
    return rows


@dataclass
class Plan:
    """What the checks work from: members by service, roles, credentials and thresholds."""

    by_service: Mapping[str, Member]
    roles: Roles
    credentials: Credentials | None
    cfg: HealthConfig
    #: services not probed this time (see :func:`collect_health`)
    skip: frozenset[str] = frozenset()

    def creds(self, target: Member, role: str) -> Credentials:
        if self.credentials is not None:
            return self.credentials
        return credentials_for(self.by_service, self.roles,
                               target if role == "database" else None,
                               target if role == "cache" else None)

    def port(self, member: Member) -> int:
        port = self.roles.port(member.service)
        if port is not None:
            return port
        role = self.roles.role(member.service) or ""
        return seed.ROLE_DEFAULT_PORTS.get(role, (0,))[0]

    def stores(self) -> list[tuple[str, str, Member]]:
        """(check, role, member) of every database and cache the checks can talk to."""
        out = []
        for role, check in (("database", "postgres_internal"), ("cache", "redis_internal")):
            for s in self.roles.services(role):
                if s in self.by_service:
                    out.append((check, role, self.by_service[s]))
        return out


def checkable(check: str, software: str) -> bool:
    """Whether the probe engine can log in to ``software`` with ``check``'s client."""
    return software in ("", *CHECKABLE[check])


def http_source_of(plan: Plan, backend: Member) -> Member:
    """The proxy when it runs on a network shared with the backend, else the backend."""
    proxy = plan.roles.service("proxy")
    front = plan.by_service.get(proxy) if proxy else None
    if front is not None and front.running and front.networks() & backend.networks():
        return front
    return backend


def internal_rows(plan: Plan, prober: Prober | None, scrub: Scrubber,
                  why_no_prober: str) -> list[Row]:
    """``http``, ``postgres_internal`` and ``redis_internal`` rows."""
    cfg = plan.cfg
    backend_name = plan.roles.service("backend")
    backend = plan.by_service.get(backend_name) if backend_name else None
    targets: list[tuple[str, Member, str, Member, dict[str, Any]]] = []
    rows: list[Row] = []
    if backend is None:
        rows.append(hr.unknown(backend_name or "", "", "http", "",
                               "no service holds the role backend"))
    else:
        path = plan.roles.http_path(backend.service) or "/"
        url = f"http://{backend.service}:{plan.port(backend)}{path}"
        if backend.service in plan.skip:
            rows.append(hr.unknown(backend.service, backend.name, "http", url, SKIPPED))
        else:
            targets.append(("http", backend, url, http_source_of(plan, backend), {
                "kind": "http", "url": url, "samples": 1, "warmup": 0,
                "timeout_s": cfg.timeout_s, "new_connection": True}))
    for check, role, member in plan.stores():
        software = plan.roles.software(member.service)
        target = f"{member.service}:{plan.port(member)}"
        if not checkable(check, software):
            rows.append(hr.unknown(member.service, member.name, check, target,
                                   f"no {check.split('_')[0]} check for {software}"))
            continue
        if member.service in plan.skip:
            rows.append(hr.unknown(member.service, member.name, check, target, SKIPPED))
            continue
        creds = plan.creds(member, role)
        job: dict[str, Any] = ({
            "kind": "postgres", "host": member.service, "port": plan.port(member),
            "user": creds.db_user, "password": creds.db_password, "dbname": creds.db_name,
            "timeout_s": cfg.timeout_s} if role == "database" else {
            "kind": "redis", "host": member.service, "port": plan.port(member),
            "password": creds.redis_password, "timeout_s": cfg.timeout_s})
        targets.append((check, member, target, _client(plan.by_service, member, plan.roles),
                        job))
    runnable = [(i, t) for i, t in enumerate(targets) if t[3].running]
    batches: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, (_c, _m, _t, source, job) in runnable:
        batches.setdefault(source.container_id, []).append((i, job))
    results, error = _run(prober, batches, why_no_prober)
    for i, (check, member, target, source, _job) in enumerate(targets):
        result = results.get(i)
        if result is not None and source is not member and result.get("error_type") == hr.NOT_FOUND:
            rows.append(hr.unknown(member.service, member.name, check, target,  # it vanished
                                   f"container {source.name} stopped during the check: cannot "
                                   "probe from inside the network", hr.NOT_FOUND))
        elif result is not None:
            rows.append(_result_row(check, member, target, result, cfg, scrub))
        elif error:
            rows.append(hr.unknown(member.service, member.name, check, target, error))
        else:
            rows.append(_not_running_row(check, member, target, source))
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


def _run(prober: Prober | None, plan: Mapping[str, Sequence[tuple[int, dict[str, Any]]]],
         why_no_prober: str) -> tuple[dict[int, Mapping[str, Any]], str]:
    """target index -> result of running ``plan``; or ({}, reason) when nothing could run."""
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
    out: dict[int, Mapping[str, Any]] = {}
    for cid, jobs in plan.items():
        for (index, _), result in zip(jobs, results.get(cid) or [], strict=False):
            out[index] = result
    return out, ""


def external_rows(plan: Plan, scrub: Scrubber, local_engine: bool) -> list[Row]:
    """``postgres_external`` and ``redis_external`` rows (psycopg / redis-py from here)."""
    rows: list[Row] = []
    for check, role, member in plan.stores():
        check = check.replace("_internal", "_external")
        if not checkable(check, plan.roles.software(member.service)):
            continue
        if member.service in plan.skip:
            rows.append(hr.unknown(member.service, member.name, check, "", SKIPPED,
                                   method="host"))
            continue
        rows.append(_external_row(check, member, plan.port(member), plan.creds(member, role),
                                  plan.cfg, scrub, local_engine))
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
