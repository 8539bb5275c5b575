"""Readiness before a migration and the data checks after it.

:func:`data_fingerprint` finds the database and cache containers by role, writes a
``pg_dump`` of the database to a local file in ``ctx.run_dir``, and records the row count and
a checksum of every table (md5 over the sorted md5 of each row's text) and, for Redis, the key
count and the hash of a sample of values (each value read according to its type).
:func:`compare_fingerprints` tells what differs; ``verify`` fails on any difference.

How the tools reach the data: PostgreSQL through ``docker exec`` as the container's
``postgres`` OS user over the local socket (peer authentication: no password at all), else
over 127.0.0.1 inside the container with ``PGPASSWORD`` in the exec's environment (never in
an argv); Redis with ``REDISCLI_AUTH`` in the exec's environment, the password taken from the
cache container's own environment (``REDIS_PASSWORD``, ``REDISCLI_AUTH``) or a client's
``REDIS_URL``. SQL and keys travel on stdin. Nothing secret is logged or returned.

Tables left out of the comparison by default: ``configuration_migrations`` (the journal's
mirror is written during the run) and :data:`SQL_MARKER_TABLE` (``sql`` steps' markers);
Redis keys that expire (a TTL) are not sampled. A ``verify`` step may name more tables whose
change is expected (``expect_changed``).

>>> compare_fingerprints({"tables": {"public.users": {"rows": 2, "checksum": "a"}},
...                       "redis": {"keys": 3, "sample": {"k": "h"}}},
...                      {"tables": {"public.users": {"rows": 3, "checksum": "b"}},
...                       "redis": {"keys": 3, "sample": {"k": "h"}}})
['public.users: 2 rows -> 3 rows, checksum differs']
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import docker.errors

from revivadiag.collect.roles import Roles
from revivadiag.engine.stdin import exec_with_stdin_bytes
from revivadiag.errors import StepError
from revivadiag.migrate.model import Context
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.proxies import project_roles
from revivadiag.redact import raw_env, url_parts

#: the table ``sql`` steps record themselves in (created on first use)
SQL_MARKER_TABLE = "revivadiag_sql_applied"
#: tables whose content a migration run changes by design
IGNORED_TABLES = ("public.configuration_migrations", f"public.{SQL_MARKER_TABLE}")
REDIS_SAMPLE = 50
EXEC_TIMEOUT_S = 120.0


def exec_io(client: Any, container: str, argv: list[str], payload: bytes = b"", *,
            user: str = "", environment: Mapping[str, str] | None = None,
            timeout_s: float = EXEC_TIMEOUT_S) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in the container with ``payload`` on stdin; (exit code, stdout, stderr).
    Secrets go in ``environment`` (not shown by ``docker inspect``) or on stdin."""
    try:
        return exec_with_stdin_bytes(client.api, container, argv, payload, timeout_s,
                                     user=user, environment=dict(environment or {}))
    except docker.errors.APIError as exc:
        raise StepError(f"exec {argv[0]} in {container}", str(exc.explanation or exc)) from exc


# ---------------------------------------------------------------- finding the data


def role_container(client: Any, project: str, role: str, roles: Roles) -> dict[str, Any] | None:
    """The running container of the service holding ``role`` (None when the stack has none)."""
    for service in roles.services(role):
        for found in eng.service_containers(client, project, service):
            if (found.get("State") or {}).get("Running"):
                return found
    return None


def _env_of_all(client: Any, project: str) -> list[dict[str, str]]:
    return [raw_env(c) for c in eng.project_containers(client, project)
            if (c.get("State") or {}).get("Running")]


def pg_target(found: Mapping[str, Any]) -> tuple[str, str]:
    """(database, user) the database container serves, from its own environment."""
    env = raw_env(found)
    user = env.get("POSTGRES_USER") or "postgres"
    return env.get("POSTGRES_DB") or user, user


