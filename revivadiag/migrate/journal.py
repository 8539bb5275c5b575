"""The migration journal: local, append-only JSON lines, fsync'd; mirrored into PostgreSQL.

One file per migration, ``<root>/<project>/<migration id>.jsonl``, where ``<root>`` is
``$REVIVADIAG_MIGRATIONS_DIR``, else ``$XDG_STATE_HOME/revivadiag/migrations``, else
``~/.local/state/revivadiag/migrations``. Each record is one line written with a single
``write`` on an ``O_APPEND`` descriptor and ``fsync``'d before :meth:`Journal.append`
returns; creating the file fsyncs its directory too. A crash can only tear the *last* line:
:meth:`Journal.open` cuts such a line off and appends a ``note`` saying so. A bad line before
the last is corruption (:class:`~revivadiag.errors.JournalError`).

Records (``event``; every record also has ``seq`` and ``at``, UTC ISO time):

=============  ==============================================================================
``started``    plan (name), plan_path, plan_sha256, fingerprint, mode, who, project, steps
               (``[{id, kind}]``, the plan's order)
``approved``   who, how (``cli``, ``--approve``, ``runbook``)
``intent``     step, kind, migration_type, before, undo (written before the side effect)
``result``     step, result (what the step left: the reference for drift)
``failed``     step, error
``rolled_back`` step (its undo ran; ``forced`` when drift was overridden)
``finished``   status (completed, failed, rolled_back)
``note``       text (a repaired torn line, an unreachable mirror, a resume decision)
=============  ==============================================================================

No record holds a secret value: steps capture names, ids, labels and hashes, never values
of the environment (the :class:`~revivadiag.migrate.model.Step` contract).

The mirror (:class:`PgMirror`) writes one row per step (plus one for the approval) into the
seed's ``configuration_migrations`` table, created with its two indexes when absent. A row's
``id`` is a UUID derived from (migration id, step id), so the mirror is an idempotent upsert
of what the local journal says: it is *reconciled*, never appended to, and a database that is
down (or being renamed) only delays it.

>>> rows = step_rows(replay([
...     {"seq": 1, "at": "t0", "event": "started", "plan": "p", "mode": "blue-green",
...      "who": "ops", "project": "x", "steps": [{"id": "a", "kind": "network.create"}]},
...     {"seq": 2, "at": "t1", "event": "intent", "step": "a", "kind": "network.create",
...      "migration_type": "network_change", "before": {}, "undo": {"remove": "n"}},
...     {"seq": 3, "at": "t2", "event": "result", "step": "a", "result": {"id": "n1"}}],
...     "m1"))
>>> [(r["migration_type"], r["status"], r["rollback_data"]["undo"]) for r in rows]
[('network_change', 'completed', {'remove': 'n'})]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revivadiag.errors import JournalError, MigrationNotFound
from revivadiag.migrate.model import StepStatus

ROOT_ENV = "REVIVADIAG_MIGRATIONS_DIR"
SUFFIX = ".jsonl"
EVENTS = ("started", "approved", "intent", "result", "failed", "rolled_back", "finished",
          "note")
#: the namespace of the mirror rows' UUIDs (uuid5 of "<migration id>/<step id>")
ROW_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-5c7d-9e0f-1a2b3c4d5e6f")
APPROVAL_ROW = "approval"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Record = dict[str, Any]


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def journal_root(root: str | Path | None = None) -> Path:
    """Where every project's journals live (see the module doc)."""
    if root is not None:
        return Path(root)
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "revivadiag" / "migrations"


def check_name(kind: str, value: str) -> str:
    """A project or migration id usable as a file name (no path separators, no dot start).

    >>> check_name("project", "rdlab")
    'rdlab'
    >>> check_name("migration id", "../x")
    Traceback (most recent call last):
    revivadiag.errors.JournalError: journal ../x: bad migration id '../x': letters, digits, ...
    """
    if not _ID.match(value or ""):
        raise JournalError(value, f"bad {kind} {value!r}: letters, digits, '_', '.', '-' "
                                  "(not first), at most 128")
    return value


def project_dir(project: str, root: str | Path | None = None) -> Path:
    """The directory of ``project``'s journals and its lock file."""
    return journal_root(root) / check_name("project", project)


