"""What every part of the state store shares: the connection and its dialect, the
transaction, the translation of driver errors, and the meta table.

The store's SQL is written in the dialect both SQLite and PostgreSQL accept (`?`
placeholders, `INSERT ... ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`); what
differs is in the few attributes and methods of `StoreBase` (and of `StateStore`)
that `PgStore` overrides: the id column type, the shard hash, the database's
clock, `_transaction`, locking, the schema check. A method added with portable SQL
works on both stores unchanged.

The parts of the store are classes over this one, each in the module named after
what it holds, and `StateStore` is all of them:

    reads.py     targets, events, runs and rollout records read back
    changes.py   state changes (the transition table, checked), events, counters
    journal.py   the marks that make a lost SQLite journal visible
    sqlite.py    `StateStore`: creating, opening, checking and closing a store
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.engine.shard import Shard
from orchestrator.errors import StateError


class StoreFailure(StateError):
    """The database behind the state store failed (a driver's error, translated)."""


class StateExists(StateError):
    """The state store to be created exists already."""


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
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


class StoreBase:
    """A state store's connection, its dialect, its transactions and its meta table."""

    # The dialect's auto-numbered primary key, for the schema's TABLES.
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
        self._feed_limited = False  # see TargetReads.limit_feed
        # Opened for reading although its journal was lost: why what it shows is old.
        self.journal_missing: str | None = None

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

    def _shard_filter(self, shard: Shard | None, keyword: str) -> tuple[str, list[Any]]:
        """The SQL condition (after `keyword`) that keeps the targets of `shard`."""
        if shard is None:
            return "", []
        return f"{keyword} mod({self.SHARD_HASH}, ?) = ?", [shard.count, shard.index - 1]

    # -- the meta table ---------------------------------------------------------------

    def meta_value(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with translated("record run settings"), self._transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _set_meta_values(self, values: dict[str, str]) -> None:
        """Several meta rows written (or replaced) inside the caller's transaction."""
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def _meta(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self._conn.execute("SELECT key, value FROM meta")}

    @property
    def inventory_sha256(self) -> str:
        return self._meta().get("inventory_sha256", "")