class Psql:
    """``psql`` inside the database container: as its ``postgres`` OS user (peer), else over
    127.0.0.1 with the password from the container's environment."""

    def __init__(self, client: Any, found: Mapping[str, Any]) -> None:
        self.client = client
        self.name = eng.name_of(found)
        self.db, self.user = pg_target(found)
        self._password = raw_env(found).get("POSTGRES_PASSWORD", "")
        self.how = "peer"
        code, _out, _err = self._run(["psql", "-X", "-At", "-d", self.db, "-c", "select 1"])
        if code != 0:
            self.how = "password"
            code, _out, err = self._run(["psql", "-X", "-At", "-d", self.db, "-c", "select 1"])
            if code != 0:
                raise StepError(f"psql in {self.name}", "cannot log in to the database "
                                f"({err.decode(errors='replace').strip()[-200:]})")

    def __repr__(self) -> str:
        return f"Psql({self.name!r}, db={self.db!r}, how={self.how!r})"

    def _run(self, argv: list[str], payload: bytes = b"") -> tuple[int, bytes, bytes]:
        if self.how == "peer":
            return exec_io(self.client, self.name, argv, payload, user="postgres")
        return exec_io(self.client, self.name, [*argv[:1], "-h", "127.0.0.1", "-U", self.user,
                                                *argv[1:]], payload,
                       environment={"PGPASSWORD": self._password})

    def query(self, sql: str) -> list[list[str]]:
        """Rows of a query given on stdin (``-At``, fields split on the unit separator)."""
        code, out, err = self._run(["psql", "-X", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                                    "-d", self.db, "-f", "-"], sql.encode())
        if code != 0:
            raise StepError(f"psql in {self.name}", err.decode(errors="replace").strip()[-300:])
        return [line.split("\x1f") for line in out.decode().splitlines() if line]

    def script(self, sql: bytes) -> str:
        """Run a script in one transaction (``--single-transaction``, stop at the first
        error); psql's notices on success, StepError with its complaint otherwise."""
        code, out, err = self._run(["psql", "-X", "-q", "--single-transaction", "-v",
                                    "ON_ERROR_STOP=1", "-d", self.db, "-f", "-"], sql)
        if code != 0:
            raise StepError(f"sql in {self.name}", err.decode(errors="replace").strip()[-400:])
        return out.decode(errors="replace")

    def dump(self, path: Path) -> int:
        """``pg_dump`` of the database into ``path``; bytes written."""
        code, out, err = self._run(["pg_dump", "-d", self.db, "--no-owner"])
        if code != 0:
            raise StepError(f"pg_dump in {self.name}", err.decode(errors="replace").strip()[-300:])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out)
        return len(out)


def table_checksums(psql: Psql) -> dict[str, dict[str, Any]]:
    """``schema.table`` -> rows and checksum, for every user table."""
    tables = [r[0] for r in psql.query(
        "select quote_ident(schemaname)||'.'||quote_ident(tablename) from pg_tables "
        "where schemaname not in ('pg_catalog','information_schema') order by 1;")]
    if not tables:
        return {}
    # table names come from pg_tables through quote_ident, never from input
    parts = [f"select '{t}', count(*), coalesce(md5(string_agg(md5(x::text), '' order by "  # noqa: S608
             f"md5(x::text))), '') from {t} x" for t in tables]
    # table names come from pg_tables through quote_ident, never from input
    rows = psql.query(" union all ".join(parts) + ";")
    return {r[0]: {"rows": int(r[1]), "checksum": r[2]} for r in rows}


def redis_password(found: Mapping[str, Any], others: Iterable[Mapping[str, str]]) -> str:
    env = raw_env(found)
    for key in ("REDISCLI_AUTH", "REDIS_PASSWORD"):
        if env.get(key):
            return env[key]
    for other in others:
        for key in ("REDIS_URL", "REDIS_INTERNAL_URL"):
            if other.get(key) and url_parts(other[key])[1]:
                return url_parts(other[key])[1]
        if other.get("REDIS_PASSWORD"):
            return other["REDIS_PASSWORD"]
    return ""


#: attempts and pause for a redis-cli that fails: a Redis just started on its volume answers
#: LOADING while it replays its append-only file
REDIS_ATTEMPTS, REDIS_PAUSE_S = 5, 1.0
#: first words of the error replies redis-cli prints
REDIS_ERRORS = frozenset({"ERR", "LOADING", "NOAUTH", "WRONGPASS", "MISCONF", "BUSY",
                          "READONLY", "MASTERDOWN", "NOPERM", "Could", "Error:"})


def _redis(client: Any, name: str, password: str, lines: list[str]) -> list[str]:
    payload = ("\n".join(lines) + "\n").encode()
    why = ""
    for attempt in range(REDIS_ATTEMPTS):
        if attempt:
            time.sleep(REDIS_PAUSE_S)
        code, out, err = exec_io(client, name, ["redis-cli", "--no-auth-warning", "--raw"],
                                 payload,
                                 environment={"REDISCLI_AUTH": password} if password else None)
        if code == 0:
            return out.decode(errors="replace").splitlines()
        # redis-cli prints the server's errors on stdout, among values: only lines that are
        # Redis errors are shown (a value may be a session token)
        errors = [ln for ln in out.decode(errors="replace").splitlines()
                  if ln.split(" ", 1)[0] in REDIS_ERRORS]
        why = (err.decode(errors="replace").strip() or "; ".join(errors[-2:])
               or f"exit code {code}")[-200:]
    raise StepError(f"redis-cli in {name}", why)


_READ = {"string": "GET {k}", "hash": "HGETALL {k}", "list": "LRANGE {k} 0 -1",
         "set": "SMEMBERS {k}", "zset": "ZRANGE {k} 0 -1 WITHSCORES"}