def new_migration_id(plan_name: str) -> str:
    """A fresh id: UTC time, the plan's name (cut to a slug) and 4 random hex digits.

    >>> new_migration_id("Lab: current -> target")[16:-4]
    '-lab-current-target-'
    """
    slug = "-".join(re.findall(r"[a-z0-9]+", plan_name.lower()))[:40] or "plan"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def fsync_dir(path: Path) -> None:
    """fsync a directory (so a file created in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode(record: Mapping[str, Any]) -> bytes:
    """One journal line (compact JSON, sorted keys, newline-terminated)."""
    return (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
            + "\n").encode()


def parse_lines(data: bytes, path: str = "?") -> tuple[list[Record], int, str]:
    """(records, bytes of the good prefix, note on a torn last line or '').

    >>> parse_lines(b'{"seq":1}\\n{"se')
    ([{'seq': 1}], 10, 'torn last line (4 bytes) dropped')
    """
    records: list[Record] = []
    good = 0
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty when the file ends with one
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if i == len(lines) - 1 and not tail:  # the last line, newline written but torn
                return records, good, f"torn last line ({len(line) + 1} bytes) dropped"
            raise JournalError(path, f"line {i + 1} is not a JSON object ({exc}); only the "
                                     "last line may be torn by a crash") from exc
        records.append(rec)
        good += len(line) + 1
    note = f"torn last line ({len(tail)} bytes) dropped" if tail else ""
    return records, good, note


class Journal:
    """One migration's journal file. :meth:`create` a new one or :meth:`open` an existing one."""

    def __init__(self, path: Path, records: list[Record]) -> None:
        self.path = path
        self.records = records
        self.listeners: list[Callable[[Journal], None]] = []

    @property
    def migration_id(self) -> str:
        return self.path.name[: -len(SUFFIX)]

    @property
    def project(self) -> str:
        return self.path.parent.name

    @classmethod
    def create(cls, project: str, migration_id: str, root: str | Path | None = None) -> Journal:
        """A new, empty journal (refuses an id that exists)."""
        folder = project_dir(project, root)
        path = folder / f"{check_name('migration id', migration_id)}{SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            fsync_dir(folder)
        except FileExistsError as exc:
            raise JournalError(str(path), "a journal with this migration id exists") from exc
        except OSError as exc:
            raise JournalError(str(path), f"cannot create: {exc.strerror or exc}") from exc
        return cls(path, [])

    @classmethod
    def open(cls, project: str, migration_id: str, root: str | Path | None = None) -> Journal:
        """An existing journal; a torn last line is cut off and a ``note`` says so."""
        folder = project_dir(project, root)
        path = folder / f"{check_name('migration id', migration_id)}{SUFFIX}"
        if not path.is_file():
            known = sorted(p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}")) \
                if folder.is_dir() else []
            raise MigrationNotFound(migration_id, str(folder), known)
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read (and repair) the journal at ``path``."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        records, good, note = parse_lines(data, str(path))
        journal = cls(path, records)
        if note:
            try:
                os.truncate(path, good)
            except OSError as exc:
                raise JournalError(str(path), f"cannot repair a torn line: {exc}") from exc
            journal.append("note", text=f"repaired: {note}")
        return journal

    def append(self, event: str, **fields: Any) -> Record:
        """Append one record, fsync'd before returning; then tell the listeners (mirror)."""
        if event not in EVENTS:
            raise JournalError(str(self.path), f"unknown event {event!r}")
        seq = int(self.records[-1].get("seq", len(self.records))) + 1 if self.records else 1
        record: Record = {"seq": seq, "at": now_iso(), "event": event, **fields}
        line = encode(record)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalError(str(self.path), f"cannot append: {exc}") from exc
        self.records.append(record)
        for listener in list(self.listeners):
            listener(self)
        return record

    def state(self) -> RunState:
        """What the records say, replayed."""
        return replay(self.records, self.migration_id)


@dataclass
class StepState:
    """One step as the journal knows it."""

    id: str
    kind: str
    migration_type: str = ""
    status: StepStatus = StepStatus.PENDING
    before: dict[str, Any] | None = None
    undo: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str = ""
    started: str = ""
    ended: str = ""
    #: when its outcome (result or failure) was journalled; ``ended`` moves on to the undo
    applied: str = ""
    attempts: int = 0


