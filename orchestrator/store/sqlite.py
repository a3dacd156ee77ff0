"""The state store: one SQLite database per fleet run (or a PostgreSQL schema, see
`orchestrator.store.pg`). The only modules that speak SQL are this one and that one.

Tables:
    meta      key/value: schema version, run id, inventory hash, extra columns
    runs      one row per invocation (run or resume): options, start, end, outcome
    targets   one row per server: state, job_id, attempts, errors, timestamps
    events    append-only: every state change of every target, with why
    counters  requests sent by kind, throttling answers
    rollout   append-only: every rollout decision (window, wave, budget, breaker)

Every state change goes through `apply`, which checks it against the
transition table and against the state the caller believed the target was in
(`UPDATE ... WHERE state = old`), and writes the change and its event in one
transaction. `synchronous=FULL` makes a commit survive power loss, not only a
crash: the runner relies on an intent being durable before a request leaves.

The SQL here is written in the dialect both stores accept (`?` placeholders,
`INSERT ... ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`); what differs (the
connection, `_transaction`, locking, the id column type, the schema check) is in
small methods that `PgStore` overrides. A method added here with portable SQL
works on both stores unchanged.

A SQLite state file is two files while a run holds it: the database and its
write-ahead log (`STATE-wal`), where every commit goes first. The main file says
which it is (meta `journal`): `open` from the moment a run takes it until that run
closes it cleanly and has written the log back into it (a checkpoint), `closed`
after. The log never shrinks while a run holds the file, so a file that says
`open` and whose log is missing or empty lost its latest changes
(the log was deleted after a crash, or the file was copied alone): it is refused,
never taken for a new campaign (`JournalLost`; `--journal-lost` settles every
unfinished target from its server instead). The import is written into the main
file before anything is sent, and so is the moment sending begins.

A file is only ever deleted when it is proven to be an import this tool began and
never finished: the schema and a `creator` row are written before the file takes
its name, so an empty file, a device or someone else's database is never mistaken
for one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import socket
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.clocks import UNSYNCED_ERROR
from orchestrator.engine.shard import Shard, shard_hash
from orchestrator.errors import IncompleteImport, JournalLost, StateError
from orchestrator.model import (
    FINAL_STATES,
    InvocationInfo,
    RunInfo,
    Target,
    TargetSpec,
    TargetState,
    check_reopen,
    check_transition,
)

SCHEMA_VERSION = 6
# Columns added by each schema version (all nullable or defaulted), applied in order
# when a run opens an older state file: a state file outlives the version that made it.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "first_launched_at TEXT",
        "status_before TEXT",
        "updated_before TEXT",
        "not_accepted INTEGER NOT NULL DEFAULT 0",
        "job_begin_at TEXT",
        "job_end_at TEXT",
    ),
    # The Cloud-Init API per target (older state files: none of them).
    3: ("cloud_init INTEGER NOT NULL DEFAULT 0",),
    4: ("wave INTEGER",),  # the rollout wave, fixed at the first run (NULL before)
    # The intent on the service's clock, and how far that may be off.
    6: ("intent_service_at TEXT", "intent_error REAL"),
}
# Tables added by a schema version, created with it (or when an older file is upgraded).
MIGRATION_TABLES: dict[int, tuple[str, ...]] = {
    4: (
        """CREATE TABLE IF NOT EXISTS rollout (
            id {pk},
            at TEXT NOT NULL,
            invocation INTEGER,
            kind TEXT NOT NULL,
            project_id TEXT,
            wave INTEGER,
            detail TEXT NOT NULL
        )""",
    ),
    # Throttled answers over time (one row per commit that saw any), for the
    # report's timeline: the counters table holds only the totals.
    5: (
        """CREATE TABLE IF NOT EXISTS samples (
            id {pk},
            at TEXT NOT NULL,
            name TEXT NOT NULL,
            value INTEGER NOT NULL
        )""",
    ),
    # The runners sharing a campaign right now (PostgreSQL shards), each with when it
    # was last seen on the database's clock (ms): --rate and --poll-rate are divided
    # between them.
    6: (
        """CREATE TABLE IF NOT EXISTS runners (
            holder TEXT PRIMARY KEY,
            shard TEXT,
            seen BIGINT NOT NULL
        )""",
    ),
}
OUR_TABLES = frozenset(
    {"meta", "runs", "targets", "events", "counters", "rollout", "samples", "runners"}
)
SQLITE_HEADER = b"SQLite format 3\x00"
# Written with the schema, before the file takes its name: proof that this tool made it.
CREATOR = "ecs-reinstall-orchestrator"
# A checkpoint waits for readers (`status`) this often (each time up to the busy
# timeout) before a run gives up starting.
CHECKPOINT_TRIES = 3
IMPORT_BATCH = 5000
# Counters whose increments are also kept with their time (table `samples`).
SAMPLED_COUNTERS = frozenset({"throttled"})

# Columns a state change may set besides `state` (never user-supplied names).
CHANGEABLE = frozenset(
    {
        "job_id",
        "attempts",
        "error_code",
        "fail_reason",
        "launched_at_before",
        "first_launched_at",
        "status_before",
        "updated_before",
        "not_accepted",
        "intent_at",
        "intent_service_at",
        "intent_error",
        "submitted_at",
        "finished_at",
        "job_begin_at",
        "job_end_at",
    }
)

TARGET_COLUMNS = (
    "id, project_id, server_id, region, keyname, userid, mode, byol, extra, line, state, job_id,"
    " attempts, error_code, fail_reason, launched_at_before, intent_at, submitted_at,"
    " finished_at, updated_at, first_launched_at, status_before, updated_before, not_accepted,"
    " job_begin_at, job_end_at, cloud_init, wave, intent_service_at, intent_error"
)


# The schema, in SQL both stores accept; `{pk}` is the dialect's auto-numbered key
# (targets are numbered in inventory order). Columns of later versions come from
# MIGRATIONS, applied after these at creation as they are to an older store.
TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE runs (id {pk}, started_at TEXT, ended_at TEXT, inventory_path TEXT,"
    " inventory_sha256 TEXT, options TEXT, outcome TEXT, pid INTEGER)",
    """CREATE TABLE targets (
        id {pk},
        project_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        region TEXT, keyname TEXT NOT NULL, userid TEXT NOT NULL,
        mode TEXT, byol INTEGER, extra TEXT, line INTEGER,
        state TEXT NOT NULL,
        job_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        error_code TEXT, fail_reason TEXT,
        launched_at_before TEXT, intent_at TEXT, submitted_at TEXT,
        finished_at TEXT, updated_at TEXT,
        UNIQUE (project_id, server_id)
    )""",
    "CREATE TABLE events (id {pk}, target_id INTEGER, at TEXT, invocation INTEGER,"
    " from_state TEXT, to_state TEXT, detail TEXT)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)",
)
INDEXES = (
    "CREATE INDEX idx_targets_state_id ON targets (state, id)",
    "CREATE INDEX idx_events_target_id ON events (target_id)",
)


class StoreFailure(StateError):
    """The database behind the state store failed (a driver's error, translated)."""


class StateExists(StateError):
    """The state store to be created exists already."""


def utc_now() -> str:
    """Now, as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; the seconds part is formatted once per second."""
    global _last_second
    now = time.time()
    second = int(now)
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{int((now - second) * 1_000_000):06d}Z"


_last_second: tuple[int, str] = (-1, "")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of one target, and why it happened."""

    target_id: int
    old: TargetState
    new: TargetState
    detail: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=utc_now)


def validate(change: Change) -> None:
    """Raise unless the change is a legal transition that sets only changeable columns."""
    check_transition(change.old, change.new)
    unknown = set(change.fields) - CHANGEABLE
    if unknown:
        raise ValueError(f"not a changeable column: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Event:
    target_id: int
    at: str
    invocation: int | None
    from_state: str | None
    to_state: str
    detail: str


@dataclass(frozen=True, slots=True)
class FinalRecord:
    """A final target, for replaying the rollout's ledger in the order targets ended."""

    seq: int  # id of the target's last event: stable across resumes
    target_id: int
    project_id: str
    state: TargetState
    error_code: str | None
    wave: int | None
    intent_at: str | None
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout decision: a wave started, a budget tripped, the window closed, ..."""

    kind: str
    detail: str
    project_id: str | None = None
    wave: int | None = None
    at: str = field(default_factory=utc_now)
    invocation: int | None = None


class StateStore:
    """A state file opened for reading, or (with the lock held) for a run."""

    # The dialect's auto-numbered primary key, for TABLES.
    ID_TYPE = "INTEGER PRIMARY KEY"
    # A shard's condition on `server_id`, comparing its hash modulo ? to ?.
    SHARD_HASH = "orch_shard_hash(server_id)"
    # The database's clock, in milliseconds since the epoch: every host sharing a
    # campaign reads the same one.
    DB_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)"
    # Whether several runners (shards) may hold this store at once: a SQLite file is
    # held by one process at a time.
    SHARED = False

    def __init__(
        self, path: Path, conn: Any, lock_fd: int | None, *, location: str | None = None
    ) -> None:
        self.path = path
        # Where the state lives, as shown to people (the file, or DSN and campaign).
        self.location = location or str(path)
        # A sqlite3.Connection, or for PostgreSQL an adapter with the same calls.
        self._conn = conn
        self._lock_fd = lock_fd
        self.invocation: int | None = None
        self._feed_limited = False  # see limit_feed
        # Opened for reading although its journal was lost: why what it shows is old.
        self.journal_missing: str | None = None

    # -- opening ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        targets: Iterable[TargetSpec],
        *,
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]] = tuple,
        validate: Callable[[], None] | None = None,
    ) -> StateStore:
        """Create a state file and import the targets in one transaction.

        `validate` (called after the last target was read) may raise to refuse the
        inventory: then nothing is kept, not even the file.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        check_companions(path, new=True)
        # Made under a temporary name with its schema and `creator` row, locked, then
        # linked into place: nobody ever sees it unlocked, and it is never without
        # the proof that this tool made it.
        lock_fd = _create_locked(path, _write_schema)
        store: StateStore | None = None
        try:
            store = cls(path, _connect(path), lock_fd)
            store._import(targets, inventory_path, inventory_sha256, extra_columns, validate, {})
            store._open_journal()
            return store
        except BaseException:
            if store is not None:
                store._conn.close()
            remove_state_files(path)
            _unlock(lock_fd)
            raise

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, journal_lost: bool = False) -> StateStore:
        """Open an existing state file; for a run (not `readonly`) take its lock.

        A file whose journal was lost is refused (`JournalLost`), unless
        `journal_lost`: then every target not final is put in doubt, to be settled
        from its server before anything is sent (`suspect_unfinished`).
        """
        check_state_file(path)
        lock_fd = None if readonly else _lock(path)
        conn: sqlite3.Connection | None = None
        try:
            lost = _journal_lost(path)
            if lost is not None and not readonly and not journal_lost:
                raise lost
            conn = _connect(path, readonly=readonly)
            store = cls(path, conn, lock_fd)
            store._check(migrate=not readonly)
            if readonly and lost is not None:
                # Read as it is (status, report), said aloud: the latest changes are lost.
                store.journal_missing = str(lost)
            if not readonly:
                store._open_journal()
                if lost is not None:
                    store.suspect_unfinished()
            return store
        except BaseException:
            if conn is not None:
                conn.close()
            _unlock(lock_fd)
            raise

    @classmethod
    def discard_incomplete(cls, path: Path) -> None:
        """Delete a state file whose import never finished, under its lock.

        Under the lock, so that a file another process is still creating is never
        taken for an abandoned one; and only a file `_check` proves this tool began.
        """
        check_state_file(path)
        lock_fd = _lock(path)
        try:
            conn = _connect(path, readonly=True)
            try:
                cls(path, conn, None)._check(migrate=False)
            except IncompleteImport:
                pass
            else:
                raise StateError(f"state file {path} is complete; not deleting it")
            finally:
                conn.close()
            remove_state_files(path)
        finally:
            _unlock(lock_fd)

    def close(self) -> None:
        if self._lock_fd is not None:
            # A clean end: the log written back into the main file, which says so.
            with contextlib.suppress(StateError, sqlite3.Error):
                self._mark_journal("closed")
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        _unlock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _import(
        self,
        targets: Iterable[TargetSpec],
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]],
        validate: Callable[[], None] | None,
        extra_meta: Mapping[str, str],
    ) -> None:
        now = utc_now()
        sql = (
            "INSERT INTO targets (project_id, server_id, region, keyname, userid, mode, byol,"
            " extra, line, state, updated_at, cloud_init) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        )
        with _translated("import the inventory"), self._transaction():
            batch: list[tuple[Any, ...]] = []
            for spec in targets:
                batch.append(
                    (
                        spec.project_id,
                        spec.server_id,
                        spec.region,
                        spec.keyname,
                        spec.userid,
                        spec.mode,
                        None if spec.byol is None else int(spec.byol),
                        json.dumps(spec.extra) if spec.extra else None,
                        spec.line,
                        TargetState.PENDING.value,
                        now,
                        int(spec.cloud_init),
                    )
                )
                if len(batch) >= IMPORT_BATCH:
                    self._conn.executemany(sql, batch)
                    batch.clear()
            if batch:
                self._conn.executemany(sql, batch)
            if validate is not None:
                validate()
            meta = {
                **extra_meta,
                "inventory_path": inventory_path,
                "inventory_sha256": inventory_sha256,
                "extra_columns": json.dumps(list(extra_columns())),
                "import_complete": "1",
            }
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(meta.items()),
            )

    def _check(self, *, migrate: bool) -> None:
        try:
            tables = self._table_names()
            if "meta" not in tables:
                what = "holds no tables (an empty file?)" if not tables else "has no meta table"
                raise StateError(
                    f"{self.path} is not an orchestrator state file: it {what}. Nothing was"
                    " changed; name a new path with --state, or an orchestrator state file"
                )
            meta = self._meta()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {self.path} is unreadable or corrupt: {exc}") from exc
        if meta.get("import_complete") != "1":
            # Deleted and imported again only where this tool is proven to have begun it:
            # its `creator` row, or (older versions) its own tables and an empty meta.
            if meta.get("creator") == CREATOR or (not meta and tables <= OUR_TABLES):
                raise IncompleteImport(
                    f"state file {self.path} holds an inventory import that never finished;"
                    " nothing was sent from it: run the same `orchestrator run INVENTORY`"
                    " command again to import it anew"
                )
            raise StateError(
                f"{self.path} is not an orchestrator state file (its meta table is not ours)."
                " Nothing was changed"
            )
        version = meta.get("schema_version")
        if migrate and version is not None and version.isdigit() and int(version) >= 1:
            version = self._migrate(int(version))
        if version != str(SCHEMA_VERSION):
            raise StateError(
                f"state file {self.path} has schema version {version}; this orchestrator "
                f"reads version {SCHEMA_VERSION}. Use the orchestrator version that made it."
            )
        self._integrity_check()

    def _table_names(self) -> set[str]:
        import sqlite_utils  # here: ~35 ms of imports every command would pay otherwise

        return set(sqlite_utils.Database(self._conn).table_names())

    def _integrity_check(self) -> None:
        with _translated("check the state file"):
            result = self._conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise StateError(f"state file {self.path} is corrupt: {result[0] if result else '?'}")

    def _migrate(self, version: int) -> str:
        """Bring an older state file up to this schema (columns only ever added)."""
        if version >= SCHEMA_VERSION:
            return str(version)
        with _translated("upgrade the state file"), self._transaction():
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for column in MIGRATIONS.get(step, ()):
                    self._conn.execute(f"ALTER TABLE targets ADD COLUMN {column}")
                for statement in MIGRATION_TABLES.get(step, ()):
                    self._conn.execute(statement.format(pk=self.ID_TYPE))
            self._conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
        return str(SCHEMA_VERSION)

    # -- the journal (SQLite's -wal file) ----------------------------------------

    def _open_journal(self) -> None:
        """A run takes the file: the main file says so before any other change."""
        self._mark_journal("open")
        # One more commit, now in the log: a crashed run's log is never empty.
        self.set_meta("lock_holder", _me())

    def _mark_journal(self, state: str) -> None:
        """Record in the main file whether changes may live in the log alone."""
        with _translated("record the journal's state"), self._transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('journal', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (state,),
            )
            if state == "open":
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('journal_opened_at', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (utc_now(),),
                )
        self._checkpoint("RESTART" if state == "open" else "TRUNCATE")

    def _checkpoint(self, mode: str = "RESTART") -> None:
        """Write the log back into the main file. While a run holds the file the log
        keeps its size (RESTART): an empty log means a lost one, so it is emptied
        (TRUNCATE) only when the run ends cleanly."""
        for _ in range(CHECKPOINT_TRIES):
            # A reader (status) holding an older snapshot makes SQLite wait for it, up
            # to the busy timeout, before it answers "busy".
            with _translated("write the journal into the state file"):
                row = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            if row is None or not row[0]:
                return
        raise StateError(
            f"could not write the journal of {self.path} into it: another program keeps"
            " reading it; stop it and run again"
        )

    def mark_sending(self, service_at: str | None, error: float | None) -> None:
        """Sending begins in this invocation: recorded in the main file, with the moment
        on the service's clock where known (the reference `--journal-lost` settles by)."""
        values = {
            "sending_began_at": utc_now(),
            "sending_began_service_at": service_at or "",
            "sending_began_error": "" if error is None else f"{error:.3f}",
        }
        with _translated("record that sending began"), self._transaction():
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )
        with contextlib.suppress(StateError):
            # Where a reader blocks it, the journal's `open` mark is there already.
            self._checkpoint()

    def suspect_unfinished(self) -> int:
        """The journal was lost: every target not final may have been sent since the
        main file was last written. Each is put in doubt, its intent taken as the
        moment sending last began, so that it is settled from its server (relaunched
        after that moment, rebuilding, or quiet for the whole quiet period) before
        anything is sent. Returns how many."""
        meta = self._meta()
        service_at = meta.get("sending_began_service_at") or None
        error = float(meta["sending_began_error"]) if meta.get("sending_began_error") else None
        if service_at is None or error is None:
            # Only this host's clock is known for it: its error is the unsynced one.
            service_at = meta.get("sending_began_at") or meta.get("journal_opened_at")
            error = UNSYNCED_ERROR
        unfinished = [s.value for s in TargetState if s not in FINAL_STATES]
        marks = ",".join("?" * len(unfinished))
        detail = (
            "the state file's journal was lost: whether a reinstall was sent since"
            f" {service_at} is unknown; settled from the server before anything is sent"
        )
        now = utc_now()
        with _translated("put unfinished targets in doubt"), self._transaction():
            self._conn.execute(
                "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                f" SELECT id, ?, ?, state, ?, ? FROM targets WHERE state IN ({marks})",
                (now, self.invocation, TargetState.IN_DOUBT.value, detail, *unfinished),
            )
            cursor = self._conn.execute(
                "UPDATE targets SET state = ?, updated_at = ?, intent_service_at = ?,"
                f" intent_error = ? WHERE state IN ({marks})",
                (TargetState.IN_DOUBT.value, now, service_at, error, *unfinished),
            )
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('journal_lost_at', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (now,),
            )
        return int(cursor.rowcount)

    # -- runners sharing the campaign ---------------------------------------------

    def heartbeat(self, holder: str, shard: str | None, lease: float) -> int:
        """This runner is alive: recorded on the database's clock; runners not seen for
        `lease` seconds are forgotten. Returns how many share the campaign now."""
        with _translated("record this runner"), self._transaction():
            self._conn.execute(
                f"INSERT INTO runners (holder, shard, seen) VALUES (?, ?, {self.DB_NOW_MS})"
                " ON CONFLICT(holder) DO UPDATE SET shard = excluded.shard, seen = excluded.seen",
                (holder, shard),
            )
            self._conn.execute(
                f"DELETE FROM runners WHERE seen < {self.DB_NOW_MS} - ?", (int(lease * 1000),)
            )
            row = self._conn.execute("SELECT COUNT(*) FROM runners").fetchone()
        return max(1, int(row[0]) if row else 1)

    def leave(self, holder: str) -> None:
        """This runner ends: the others take its share at their next heartbeat."""
        with _translated("record this runner's end"), self._transaction():
            self._conn.execute("DELETE FROM runners WHERE holder = ?", (holder,))

    # -- run bookkeeping -------------------------------------------------------

    def meta_value(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with _translated("record run settings"), self._transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _meta(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self._conn.execute("SELECT key, value FROM meta")}

    def begin_invocation(self, options: Mapping[str, Any], inventory_path: str | None) -> int:
        meta = self._meta()
        with _translated("record the run"), self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO runs (started_at, inventory_path, inventory_sha256, options, pid)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (
                    utc_now(),
                    inventory_path or meta.get("inventory_path"),
                    meta.get("inventory_sha256"),
                    json.dumps(dict(options), sort_keys=True, default=str),
                    os.getpid(),
                ),
            )
            self.invocation = int(cursor.fetchone()[0])
        return self.invocation

    def end_invocation(self, outcome: str) -> None:
        if self.invocation is None:
            return
        with _translated("record the end of the run"), self._transaction():
            self._conn.execute(
                "UPDATE runs SET ended_at = ?, outcome = ? WHERE id = ?",
                (utc_now(), outcome, self.invocation),
            )

    def last_options(self) -> dict[str, Any]:
        row = self._conn.execute("SELECT options FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def run_info(self) -> RunInfo:
        meta = self._meta()
        runs = self._conn.execute("SELECT count(*), max(id) FROM runs").fetchone()
        last = None
        if runs and runs[1] is not None:
            last = self._conn.execute(
                "SELECT started_at, ended_at, options FROM runs WHERE id = ?", (runs[1],)
            ).fetchone()
        counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        return RunInfo(
            run_id=meta["run_id"],
            state_path=self.location,
            inventory_path=meta.get("inventory_path"),
            inventory_sha256=meta.get("inventory_sha256", ""),
            created_at=meta.get("created_at", ""),
            started_at=last[0] if last else None,
            ended_at=last[1] if last else None,
            invocations=int(runs[0]) if runs else 0,
            options=json.loads(last[2]) if last and last[2] else {},
            extra_columns=tuple(json.loads(meta.get("extra_columns", "[]"))),
            requests={
                k.removeprefix("requests."): int(v)
                for k, v in counters.items()
                if k.startswith("requests.")
            },
            throttled=int(counters.get("throttled", 0)),
            selection=json.loads(meta.get("selection") or "{}"),
        )

    @property
    def inventory_sha256(self) -> str:
        return self._meta().get("inventory_sha256", "")

    # -- reads -------------------------------------------------------------------

    def counts(self, shard: Shard | None = None) -> dict[TargetState, int]:
        """Targets by state: of the whole campaign, or of one shard."""
        where, params = self._shard_filter(shard, "WHERE")
        counts = {state: 0 for state in TargetState}
        rows = self._conn.execute(
            f"SELECT state, count(*) FROM targets {where} GROUP BY state", params
        )
        for state, n in rows:
            counts[TargetState(state)] = int(n)
        return counts

    def _shard_filter(self, shard: Shard | None, keyword: str) -> tuple[str, list[Any]]:
        """The SQL condition (after `keyword`) that keeps the targets of `shard`."""
        if shard is None:
            return "", []
        return f"{keyword} mod({self.SHARD_HASH}, ?) = ?", [shard.count, shard.index - 1]

    def get(self, target_id: int) -> Target:
        row = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE id = ?", (target_id,)
        ).fetchone()
        if row is None:
            raise KeyError(target_id)
        return _target(row)

    def find(self, project_id: str, server_id: str) -> Target | None:
        row = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE project_id = ? AND server_id = ?",
            (project_id, server_id),
        ).fetchone()
        return _target(row) if row else None

    def find_server(self, server_id: str) -> list[Target]:
        """Every target of this server ID (one per project that lists it)."""
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE server_id = ? ORDER BY id", (server_id,)
        ).fetchall()
        return [_target(row) for row in rows]

    def in_states(self, states: Iterable[TargetState], shard: Shard | None = None) -> list[Target]:
        names = [s.value for s in states]
        marks = ",".join("?" * len(names))
        where, params = self._shard_filter(shard, "AND")
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE state IN ({marks}) {where} ORDER BY id",
            [*names, *params],
        )
        return [_target(row) for row in rows]

    def job_lengths(self, limit: int = 1000) -> list[float]:
        """Seconds from begin to end of the latest jobs that ended (for polling).

        Both times are the service's own: a length measured from this host's clock to
        the service's would take any difference between the clocks (or a step of this
        host's) for job time. Newest targets first, by id: no sort of the whole
        table, so a resume of a large file stays quick. Computed here, not in SQL, so
        both stores share it.
        """
        rows = self._conn.execute(
            "SELECT job_begin_at, job_end_at FROM targets"
            " WHERE state IN ('succeeded', 'failed') AND job_begin_at IS NOT NULL"
            " AND job_end_at IS NOT NULL ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        lengths = []
        for submitted, ended in rows:
            start, end = _when(submitted), _when(ended)
            if start is not None and end is not None and end >= start:
                lengths.append((end - start).total_seconds())
        return lengths

    def pending_after(self, after_id: int, limit: int, shard: Shard | None = None) -> list[Target]:
        """The next page of pending targets (of `shard`); only those of `limit_feed`, when
        it was called."""
        only = " AND id IN (SELECT id FROM feed_only)" if self._feed_limited else ""
        where, params = self._shard_filter(shard, "AND")
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE state = ? AND id > ?{only} {where}"
            " ORDER BY id LIMIT ?",
            (TargetState.PENDING.value, after_id, *params, limit),
        )
        return [_target(row) for row in rows]

    def limit_feed(self, target_ids: Iterable[int]) -> None:
        """From now on, `pending_after` offers only these targets (for `retry`).

        The runner sends what `pending_after` gives it, so this is what keeps a
        retry of a few targets from sending the other pending ones too. The list
        lives in a temporary table of this connection: never in the state file.
        """
        with _translated("select the targets to retry"):
            # Unqualified: both SQLite and PostgreSQL look in the temporary schema first.
            self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS feed_only (id BIGINT PRIMARY KEY)")
            self._conn.execute("DELETE FROM feed_only")
            self._conn.executemany(
                "INSERT INTO feed_only (id) VALUES (?) ON CONFLICT DO NOTHING",
                [(i,) for i in target_ids],
            )
        self._feed_limited = True

    def has_cloud_init_targets(self) -> bool:
        row = self._conn.execute("SELECT 1 FROM targets WHERE cloud_init = 1 LIMIT 1").fetchone()
        return row is not None

    def deferred_pending(self) -> list[int]:
        """Pending targets an invocation deferred (its event says "deferred: ..."), by id."""
        rows = self._conn.execute(
            "SELECT t.id FROM targets t WHERE t.state = ? AND EXISTS (SELECT 1 FROM events e"
            " WHERE e.target_id = t.id AND e.to_state = ? AND e.detail LIKE 'deferred%')"
            " ORDER BY t.id",
            (TargetState.PENDING.value, TargetState.PENDING.value),
        )
        return [int(row[0]) for row in rows]

    def count_without_region(self) -> tuple[int, list[Target]]:
        """Targets with no region (a few of them as examples), for --endpoint-template."""
        n = self._conn.execute("SELECT count(*) FROM targets WHERE region IS NULL").fetchone()[0]
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE region IS NULL ORDER BY id LIMIT 5"
        )
        return int(n), [_target(row) for row in rows]

    def update_pending_specs(self, specs: Iterable[TargetSpec], detail: str) -> int:
        """Give targets nothing was sent for yet new request options; returns how many."""
        changed = 0
        now = utc_now()
        with _translated("update request options"), self._transaction():
            for spec in specs:
                cursor = self._conn.execute(
                    "UPDATE targets SET keyname = ?, userid = ?, mode = ?, byol = ?,"
                    " cloud_init = ?, updated_at = ?"
                    " WHERE project_id = ? AND server_id = ? AND state = ?"
                    " AND (keyname IS DISTINCT FROM ? OR userid IS DISTINCT FROM ?"
                    " OR mode IS DISTINCT FROM ? OR byol IS DISTINCT FROM ?"
                    " OR cloud_init IS DISTINCT FROM ?)",
                    (
                        spec.keyname,
                        spec.userid,
                        spec.mode,
                        None if spec.byol is None else int(spec.byol),
                        int(spec.cloud_init),
                        now,
                        spec.project_id,
                        spec.server_id,
                        TargetState.PENDING.value,
                        spec.keyname,
                        spec.userid,
                        spec.mode,
                        None if spec.byol is None else int(spec.byol),
                        int(spec.cloud_init),
                    ),
                )
                if cursor.rowcount:
                    changed += 1
                    self._conn.execute(
                        "INSERT INTO events (target_id, at, invocation, from_state, to_state,"
                        " detail) SELECT id, ?, ?, state, state, ? FROM targets"
                        " WHERE project_id = ? AND server_id = ?",
                        (now, self.invocation, detail, spec.project_id, spec.server_id),
                    )
        return changed

    def iter_targets(self, batch: int = 2000) -> Iterator[Target]:
        """Every target in inventory order, read in pages so memory stays flat."""
        last = 0
        while True:
            rows = self._conn.execute(
                f"SELECT {TARGET_COLUMNS} FROM targets WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _target(row)
            last = rows[-1][0]

    def events(self, target_id: int | None = None) -> list[Event]:
        if target_id is None:
            rows = self._conn.execute(
                "SELECT target_id, at, invocation, from_state, to_state, detail FROM events"
                " ORDER BY id"
            )
        else:
            rows = self._conn.execute(
                "SELECT target_id, at, invocation, from_state, to_state, detail FROM events"
                " WHERE target_id = ? ORDER BY id",
                (target_id,),
            )
        return [Event(*row) for row in rows]

    def invocations(self) -> list[InvocationInfo]:
        """Every invocation of this state file, oldest first (one row each: few)."""
        rows = self._conn.execute(
            "SELECT id, started_at, ended_at, outcome, options, pid FROM runs ORDER BY id"
        )
        return [
            InvocationInfo(
                number=number,
                started_at=started,
                ended_at=ended,
                outcome=outcome,
                options=json.loads(options) if options else {},
                pid=pid,
            )
            for number, started, ended, outcome, options, pid in rows
        ]

    def samples_iter(self, name: str, batch: int = 5000) -> Iterator[tuple[str, int]]:
        """(at, value) of a sampled counter over time, oldest first, read in pages."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT id, at, value FROM samples WHERE name = ? AND id > ? ORDER BY id LIMIT ?",
                (name, last, batch),
            ).fetchall()
            if not rows:
                return
            for _, at, value in rows:
                yield str(at), int(value)
            last = rows[-1][0]

    def events_iter(self, batch: int = 5000) -> Iterator[Event]:
        """Every event in the order written, read in pages so memory stays flat."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT id, target_id, at, invocation, from_state, to_state, detail FROM events"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Event(*row[1:])
            last = rows[-1][0]

    # -- rollout -----------------------------------------------------------------

    def waves_fixed(self) -> bool:
        """Whether every target has its wave (fixed at the first run with rollout)."""
        row = self._conn.execute("SELECT 1 FROM targets WHERE wave IS NULL LIMIT 1").fetchone()
        return row is None

    def fix_waves(self, waves: Sequence[int]) -> None:
        """Give the targets, in inventory order, the waves `waves` (one per target)."""
        with _translated("record the rollout waves"), self._transaction():
            ids = [r[0] for r in self._conn.execute("SELECT id FROM targets ORDER BY id")]
            if len(ids) != len(waves):
                raise StateError(f"{len(waves)} waves for {len(ids)} targets")
            self._conn.executemany(
                "UPDATE targets SET wave = ? WHERE id = ?", list(zip(waves, ids, strict=True))
            )

    def sizes(self, column: str) -> dict[Any, int]:
        """Targets per project (`project_id`) or per wave (`wave`)."""
        if column not in ("project_id", "wave"):
            raise ValueError(column)
        rows = self._conn.execute(f"SELECT {column}, count(*) FROM targets GROUP BY {column}")
        return {key: int(n) for key, n in rows}

    def final_records(self) -> Iterator[FinalRecord]:
        """Every final target, in the order they became final (their last event).

        Streamed from the query (the database sorts), never held together: a
        resume of a million-target file would otherwise hold ~400 MB of them.
        Read it to the end before the next write on this store.
        """
        names = ",".join("?" * 3)
        rows = self._conn.execute(
            "SELECT (SELECT max(e.id) FROM events e WHERE e.target_id = t.id) AS seq,"
            " t.id, t.project_id, t.state, t.error_code, t.wave, t.intent_at, t.finished_at"
            f" FROM targets t WHERE t.state IN ({names}) ORDER BY seq, t.id",
            [TargetState.SUCCEEDED.value, TargetState.FAILED.value, TargetState.SKIPPED.value],
        )
        for seq, tid, project, state, code, wave, intent, finished in rows:
            yield FinalRecord(
                seq or 0, tid, project, TargetState(state), code, wave, intent, finished
            )

    def wave_state_counts(self) -> dict[int, dict[str, int]]:
        """Targets by wave and state, for the report and `status`."""
        found: dict[int, dict[str, int]] = {}
        for wave, state, n in self._conn.execute(
            "SELECT wave, state, count(*) FROM targets GROUP BY wave, state ORDER BY wave"
        ):
            found.setdefault(int(wave or 1), {})[state] = int(n)
        return found

    def last_event_id(self) -> int:
        row = self._conn.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    def add_rollout(self, records: Sequence[RolloutRecord]) -> None:
        """Append rollout decisions (one transaction)."""
        if not records:
            return
        with _translated("record rollout decisions"), self._transaction():
            self._conn.executemany(
                "INSERT INTO rollout (at, invocation, kind, project_id, wave, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.at, self.invocation, r.kind, r.project_id, r.wave, r.detail) for r in records],
            )

    def rollout_records(self) -> list[RolloutRecord]:
        """Every rollout decision, oldest first (a few per run: not paged)."""
        rows = self._conn.execute(
            "SELECT kind, detail, project_id, wave, at, invocation FROM rollout ORDER BY id"
        )
        return [RolloutRecord(*row) for row in rows]

    # -- writes ------------------------------------------------------------------

    def apply(
        self, changes: Sequence[Change], counters: Mapping[str, int] | None = None
    ) -> list[bool]:
        """Write state changes and counter increments in one transaction.

        Returns, per change, whether it applied: a change whose target is no
        longer in `old` is skipped (and reported False), never forced.
        """
        for change in changes:
            validate(change)
        applied: list[bool] = []
        # Every commit is durable (synchronous=FULL): an intent must be on disk before
        # its request leaves, and an answer (a job id) before the run relies on it.
        with _translated("write state changes"), self._transaction():
            for change in changes:
                sets = ["state = ?", "updated_at = ?"]
                values: list[Any] = [change.new.value, change.at]
                for name, value in change.fields.items():
                    sets.append(f"{name} = ?")
                    values.append(value)
                cursor = self._conn.execute(
                    f"UPDATE targets SET {', '.join(sets)} WHERE id = ? AND state = ?",
                    [*values, change.target_id, change.old.value],
                )
                ok = cursor.rowcount == 1
                applied.append(ok)
                if ok:
                    self._conn.execute(
                        "INSERT INTO events (target_id, at, invocation, from_state, to_state,"
                        " detail) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            change.target_id,
                            change.at,
                            self.invocation,
                            change.old.value,
                            change.new.value,
                            change.detail,
                        ),
                    )
            # In name order: concurrent writers (shards on PostgreSQL) then lock the
            # counter rows in one order and cannot deadlock.
            for name, value in sorted((counters or {}).items()):
                if value:
                    self._conn.execute(
                        "INSERT INTO counters (name, value) VALUES (?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
                        (name, value),
                    )
                if value and name in SAMPLED_COUNTERS:
                    self._conn.execute(
                        "INSERT INTO samples (at, name, value) VALUES (?, ?, ?)",
                        (utc_now(), name, value),
                    )
        return applied

    def note(self, target_id: int, state: TargetState, detail: str) -> None:
        """An event that explains something without changing the state."""
        with _translated("write an event"), self._transaction():
            self._conn.execute(
                "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (target_id, utc_now(), self.invocation, state.value, state.value, detail),
            )

    def reopen(self, target_ids: Iterable[int], detail: str) -> int:
        """Move failed targets back to pending for a new attempt; returns how many.

        The one way out of `failed`, for the operator's `retry` command only
        (`model.OPERATOR_TRANSITIONS`); `apply` never allows it. The error, job
        and times of the failed attempt stay in the event this writes ("retry
        requested: ..."), the attempts count goes on, and the resend cap of
        "not accepted" settlements starts again. A target that is no longer
        failed is left alone.
        """
        check_reopen(TargetState.FAILED, TargetState.PENDING)
        now = utc_now()
        reopened = 0
        with _translated("reopen targets for a retry"), self._transaction():
            for target_id in target_ids:
                row = self._conn.execute(
                    "SELECT error_code, fail_reason, job_id, attempts FROM targets"
                    " WHERE id = ? AND state = ?",
                    (target_id, TargetState.FAILED.value),
                ).fetchone()
                if row is None:
                    continue
                code, reason, job_id, attempts = row
                self._conn.execute(
                    "UPDATE targets SET state = ?, updated_at = ?, error_code = NULL,"
                    " fail_reason = NULL, job_id = NULL, finished_at = NULL, job_begin_at = NULL,"
                    " job_end_at = NULL, not_accepted = 0 WHERE id = ? AND state = ?",
                    (TargetState.PENDING.value, now, target_id, TargetState.FAILED.value),
                )
                self._conn.execute(
                    "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        target_id,
                        now,
                        self.invocation,
                        TargetState.FAILED.value,
                        TargetState.PENDING.value,
                        f"retry requested ({detail}); was failed after {attempts} attempt(s):"
                        f" {code or '-'} {reason or ''}".rstrip()
                        + (f" (job {job_id})" if job_id else ""),
                    ),
                )
                reopened += 1
        return reopened

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT (a full disk can fail there), so that the
            # connection is never left inside a transaction.
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise


