"""The state store: one SQLite database per fleet run (or a PostgreSQL schema, see
`orchestrator.store.pg`). `StateStore` creates, opens, checks and closes it; what it
reads and writes is in the parts it is made of:

    schema.py    the tables, migrations and the rows written with them
    records.py   the dataclasses it takes and gives back (Change, Event, ...)
    base.py      the connection, its dialect, transactions, translated errors, meta
    reads.py     targets, events, runs and rollout records read back
    changes.py   state changes checked against the transition table, with events
    journal.py   the marks that make a lost SQLite journal visible
    files.py     the file on disk: checks, lock, creation, backup, removal
    status.py    `status`'s own read-only queries (no lock, never in a run's way)
    scratch.py   a private scratch database the report sorts durations in

Every query of the orchestrator is in this package, and this package is the only
one that imports sqlite3, sqlite-utils or psycopg.

sqlite-utils reads which tables a file holds (`schema.sqlite_table_names`). The
import writes its rows with `executemany` of one prepared INSERT, not with
`insert_all`: that took 40 to 60 % more CPU to import 100,000 targets (its
per-value conversion and multi-row INSERTs; benchmarks/store_import.py), and
PostgreSQL needs this path anyway. Transactions stay the store's own (`BEGIN IMMEDIATE`,
`synchronous=FULL`, the commit before a request leaves), not sqlite-utils'
`atomic()` (a deferred BEGIN). Why, in full: docs/store.md.

A file is only ever deleted when it is proven to be an import this tool began and
never finished: the schema and a `creator` row are written before the file takes
its name, so an empty file, a device or someone else's database is never mistaken
for one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import IncompleteImport, StateError
from orchestrator.model import TargetSpec, TargetState
from orchestrator.store import files
from orchestrator.store.base import StateExists, StoreFailure, translated
from orchestrator.store.changes import TargetChanges
from orchestrator.store.files import backup, file_sha256
from orchestrator.store.journal import Journal
from orchestrator.store.reads import TargetReads
from orchestrator.store.records import (
    Change,
    Event,
    FinalRecord,
    RolloutRecord,
    utc_now,
)
from orchestrator.store.schema import (
    CREATOR,
    OUR_TABLES,
    SCHEMA_VERSION,
    creation_meta,
    migration_statements,
    schema_statements,
    sqlite_table_names,
)

# `StateStore` and, for code that imports them from here, the names it is used with.
__all__ = [
    "SCHEMA_VERSION",
    "Change",
    "Event",
    "FinalRecord",
    "RolloutRecord",
    "StateExists",
    "StateStore",
    "StoreFailure",
    "backup",
    "file_sha256",
    "utc_now",
]

IMPORT_BATCH = 5000


class StateStore(Journal, TargetChanges, TargetReads):
    """A state file opened for reading, or (with the lock held) for a run."""

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
        # A new folder for it is the owner's only, as the file is.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.check_companions(path, new=True)
        # Made under a temporary name with its schema and `creator` row, locked, then
        # linked into place: nobody ever sees it unlocked, and it is never without
        # the proof that this tool made it.
        lock_fd = files.create_locked(path, _write_schema)
        store: StateStore | None = None
        try:
            store = cls(path, files.connect(path), lock_fd)
            store._import(targets, inventory_path, inventory_sha256, extra_columns, validate, {})
            store._open_journal()
            return store
        except BaseException:
            if store is not None:
                store._conn.close()
            files.remove_state_files(path)
            files.unlock(lock_fd)
            raise

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, journal_lost: bool = False) -> StateStore:
        """Open an existing state file; for a run (not `readonly`) take its lock.

        A file whose journal was lost is refused (`JournalLost`), unless
        `journal_lost`: then every target not final is put in doubt, to be settled
        from its server before anything is sent (`suspect_unfinished`).
        """
        files.check_state_file(path)
        lock_fd = None if readonly else files.lock(path)
        conn: sqlite3.Connection | None = None
        try:
            lost = files.journal_lost(path)
            if lost is not None and not readonly and not journal_lost:
                raise lost
            conn = files.connect(path, readonly=readonly)
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
            files.unlock(lock_fd)
            raise

    @classmethod
    def discard_incomplete(cls, path: Path) -> None:
        """Delete a state file whose import never finished, under its lock.

        Under the lock, so that a file another process is still creating is never
        taken for an abandoned one; and only a file `_check` proves this tool began.
        """
        files.check_state_file(path)
        lock_fd = files.lock(path)
        try:
            conn = files.connect(path, readonly=True)
            try:
                cls(path, conn, None)._check(migrate=False)
            except IncompleteImport:
                pass
            else:
                raise StateError(f"state file {path} is complete; not deleting it")
            finally:
                conn.close()
            files.remove_state_files(path)
        finally:
            files.unlock(lock_fd)

    def close(self) -> None:
        if self._lock_fd is not None:
            # A clean end: the log written back into the main file, which says so.
            with contextlib.suppress(StateError, sqlite3.Error):
                self._mark_journal("closed")
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        files.unlock(self._lock_fd)
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
        with translated("import the inventory"), self._transaction():
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
            self._set_meta_values(meta)

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
        return sqlite_table_names(self._conn)

    def _integrity_check(self) -> None:
        with translated("check the state file"):
            result = self._conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise StateError(f"state file {self.path} is corrupt: {result[0] if result else '?'}")

    def _migrate(self, version: int) -> str:
        """Bring an older state file up to this schema (columns only ever added)."""
        if version >= SCHEMA_VERSION:
            return str(version)
        with translated("upgrade the state file"), self._transaction():
            for statement in migration_statements(version, self.ID_TYPE):
                self._conn.execute(statement)
            self._conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
        return str(SCHEMA_VERSION)


def _write_schema(path: Path) -> None:
    """The schema and the rows that prove this tool made the file, in one transaction,
    in a rollback-journal database (no log file beside the temporary name)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        with translated("create the schema"):
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in schema_statements(StateStore.ID_TYPE):
                conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", creation_meta())
            conn.execute("COMMIT")
    finally:
        conn.close()