@dataclass
class RunState:
    """A migration as its journal tells it."""

    migration_id: str
    project: str = ""
    plan: str = ""
    plan_path: str = ""
    plan_sha256: str = ""
    fingerprint: str = ""
    mode: str = ""
    who: str = ""
    started: str = ""
    finished: str = ""
    status: StepStatus = StepStatus.PENDING
    approved_by: str = ""
    approved_at: str = ""
    steps: dict[str, StepState] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def approved(self) -> bool:
        return bool(self.approved_at)

    def completed(self) -> list[StepState]:
        """Steps whose result is journalled and not undone, in plan order."""
        return [s for s in self.steps.values() if s.status is StepStatus.COMPLETED]

    def interrupted(self) -> StepState | None:
        """The step whose intent is journalled but not its outcome (a crash inside it)."""
        return next((s for s in self.steps.values() if s.status is StepStatus.IN_PROGRESS), None)


def replay(records: Iterable[Mapping[str, Any]], migration_id: str) -> RunState:
    """Fold the records into a :class:`RunState`."""
    st = RunState(migration_id)
    for rec in records:
        ev = rec.get("event")
        at = str(rec.get("at", ""))
        if ev == "started":
            st.project = str(rec.get("project", ""))
            st.plan = str(rec.get("plan", ""))
            st.plan_path = str(rec.get("plan_path", ""))
            st.plan_sha256 = str(rec.get("plan_sha256", ""))
            st.fingerprint = str(rec.get("fingerprint", ""))
            st.mode = str(rec.get("mode", ""))
            st.who = str(rec.get("who", ""))
            st.started = at
            for s in rec.get("steps") or []:
                st.steps.setdefault(str(s["id"]), StepState(str(s["id"]), str(s.get("kind", ""))))
        elif ev == "approved":
            st.approved_by, st.approved_at = str(rec.get("who", "")), at
        elif ev == "note":
            st.notes.append(str(rec.get("text", "")))
        elif ev == "finished":
            st.status = StepStatus(str(rec.get("status", "completed")))
            st.finished = at
        elif ev in ("intent", "result", "failed", "rolled_back"):
            sid = str(rec.get("step", ""))
            step = st.steps.setdefault(sid, StepState(sid, str(rec.get("kind", ""))))
            if ev == "intent":
                step.kind = str(rec.get("kind", step.kind))
                step.migration_type = str(rec.get("migration_type", ""))
                step.before = dict(rec.get("before") or {})
                step.undo = dict(rec.get("undo") or {})
                step.status, step.started, step.ended = StepStatus.IN_PROGRESS, at, ""
                step.error, step.result, step.applied = "", None, ""
                step.attempts += 1
                st.status, st.finished = StepStatus.IN_PROGRESS, ""
            elif ev == "result":
                step.result = dict(rec.get("result") or {})
                step.status, step.ended, step.applied = StepStatus.COMPLETED, at, at
            elif ev == "failed":
                step.error = str(rec.get("error", ""))
                step.status, step.ended, step.applied = StepStatus.FAILED, at, at
            else:
                step.status, step.ended = StepStatus.ROLLED_BACK, at
    return st


def read_state(path: Path) -> RunState:
    """The state of the journal at ``path`` without repairing it (a reader must never write:
    the run may be appending to it right now; a torn last line is only left out)."""
    records, _, _ = parse_lines(path.read_bytes(), str(path))
    return replay(records, path.name[: -len(SUFFIX)])


# ---------------------------------------------------------------- listing


@dataclass(frozen=True)
class JournalEntry:
    """A journal file of a project (for ``revivadiag migrations``)."""

    project: str
    migration_id: str
    path: Path


def list_journals(project: str | None = None, root: str | Path | None = None) -> list[JournalEntry]:
    """Every journal under the root (of one project when given), oldest id first."""
    base = journal_root(root)
    folders = [project_dir(project, root)] if project else (
        sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else [])
    out = []
    for folder in folders:
        if folder.is_dir():
            out += [JournalEntry(folder.name, p.name[: -len(SUFFIX)], p)
                    for p in sorted(folder.glob(f"*{SUFFIX}"))]
    return out


# ---------------------------------------------------------------- the PostgreSQL mirror