# -- helpers ---------------------------------------------------------------------


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        # The shard hash, computed as PostgreSQL and Python compute it (orchestrator.shard).
        conn.create_function("orch_shard_hash", 1, shard_hash, deterministic=True)
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        return conn
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot open state file {path}: {exc}") from exc


# Inodes of state files this process holds locked. A second open in the same
# process is refused from here, without opening (and later closing) another
# descriptor of the file: closing any descriptor drops the process's POSIX locks,
# which SQLite relies on.
_HELD: dict[tuple[int, int], int] = {}


def _in_use(path: Path, pid: int | None = None) -> StateError:
    holder = f" (pid {pid}, this process)" if pid is not None else _holder(path)
    return StateError(
        f"state file {path} is in use by another orchestrator{holder}; "
        "wait for it to finish or stop it first"
    )


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _holder(path: Path) -> str:
    """Who holds the lock, as " (pid N on HOST)", where the state file says."""
    with contextlib.suppress(sqlite3.Error, OSError):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'lock_holder'").fetchone()
        finally:
            conn.close()
        if row and row[0]:
            return f" ({row[0]})"
    return ""


def _lock(path: Path) -> int:
    """Hold an exclusive lock on the state file itself (not on its name) for the run.

    flock() on the database file: a symlink, a relative path or a hard link all
    reach the same inode, hence the same lock. SQLite's own locks are fcntl()
    locks, which flock() does not touch on Linux.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise StateError(f"cannot open state file {path}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) in _HELD:
        os.close(fd)
        raise _in_use(path, os.getpid())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _in_use(path) from None
    _HELD[(info.st_dev, info.st_ino)] = fd
    return fd


def _create_locked(path: Path, prepare: Callable[[Path], None]) -> int:
    """Create `path` owner-only and already locked, `prepare`d under a temporary name
    before it takes its own; refuse if it exists."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create state file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            prepare(temp)
        except BaseException:
            os.close(fd)
            raise
        try:
            os.link(temp, path)  # atomic: fails if the name exists
        except FileExistsError:
            os.close(fd)
            raise StateExists(f"state file {path} already exists") from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot create state file {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    info = os.fstat(fd)
    _HELD[(info.st_dev, info.st_ino)] = fd
    return fd


def schema_statements(id_type: str) -> Iterator[str]:
    """The statements that create the schema of this version, in the dialect given by
    `id_type` (the auto-numbered key), columns of later versions included."""
    for statement in TABLES:
        yield statement.format(pk=id_type)
    for version in sorted(MIGRATIONS):
        for column in MIGRATIONS[version]:
            yield f"ALTER TABLE targets ADD COLUMN {column}"
    yield from INDEXES
    for version in sorted(MIGRATION_TABLES):
        for statement in MIGRATION_TABLES[version]:
            yield statement.format(pk=id_type)


def creation_meta() -> list[tuple[str, str]]:
    """The meta rows written with the schema: who made the store, its version and run id."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    return [
        ("creator", CREATOR),
        ("schema_version", str(SCHEMA_VERSION)),
        ("run_id", run_id),
        ("created_at", utc_now()),
    ]


def _write_schema(path: Path) -> None:
    """The schema and the rows that prove this tool made the file, in one transaction,
    in a rollback-journal database (no log file beside the temporary name)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        with _translated("create the schema"):
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in schema_statements(StateStore.ID_TYPE):
                conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", creation_meta())
            conn.execute("COMMIT")
    finally:
        conn.close()


def backup(path: Path, destination: Path) -> None:
    """Copy a state file into `destination`, one self-contained file (SQLite's backup
    API: the database and what its log holds), marked closed, owner-only. Refused while
    a run holds the state file (the copy would be out of date at once) and when its
    journal is lost (the copy would lose the same changes)."""
    check_state_file(path)
    lock_fd = _lock(path)
    try:
        lost = _journal_lost(path)
        if lost is not None:
            raise lost
        try:
            fd = os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StateError(f"cannot create {destination}: {exc.strerror}") from exc
        os.close(fd)
        try:
            source = _connect(path, readonly=True)
            try:
                copy = sqlite3.connect(str(destination), isolation_level=None)
                try:
                    with _translated("copy the state file"):
                        source.backup(copy)
                        copy.execute("PRAGMA journal_mode = DELETE")
                        copy.executemany(
                            "INSERT INTO meta (key, value) VALUES (?, ?)"
                            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            [("journal", "closed"), ("copied_from", str(path)),
                             ("copied_at", utc_now())],
                        )  # fmt: skip
                finally:
                    copy.close()
            finally:
                source.close()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(destination)
            raise
    finally:
        _unlock(lock_fd)


def check_companions(path: Path, *, new: bool = False) -> None:
    """SQLite opens `STATE-wal` and `STATE-shm` itself, following links: one planted
    beside the state file (a folder others can write to) would have it write its
    log wherever the link points. A link there is refused; so is any companion of a
    state file being created (it cannot be ours)."""
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.is_symlink() or (new and os.path.lexists(companion)):
            what = "a symbolic link" if companion.is_symlink() else "already there"
            raise StateError(
                f"{companion} is {what}: SQLite would write the state's journal through"
                " it. Nothing was changed; remove it, or keep state files in a folder only"
                " you can write to"
            )


def check_state_file(path: Path) -> None:
    """A state file is a regular file (or a link to one): never a device, a pipe or a
    directory, which the tool would otherwise open, and could replace."""
    check_companions(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise StateError(f"state file {path} does not exist") from None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StateError(
            f"{path} is not a regular file (a device, a pipe or a directory): --state must"
            " name an orchestrator state file, or a path where one can be created"
        )
    # Read before SQLite opens it: opening would already write a header into an empty
    # file, and switch someone else's database to WAL.
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    if head != SQLITE_HEADER:
        what = "is empty" if not head else "is not a SQLite database"
        raise StateError(
            f"{path} is not an orchestrator state file: it {what}. Nothing was changed;"
            " name a new path with --state, or an orchestrator state file"
        )


def _journal_lost(path: Path) -> JournalLost | None:
    """The refusal for a state file left open by a run whose log is now missing, or
    None. The main file alone is read (`immutable`), so that SQLite creates no empty
    log in place of the lost one."""
    wal = Path(f"{path}-wal")
    with contextlib.suppress(FileNotFoundError):
        if wal.stat().st_size > 0:
            return None
    uri = f"file:{urllib.parse.quote(str(path))}?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = dict(
                conn.execute(
                    "SELECT key, value FROM meta WHERE key IN"
                    " ('journal', 'journal_opened_at', 'sending_began_at')"
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # not readable as ours: the checks after opening say why
    if rows.get("journal") != "open":
        return None
    sent = rows.get("sending_began_at")
    what = (
        f"reinstalls were being sent from it (since {sent})"
        if sent and sent >= (rows.get("journal_opened_at") or "")
        else "reinstalls may have been sent from it"
    )
    return JournalLost(
        f"state file {path} was left by a run that did not end cleanly (taken"
        f" {rows.get('journal_opened_at', '?')}), and its journal {wal} is missing or"
        f" empty: {what}, and the latest intents, job ids and results were in that"
        " journal. Resuming without it could reinstall a server a second time. Put the"
        f" journal back next to the state file (a state file is two files while a run"
        " holds it: copy one with `orchestrator backup`), then run again. If it is lost"
        " for good, add --journal-lost: every target not final is then settled from its"
        " server before anything is sent"
    )


def _unlock(fd: int | None) -> None:
    if fd is None:
        return
    for key, held in list(_HELD.items()):
        if held == fd:
            del _HELD[key]
    with contextlib.suppress(OSError):
        os.close(fd)


def remove_state_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(path) + suffix)


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn SQLite's errors into a StateError that says what could not be done."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            reason = "the state file is locked by another program"
        elif "full" in text:
            reason = "the disk is full"
        elif "readonly" in text:
            reason = "the state file is read-only"
        else:
            reason = text
        raise StateError(f"could not {action}: {reason}; nothing already recorded is lost") from exc
    except sqlite3.DatabaseError as exc:
        raise StateError(f"could not {action}: {exc}") from exc
    except StoreFailure as exc:
        raise StoreFailure(f"could not {action}: {exc}") from exc


def _target(row: Sequence[Any]) -> Target:
    (
        tid,
        project_id,
        server_id,
        region,
        keyname,
        userid,
        mode,
        byol,
        extra,
        line,
        state,
        job_id,
        attempts,
        error_code,
        fail_reason,
        launched_at_before,
        intent_at,
        submitted_at,
        finished_at,
        updated_at,
        first_launched_at,
        status_before,
        updated_before,
        not_accepted,
        job_begin_at,
        job_end_at,
        cloud_init,
        wave,
        intent_service_at,
        intent_error,
    ) = row
    spec = TargetSpec(
        project_id=project_id,
        server_id=server_id,
        keyname=keyname,
        userid=userid,
        line=line or 0,
        region=region,
        mode=mode,
        byol=None if byol is None else bool(byol),
        extra=json.loads(extra) if extra else {},
        cloud_init=bool(cloud_init),
    )
    return Target(
        id=tid,
        spec=spec,
        state=TargetState(state),
        job_id=job_id,
        attempts=attempts,
        error_code=error_code,
        fail_reason=fail_reason,
        launched_at_before=launched_at_before,
        intent_at=intent_at,
        intent_service_at=intent_service_at,
        intent_error=intent_error,
        submitted_at=submitted_at,
        finished_at=finished_at,
        updated_at=updated_at,
        first_launched_at=first_launched_at,
        status_before=status_before,
        updated_before=updated_before,
        not_accepted=not_accepted or 0,
        job_begin_at=job_begin_at,
        job_end_at=job_end_at,
        wave=wave,
    )


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time of the state file (or the service), as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