def redis_fingerprint(client: Any, found: Mapping[str, Any], password: str,
                      sample: int = REDIS_SAMPLE, keys: Iterable[str] | None = None
                      ) -> dict[str, Any]:
    """Key count and the hash of up to ``sample`` persistent keys' values (sorted keys), or
    of exactly ``keys`` (a later fingerprint compares the same keys)."""
    name = eng.name_of(found)
    count = int((_redis(client, name, password, ["DBSIZE"]) or ["0"])[0] or 0)
    if keys is not None:
        return {"keys": count, "sample": {k: _value_hash(client, name, password, k)
                                          for k in keys}}
    keys = []
    cursor = "0"
    for _ in range(100):  # bounded SCAN
        out = _redis(client, name, password, [f"SCAN {cursor} COUNT 500"])
        if not out:
            break
        cursor, keys = out[0], keys + out[1:]
        if cursor == "0" or len(keys) >= 20 * sample:
            break
    hashes: dict[str, str] = {}
    for key in sorted(set(keys)):
        if len(hashes) >= sample or any(c.isspace() for c in key) or '"' in key:
            continue
        ttl = (_redis(client, name, password, [f"TTL {key}"]) or [""])[0]
        if ttl != "-1":
            continue
        digest = _value_hash(client, name, password, key)
        if digest:
            hashes[key] = digest
    return {"keys": count, "sample": hashes}


def _value_hash(client: Any, name: str, password: str, key: str) -> str:
    """sha256 of a key's type and value ("" when the key is gone or of another type)."""
    kind = (_redis(client, name, password, [f"TYPE {key}"]) or ["none"])[0]
    if kind not in _READ:
        return ""
    values = _redis(client, name, password, [_READ[kind].format(k=key)])
    if kind in ("set", "hash"):
        values = sorted(values)
    return hashlib.sha256("\n".join([kind, *values]).encode()).hexdigest()


def unhealthy_services(client: Any, project: str) -> list[str]:
    """``container: state`` of each running container that is not healthy (a container
    without a healthcheck counts when it runs), and of each that does not run."""
    out = []
    for found in eng.project_containers(client, project):
        name = eng.name_of(found)
        if eng.STEP_LABEL in ((found.get("Config") or {}).get("Labels") or {}) and \
                not found["State"]["Running"]:
            continue
        if "_rdblue_" in name:
            continue  # kept for rollback
        if not found["State"]["Running"]:
            out.append(f"{name}: {found['State'].get('Status')}")
        elif eng.has_healthcheck(found) and eng.health_of(found) != "healthy":
            out.append(f"{name}: {eng.health_of(found)}")
    return out


def data_fingerprint(ctx: Context, *, dump: bool = True, step_id: str = "readiness",
                     redis_keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The project's data at this moment: ``pg_dump`` file (in ``ctx.run_dir``), row counts
    and checksums of every table, Redis key count and a sample of value hashes."""
    started = time.monotonic()
    roles = project_roles(ctx.client, ctx.project)
    out: dict[str, Any] = {"database": None, "cache": None, "tables": {}, "redis": None}
    db = role_container(ctx.client, ctx.project, "database", roles)
    if db is not None:
        psql = Psql(ctx.client, db)
        out["database"] = {"container": eng.name_of(db), "db": psql.db, "auth": psql.how}
        if dump:
            path = Path(ctx.run_dir) / f"{ctx.project}-{step_id}.sql"
            size = psql.dump(path)
            out["dump"] = {"path": str(path), "bytes": size,
                           "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            ctx.log(f"pg_dump of {psql.db} -> {path} ({size} bytes)")
        out["tables"] = table_checksums(psql)
    cache = role_container(ctx.client, ctx.project, "cache", roles)
    if cache is not None:
        password = redis_password(cache, _env_of_all(ctx.client, ctx.project))
        out["cache"] = {"container": eng.name_of(cache)}
        out["redis"] = redis_fingerprint(ctx.client, cache, password, keys=redis_keys)
    out["seconds"] = round(time.monotonic() - started, 2)
    return out


def compare_fingerprints(before: Mapping[str, Any], after: Mapping[str, Any],
                         ignore: Iterable[str] = IGNORED_TABLES) -> list[str]:
    """What differs between two fingerprints (empty when the data is the same): every table
    of ``before`` with its rows and checksum, the sampled Redis values, and fewer Redis keys."""
    skip = set(ignore)
    out = []
    tb, ta = before.get("tables") or {}, after.get("tables") or {}
    for table, was in sorted(tb.items()):
        if table in skip:
            continue
        now = ta.get(table)
        if now is None:
            out.append(f"{table}: missing")
        elif now != was:
            out.append(f"{table}: {was['rows']} rows -> {now['rows']} rows"
                       + (", checksum differs" if now["checksum"] != was["checksum"] else ""))
    rb, ra = before.get("redis") or {}, after.get("redis") or {}
    if rb:
        if not ra:
            out.append("redis: no cache container any more")
        else:
            if int(ra.get("keys", 0)) < int(rb.get("keys", 0)):
                out.append(f"redis: {rb['keys']} keys -> {ra['keys']}")
            for key, digest in sorted((rb.get("sample") or {}).items()):
                now_digest = (ra.get("sample") or {}).get(key) or None
                if now_digest != digest:
                    out.append(f"redis key {key}: "
                               + ("missing" if now_digest is None else "value differs"))
    return out