DDL = """\
CREATE TABLE IF NOT EXISTS configuration_migrations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    migration_name VARCHAR(255) NOT NULL,
    migration_type VARCHAR(50) NOT NULL, -- 'container_rename', 'proxy_config', 'environment_update'
    status VARCHAR(50) NOT NULL DEFAULT 'pending',
    started_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    completed_at TIMESTAMP WITH TIME ZONE,
    rollback_data JSONB,
    error_message TEXT,
    created_by VARCHAR(100) DEFAULT 'system'
);
CREATE INDEX IF NOT EXISTS idx_config_migrations_status ON configuration_migrations(status);
CREATE INDEX IF NOT EXISTS idx_config_migrations_type ON configuration_migrations(migration_type);
"""
COLUMNS = ("id", "migration_name", "migration_type", "status", "started_at", "completed_at",
           "rollback_data", "error_message", "created_by")


def row_id(migration_id: str, step_id: str) -> str:
    """The mirror row's UUID for one step of one migration (stable: upserts reconcile).

    >>> row_id("m1", "a") == row_id("m1", "a") != row_id("m2", "a")
    True
    """
    return str(uuid.uuid5(ROW_NAMESPACE, f"{migration_id}/{step_id}"))


def step_rows(st: RunState) -> list[dict[str, Any]]:
    """The ``configuration_migrations`` rows of a run: its approval, then one per step that
    has been started. ``rollback_data`` holds what the undo needs (``before`` and ``undo``)."""
    name = st.plan[:255] or st.migration_id
    who = (st.who or "system")[:100]
    rows: list[dict[str, Any]] = []
    if st.approved:
        rows.append({
            "id": row_id(st.migration_id, APPROVAL_ROW), "migration_name": name,
            "migration_type": "approval", "status": str(StepStatus.COMPLETED),
            "started_at": st.approved_at, "completed_at": st.approved_at,
            "rollback_data": {"migration_id": st.migration_id, "step_id": APPROVAL_ROW},
            "error_message": None, "created_by": (st.approved_by or who)[:100]})
    for step in st.steps.values():
        if not step.started:
            continue
        done = step.status in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.ROLLED_BACK)
        rows.append({
            "id": row_id(st.migration_id, step.id), "migration_name": name,
            "migration_type": (step.migration_type or step.kind)[:50],
            "status": str(step.status), "started_at": step.started,
            "completed_at": step.ended if done and step.ended else None,
            "rollback_data": {"migration_id": st.migration_id, "step_id": step.id,
                              "kind": step.kind, "before": step.before, "undo": step.undo},
            "error_message": step.error or None, "created_by": who})
    return rows


def sql_literal(value: Any) -> str:
    """A SQL literal (standard_conforming_strings on): NULL, or a quoted string.

    >>> sql_literal(None), sql_literal("it's"), sql_literal({"a": 1})
    ('NULL', "'it''s'", '\\'{"a": 1}\\'')
    """
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return "'" + text.replace("'", "''") + "'"


def upsert_sql(rows: Iterable[Mapping[str, Any]]) -> str:
    """One transaction: the table (as the seed's DDL) and an upsert of every row."""
    parts = ["SET standard_conforming_strings = on;", "BEGIN;", DDL]
    for r in rows:
        values = ", ".join([
            f"{sql_literal(r['id'])}::uuid", sql_literal(r["migration_name"]),
            sql_literal(r["migration_type"]), sql_literal(r["status"]),
            f"{sql_literal(r['started_at'])}::timestamptz",
            f"{sql_literal(r['completed_at'])}::timestamptz",
            f"{sql_literal(r['rollback_data'])}::jsonb", sql_literal(r["error_message"]),
            sql_literal(r["created_by"])])
        # every value is a literal quoted by sql_literal
        parts.append(
            f"INSERT INTO configuration_migrations ({', '.join(COLUMNS)}) VALUES ({values}) "  # noqa: S608
            "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
            "started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at, "
            "rollback_data = EXCLUDED.rollback_data, error_message = EXCLUDED.error_message, "
            "migration_type = EXCLUDED.migration_type, migration_name = EXCLUDED.migration_name;")
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


@dataclass
class MirrorStatus:
    """How far the mirror got: the last journal ``seq`` written to the table, and why not more."""

    synced_seq: int = 0
    last_error: str = ""
    database: str = ""
    attempts: int = 0


