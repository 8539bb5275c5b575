"""``readiness``, ``verify`` and ``sql``.

``readiness`` changes nothing: every service must be healthy (a container without a
healthcheck: running), then :func:`~revivadiag.migrate.readiness.data_fingerprint` (pg_dump to
``ctx.run_dir``, table checksums, Redis sample). Its result is what ``verify`` compares.

``verify`` (params: ``readiness`` — the readiness step id, default the one in
``ctx.results``; ``environment`` for the diagnose checks, default development;
``expect_changed`` — tables a ``sql`` step changes on purpose; ``diagnose`` false to skip the
checks): every service healthy, the same checksums for every table and sampled Redis key,
and no ``error`` finding from the diagnose checks (snapshot + diagnosis).

``sql`` (params: ``file``, ``service`` — default the database role, ``down`` — a file that
undoes it): the file runs in the database container inside one transaction
(``psql --single-transaction -v ON_ERROR_STOP=1``), together with an insert of its sha256
into :data:`~revivadiag.migrate.readiness.SQL_MARKER_TABLE` (created if missing, columns
``sha256``, ``step_id``, ``file``, ``applied_at``): the marker row is there exactly when the
SQL was committed, which is how ``classify`` tells applied from not applied (a transaction is
never half applied). The journal's mirror in ``configuration_migrations`` is the executor's.
Without ``down``, undo refuses (StepError): SQL has no computed inverse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from revivadiag.errors import StepError
from revivadiag.migrate import readiness as rd
from revivadiag.migrate.model import Applied, Context
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.base import BaseStep, ParamSpec
from revivadiag.migrate.steps.proxies import project_roles


class Readiness(BaseStep):
    kind = "readiness"
    PARAMS: ClassVar[ParamSpec] = {"dump": (bool, False)}

    def describe(self, ctx: Context) -> list[str]:
        return ["check every service is healthy (docker inspect)",
                "docker exec <database> pg_dump -> " + str(Path(ctx.run_dir) / "<project>.sql"),
                "docker exec <database> psql: row count + checksum of every table",
                "docker exec <cache> redis-cli: DBSIZE + sample of values"]

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        bad = rd.unhealthy_services(ctx.client, ctx.project)
        if bad:
            raise StepError(self.id, "not every service is healthy: " + "; ".join(bad))
        dump = self.param("dump", bool, default=None)
        fp = rd.data_fingerprint(ctx, dump=dump is not False, step_id=self.id)
        # what the diagnose checks say before anything changes: verify then fails only on
        # error findings the migration brought (an error the stack had before is reported)
        errors = diagnose_errors(ctx, "development")
        return {"kind": "readiness", **fp, "error_findings": errors}


class Verify(BaseStep):
    kind = "verify"
    PARAMS: ClassVar[ParamSpec] = {"readiness": (str, False), "environment": (str, False),
              "expect_changed": (list, False), "diagnose": (bool, False)}

    def describe(self, ctx: Context) -> list[str]:
        return ["check every service is healthy", "fingerprint the data again and compare "
                "with readiness", "snapshot + diagnose: fail on an error finding the project "
                "did not have at readiness"]

    def _readiness(self, ctx: Context) -> Mapping[str, Any]:
        wanted = self.param("readiness", default=None)
        if wanted:
            if wanted not in ctx.results:
                raise StepError(self.id, f"no result of readiness step {wanted!r} in this run")
            return ctx.results[wanted]
        found = [r for r in ctx.results.values() if r.get("kind") == "readiness"]
        if not found:
            raise StepError(self.id, "no readiness result in this run to compare with")
        return found[-1]

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        reference = self._readiness(ctx)
        problems = [f"unhealthy: {b}" for b in rd.unhealthy_services(ctx.client, ctx.project)]
        keys = list((reference.get("redis") or {}).get("sample") or {})
        now = rd.data_fingerprint(ctx, dump=False, step_id=self.id,
                                  redis_keys=keys if reference.get("redis") else None)
        ignore = [*rd.IGNORED_TABLES, *(self.param("expect_changed", list, default=None) or [])]
        problems += rd.compare_fingerprints(reference, now, ignore=ignore)
        errors: list[str] = []
        if self.param("diagnose", bool, default=None) is not False:
            errors = diagnose_errors(ctx, str(self.param("environment", default=None)
                                              or "development"))
        had = set(reference.get("error_findings") or [])
        problems += [f"diagnose: {e}" for e in errors if e not in had]
        if problems:
            raise StepError(self.id, "; ".join(problems))
        return {"kind": "verify", "tables": len(now.get("tables") or {}),
                "redis_sampled": len(keys), "error_findings": 0,
                "error_findings_before_and_after": sorted(e for e in errors if e in had)}


def diagnose_errors(ctx: Context, environment: str) -> list[str]:
    """``ID: title`` of each kind of ``error`` finding of the diagnose checks on the live
    project (the containers kept aside for rollback left out)."""
    from revivadiag.analyze.diagnosis import diagnose
    from revivadiag.collect.pipeline import snapshot

    snap = without_kept(snapshot(ctx.project, samples=3))
    result = diagnose(snap, environment=environment, requests=10, burst=10)
    frame = result.findings
    if frame is None or frame.empty:
        return []
    errors = frame[frame["severity"] == "error"]
    return sorted({f"{r['id']}: {r['title']}" for r in errors.to_dict("records")})


class Sql(BaseStep):
    kind = "sql"
    PARAMS: ClassVar[ParamSpec] = {
        "file": (str, True), "service": (str, False), "down": (str, False)}

    def _path(self, ctx: Context, key: str = "file") -> Path:
        path = Path(str(self.param(key)))
        if not path.is_absolute() and ctx.target_files:
            path = Path(ctx.target_files[0]).parent / path
        if not path.is_file():
            raise StepError(self.id, f"SQL file {path} does not exist")
        return path

    def _psql(self, ctx: Context) -> rd.Psql:
        service = self.param("service", default=None)
        if service is None:
            roles = project_roles(ctx.client, ctx.project)
            found = rd.role_container(ctx.client, ctx.project, "database", roles)
        else:
            found = next((c for c in eng.service_containers(ctx.client, ctx.project, service)
                          if c["State"]["Running"]), None)
        if found is None:
            raise StepError(self.id, "no running database container")
        return rd.Psql(ctx.client, found)

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker exec <database> psql --single-transaction -f - < {self.param('file')}"
                f" (+ marker row in {rd.SQL_MARKER_TABLE})"]

    def capture(self, ctx: Context) -> dict[str, Any]:
        path = self._path(ctx)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        down = self.param("down", default=None)
        return {"file": str(path), "sha256": digest,
                "down": str(self._path(ctx, "down")) if down else None,
                "applied": self._marked(ctx, digest)}

    def _marked(self, ctx: Context, digest: str) -> bool:
        psql = self._psql(ctx)
        rows = psql.query(f"select to_regclass('public.{rd.SQL_MARKER_TABLE}') is not null;")
        if not rows or rows[0][0] != "t":
            return False
        if not all(c in "0123456789abcdef" for c in digest):
            raise StepError(self.id, "malformed sha256 in the before-state")
        return bool(psql.query(f"select 1 from public.{rd.SQL_MARKER_TABLE} "  # noqa: S608
                               f"where sha256 = '{digest}';"))

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"down": before.get("down"), "sha256": before["sha256"]}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        if self._marked(ctx, before["sha256"]):
            return {"sha256": before["sha256"], "ran": False}
        body = Path(before["file"]).read_bytes()
        if hashlib.sha256(body).hexdigest() != before["sha256"]:
            raise StepError(self.id, f"{before['file']} changed since it was captured")
        marker = (f"\ncreate table if not exists public.{rd.SQL_MARKER_TABLE} (sha256 text "
                  "primary key, step_id text not null, file text not null, applied_at "
                  "timestamptz not null default now());\n"
                  f"insert into public.{rd.SQL_MARKER_TABLE} (sha256, step_id, file) values "
                  f"('{before['sha256']}', {_lit(self.id)}, {_lit(Path(before['file']).name)});\n")
        self._psql(ctx).script(body + marker.encode())
        ctx.log(f"{self.id}: ran {before['file']} (sha256 {before['sha256'][:12]})")
        return {"sha256": before["sha256"], "ran": True}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        return Applied.APPLIED if self._marked(ctx, before["sha256"]) else Applied.NOT_APPLIED

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        if not self._marked(ctx, before["sha256"]) or before.get("applied"):
            return  # never ran here (or ran before this step): nothing to undo
        down = undo.get("down")
        if not down:
            raise StepError(self.id, f"{before['file']} cannot be undone: the plan gives no "
                            "`down` file")
        body = Path(down).read_bytes()
        tail = (f"\ndelete from public.{rd.SQL_MARKER_TABLE} where sha256 = "
                f"'{before['sha256']}';\n").encode()
        self._psql(ctx).script(body + tail)

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return [] if self._marked(ctx, result["sha256"]) else \
            [f"marker of {self.param('file')} is gone from {rd.SQL_MARKER_TABLE}"]


def _lit(text: str) -> str:
    """A SQL string literal.

    >>> _lit("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


#: columns of the snapshot's frames that name a container
CONTAINER_COLUMNS = ("name", "container", "source", "target", "source_container",
                     "target_container")


def without_kept(snap: Any) -> Any:
    """``snap`` without the containers this run keeps aside for rollback (blue, renamed
    ``<name>_rdblue_<step>`` and stopped until ``cleanup``) or is still starting (green
    under a temporary name): they are not part of the stack being verified.

    >>> import pandas as pd
    >>> from revivadiag.collect.snapshot import Snapshot
    >>> snap = Snapshot.empty("p")
    >>> snap.containers = pd.DataFrame({"name": ["p_api", "p_api_rdblue_s1"]})
    >>> list(without_kept(snap).containers["name"])
    ['p_api']
    """
    from dataclasses import fields, replace

    from revivadiag.migrate.switch import BLUE_SUFFIX, GREEN_SUFFIX

    def kept(value: Any) -> bool:
        text = str(value)
        return BLUE_SUFFIX in text or text.endswith(GREEN_SUFFIX)

    changes = {}
    for f in fields(snap):
        frame = getattr(snap, f.name)
        if f.name == "meta" or not hasattr(frame, "columns") or frame.empty:
            continue
        mask = None
        for col in CONTAINER_COLUMNS:
            if col in frame.columns:
                hit = frame[col].map(kept)
                mask = hit if mask is None else (mask | hit)
        if mask is not None and bool(mask.any()):
            out = frame[~mask.astype(bool)].reset_index(drop=True)
            out.attrs = frame.attrs
            changes[f.name] = out
    return replace(snap, **changes) if changes else snap