class PgMirror:
    """Reconciles a journal into the project's PostgreSQL (found by role), never raising.

    As a journal listener it only *signals* a background thread, which upserts the latest
    state (several appends coalesce into one write): a slow or absent database never delays
    a step. :meth:`flush` waits (bounded) for the mirror to catch up, at the end of a run.
    The database is found again at every write, so one that was renamed or replaced in the
    meantime is found; the password goes to ``psql`` through the exec's environment, never
    its argv, and is never logged.
    """

    def __init__(self, client: Any, project: str, timeout_s: float = 8.0,
                 locate: Callable[[Any, str], DbTarget | None] | None = None) -> None:
        self.client = client
        self.project = project
        self.timeout_s = timeout_s
        self.status = MirrorStatus()
        self.locate = locate or locate_database
        self._journal: Journal | None = None
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, journal: Journal) -> None:
        """A journal listener: schedule a sync (returns at once)."""
        self._journal = journal
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="revivadiag-mirror",
                                            daemon=True)
            self._thread.start()
        self._idle.clear()
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._journal is not None:
                self.sync(self._journal)
            if not self._wake.is_set():
                self._idle.set()

    def flush(self, journal: Journal, tries: Sequence[float] = (0.0,)) -> bool:
        """Sync now (after the background thread is idle), retrying after each pause in
        ``tries``; True when the table holds the whole journal."""
        self._idle.wait(timeout=self.timeout_s * 2)
        for pause in tries:
            time.sleep(pause)
            if self.sync(journal):
                return True
        return False

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def sync(self, journal: Journal) -> bool:
        """Upsert every row of the journal; False (and ``status.last_error``) on failure."""
        with self._lock:
            records = list(journal.records)
            last = int(records[-1]["seq"]) if records else 0
            if last <= self.status.synced_seq:
                return True
            self.status.attempts += 1
            try:
                target = self.locate(self.client, self.project)
                if target is None:
                    self.status.last_error = "no running PostgreSQL database in the project"
                    return False
                self.status.database = target.name
                state = replay(records, journal.migration_id)
                run_psql(self.client, target, upsert_sql(step_rows(state)), self.timeout_s)
            except Exception as exc:  # the mirror never stops a run
                self.status.last_error = " ".join(str(exc).split())[:300] or type(exc).__name__
                return False
            self.status.synced_seq, self.status.last_error = last, ""
            return True


@dataclass(frozen=True)
class DbTarget:
    """A PostgreSQL container and how to log in (the password never in ``repr``)."""

    container_id: str
    name: str
    user: str
    dbname: str
    password: str = field(default="", repr=False)


def locate_database(client: Any, project: str) -> DbTarget | None:
    """The project's running PostgreSQL (role ``database``, software postgres), with the
    credentials its users' environment (else its own) gives."""
    from revivadiag.collect.credentials import credentials_from_env
    from revivadiag.collect.health import CHECKABLE, members, roles_of, users_of
    from revivadiag.collect.inventory import gather
    from revivadiag.redact import raw_env

    inv = gather(client, project)
    roles = roles_of(inv, None)
    by_service = members(inv)
    for service in roles.services("database"):
        member = by_service.get(service)
        if member is None or not member.running:
            continue
        software = roles.software(service)
        if software and software not in CHECKABLE["postgres_internal"]:
            continue  # MySQL, MongoDB, ...: not a table psql can write (unknown: psql tells)
        own = raw_env(member.inspect)
        users = [raw_env(m.inspect) for m in users_of(by_service, member, roles)]
        creds = credentials_from_env(users[0] if users else {}, own, {})
        return DbTarget(member.container_id, member.name, creds.db_user, creds.db_name,
                        creds.db_password)
    return None


def run_psql(client: Any, target: DbTarget, sql: str, timeout_s: float) -> str:
    """Run ``sql`` (on stdin) with ``psql`` inside the database container over its loopback;
    the password travels in the exec's environment (never argv, never logged)."""
    from revivadiag.engine.stdin import exec_with_stdin_bytes
    from revivadiag.redact import secret_scrubber

    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-U", target.user, "-d", target.dbname]
    code, out, err = exec_with_stdin_bytes(
        client.api, target.container_id, argv, sql.encode(), timeout_s,
        environment={"PGPASSWORD": target.password, "PGCONNECT_TIMEOUT": "3"})
    if code != 0:
        message = secret_scrubber([target.password]).scrub(
            err.decode(errors="replace").strip()[:300])
        raise JournalError(f"{target.name}:configuration_migrations",
                           f"psql exited {code}: {message}")
    return out.decode(errors="replace")
