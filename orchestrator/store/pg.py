"""The state store on PostgreSQL: one schema `orch_<campaign>` per campaign.

`PgStore` is a `StateStore` whose connection is PostgreSQL: the tables, events,
migrations and every query are the SQLite store's (written in SQL both accept);
this module swaps what differs:

    connection   psycopg 3, autocommit, our own BEGIN/COMMIT (`_transaction`);
                 `?` placeholders become `%s`; driver errors become StoreFailure
    durability   synchronous_commit=on for the session: a COMMIT returns once the
                 intent is on the server's disk, whatever the server's default
    the lock     a session-level advisory lock held for the whole run, on the same
                 connection every write uses: a runner whose connection is gone has
                 lost the lock and can no longer commit an intent, so it cannot send
    liveness     TCP keepalives (client and server) and a TCP user timeout: a dead
                 host's session, and its lock, end on the server within ~30 s

psycopg 3 rather than asyncpg: the store runs on the writer's one worker thread
with plain blocking calls, as the SQLite store does; asyncpg would need the event
loop and a second code path for every method. No password is ever taken from the
command line (see `PgLocation`); libpq reads PGPASSWORD or ~/.pgpass itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from orchestrator.engine.shard import Shard
from orchestrator.errors import StateError
from orchestrator.model import TargetSpec
from orchestrator.store.base import StateExists, StoreFailure
from orchestrator.store.schema import creation_meta, schema_statements
from orchestrator.store.sqlite import StateStore

log = logging.getLogger("orchestrator.state")

# libpq settings we choose unless the DSN says otherwise: the client notices a dead
# server, and a dead server link ends a write, within about 30 s.
CLIENT_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
# The same on the server side, per session: when the runner's host dies, the server
# probes the idle session after 10 s, gives up after 3 unanswered probes 5 s apart
# (or 30 s of unacknowledged data) and ends it, which frees the advisory lock.
SESSION_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "idle_in_transaction_session_timeout": "60s",
    "synchronous_commit": "on",
}
# The bound the manual states (docs/how-to/postgresql.md), from the settings above.
TAKEOVER_SECONDS = 30
# The second half of the advisory lock key: 0 is the whole campaign (a sharded
# runner holds it shared, an unsharded one exclusively); shard K of N is N*1000+K.
WHOLE = 0
CREATE = -1  # serialises creating and migrating a campaign's schema
LOCK_GRACE = 0.5  # seconds a busy lock is tried again before refusing


class LockBusy(StateError):
    """The campaign, or the shard, is held by another runner."""


class PgConnection:
    """psycopg's connection with the calls the store makes on sqlite3's, and its errors
    translated into StoreFailure (with the cause kept)."""

    def __init__(self, conn: psycopg.Connection[Any], where: str) -> None:
        self._conn = conn
        self._where = where

    def execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        try:
            return self._conn.execute(_dialect(query, bool(params)), params or None)
        except psycopg.Error as exc:
            raise self.failure(exc) from exc

    def executemany(self, query: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(_dialect(query, True), rows)
        except psycopg.Error as exc:
            raise self.failure(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return self._conn.broken or self._conn.closed

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.close()

    def failure(self, exc: psycopg.Error) -> StoreFailure:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self._conn.broken or isinstance(exc, psycopg.OperationalError):
            return StoreFailure(
                f"lost the connection to PostgreSQL ({self._where}): {first}; nothing more"
                " can be recorded, so nothing more is sent"
            )
        return StoreFailure(f"PostgreSQL ({self._where}): {first}")


@lru_cache(maxsize=512)
def _dialect(query: str, has_params: bool) -> str:
    """sqlite3's `?` placeholders as psycopg's `%s` (outside quoted literals)."""
    if not has_params:
        return query
    # psycopg reads every % as a placeholder, quoted or not; a ? in a literal stays.
    parts = re.split(r"('(?:[^']|'')*')", query.replace("%", "%%"))
    return "".join(part if part.startswith("'") else part.replace("?", "%s") for part in parts)


class PgStore(StateStore):
    """A campaign's state in a PostgreSQL schema; opened by `PgLocation`."""

    ID_TYPE = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    SHARD_HASH = "('x' || substr(md5(server_id), 1, 8))::bit(32)::bigint"
    DB_NOW_MS = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    SHARED = True

    def __init__(self, location: PgLocation, conn: PgConnection) -> None:
        super().__init__(Path(location.schema), conn, None, location=location.label)
        self._pg = conn
        self._where = location
        self._depth = 0

    # -- what differs from SQLite ----------------------------------------------------

    def _table_names(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            (self._where.schema,),
        )
        return {row[0] for row in rows}

    def _integrity_check(self) -> None:
        """The server keeps its own pages consistent; nothing to check from here."""

    def _mark_journal(self, state: str) -> None:
        """The server's own log is never apart from its database: nothing to mark."""

    def _checkpoint(self, mode: str = "RESTART") -> None:
        """The server checkpoints its own log."""

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # Nested uses (the import inside the creation) join the outer transaction.
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN")
        self._depth = 1
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if not self._pg.broken and self._pg.in_transaction:
                with contextlib.suppress(StateError):
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    def _migrate(self, version: int) -> str:
        # Shards opening an older campaign at once: one migrates, the others then
        # find the new version (the base class re-reads nothing, so check here).
        with self._transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (self._where.key, CREATE))
            current = self.meta_value("schema_version") or str(version)
            return super()._migrate(int(current))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[tuple[PgConnection, set[str], bool]]:
        """For `status`: one consistent read of the campaign (its connection, its
        tables), and whether a runner holds it now."""
        running = bool(self.holders(exclude_self=True))
        tables = self._table_names()
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self._pg, tables, running
        finally:
            with contextlib.suppress(StateError):
                self._conn.execute("ROLLBACK")

    # -- the campaign lock ----------------------------------------------------------

    def take_lock(self, shard: Shard | None) -> None:
        """Hold the campaign (or one shard of it) for this session, or refuse.

        Tried for up to LOCK_GRACE seconds: a runner that has just exited may still be
        ending its session on the server (closing a connection does not wait for it).
        """
        deadline = time.monotonic() + LOCK_GRACE
        while True:
            try:
                self._take_lock(shard)
                return
            except LockBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _take_lock(self, shard: Shard | None) -> None:
        key = self._where.key
        if shard is None:
            ok = self._try("SELECT pg_try_advisory_lock(?, ?)", key, WHOLE)
            mine = WHOLE
        else:
            mine = shard.count * 1000 + shard.index
            ok = self._try("SELECT pg_try_advisory_lock_shared(?, ?)", key, WHOLE) and self._try(
                "SELECT pg_try_advisory_lock(?, ?)", key, mine
            )
            if ok:
                other = self._other_split(shard.count)
                if other is not None:
                    self._release()
                    raise StateError(
                        f"{self._where.describe} is being run as {other} shards; run shard"
                        f" {shard} only with the same number of shards ({other})"
                    )
        if not ok:
            holders = self.holders(exclude_self=True)
            self._release()
            what = self._where.describe + (f", shard {shard}" if shard else "")
            raise LockBusy(
                f"{what} is in use by another orchestrator"
                f" ({'; '.join(holders) or 'a session of another database user'});"
                " wait for it to finish or stop it first"
            )
        log.debug("holding %s (lock %s/%s)", self._where.describe, key, mine)

    def _try(self, query: str, *args: int) -> bool:
        row = self._conn.execute(query, args).fetchone()
        return bool(row and row[0])

    def _other_split(self, count: int) -> int | None:
        """The shard count of another runner holding a shard of this campaign, if not ours."""
        for objid, _ in self._locks(exclude_self=True):
            split = _shard_lock(objid)
            if split is not None and split[1] != count:
                return split[1]
        return None

    def _locks(self, *, exclude_self: bool) -> list[tuple[int, int]]:
        rows = self._conn.execute(
            "SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory'"
            " AND objsubid = 2 AND classid = ?::bigint::oid AND granted"
            + (" AND pid <> pg_backend_pid()" if exclude_self else ""),
            (self._where.key,),
        ).fetchall()
        return [(int(objid), int(pid)) for objid, pid in rows]

    def holders(self, *, exclude_self: bool = False) -> list[str]:
        """Who holds this campaign's locks: "orchestrator pid N on HOST (shard K/N)"."""
        rows = self._conn.execute(
            "SELECT l.objid::bigint, a.application_name, host(a.client_addr), a.backend_start"
            " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.objsubid = 2"
            " AND l.classid = ?::bigint::oid AND l.granted"
            + (" AND l.pid <> pg_backend_pid()" if exclude_self else "")
            + " ORDER BY l.objid",
            (self._where.key,),
        ).fetchall()
        seen: dict[str, list[str]] = {}
        for objid, app, addr, since in rows:
            who = app or "an unnamed session"
            if addr:
                who += f", connected from {addr}"
            if since is not None:
                who += f" since {since:%Y-%m-%d %H:%M:%S %Z}".rstrip()
            parts = seen.setdefault(who, [])
            split = _shard_lock(int(objid))
            if split is not None:
                parts.append(f"shard {split[0]}/{split[1]}")
        return [f"{who} ({', '.join(p)})" if p else who for who, p in seen.items()]

    def _release(self) -> None:
        with contextlib.suppress(StateError):
            self._conn.execute("SELECT pg_advisory_unlock_all()")


def _shard_lock(objid: int) -> tuple[int, int] | None:
    """(K, N) of a shard's lock key N*1000+K; None for the campaign's own keys (pg_locks
    shows the key as an unsigned oid, so CREATE's -1 reads as 4294967295)."""
    if 1000 < objid < 1_000_000 and 1 <= objid % 1000 <= objid // 1000:
        return objid % 1000, objid // 1000
    return None


class PgLocation:
    """A campaign in a PostgreSQL database: `--state postgresql://... --campaign NAME`."""

    def __init__(self, dsn: str, campaign: str) -> None:
        self.dsn = dsn
        self.campaign = campaign
        self.schema = f"orch_{campaign}"
        # The lock key's first half: stable for the schema name, non-negative so that
        # it reads the same in pg_locks (an oid) as in pg_try_advisory_lock (an int).
        self.key = zlib.crc32(self.schema.encode()) & 0x7FFFFFFF
        self.label = f"{dsn} (campaign {campaign})"
        self.describe = f"campaign {campaign} in {dsn}"

    # -- the StateLocation calls -------------------------------------------------------

    def exists(self) -> bool:
        with contextlib.closing(self._connect(readonly=True)) as conn:
            row = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = ?"
                " AND table_name = 'meta'",
                (self.schema,),
            ).fetchone()
        return row is not None

    def open(
        self, *, readonly: bool = False, shard: Shard | None = None, journal_lost: bool = False
    ) -> StateStore:
        # `journal_lost` concerns SQLite's -wal file only: the server keeps its own log.
        store = PgStore(self, self._connect(readonly=readonly))
        try:
            if not readonly:
                store.take_lock(shard)
            if "meta" not in store._table_names():
                raise StateError(
                    f"{self.describe} does not exist; start it with"
                    f" `orchestrator run INVENTORY --state {self.dsn} --campaign {self.campaign}`"
                )
            store._check(migrate=not readonly)
            return store
        except BaseException:
            store.close()
            raise

    def create(
        self,
        targets: Iterable[TargetSpec],
        *,
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]] = tuple,
        validate: Callable[[], None] | None = None,
        shard: Shard | None = None,
    ) -> StateStore:
        """Create the schema and import the targets in one transaction (DDL included):
        a creation that fails or is killed leaves nothing behind."""
        store = PgStore(self, self._connect(readonly=False))
        try:
            store.take_lock(shard)
            with store._transaction():
                store._conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (self.key, CREATE))
                if "meta" in store._table_names():
                    # Created meanwhile (another shard started at the same time).
                    raise StateExists(f"{self.describe} exists already")
                store._conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                    .format(sql.Identifier(self.schema))
                    .as_string(None)
                )
                for statement in schema_statements(store.ID_TYPE):
                    store._conn.execute(statement)
                store._conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", creation_meta()
                )
                store._import(
                    targets, inventory_path, inventory_sha256, extra_columns, validate, {}
                )
            return store
        except BaseException:
            store.close()
            raise

    def discard_incomplete(self) -> None:
        """Never needed: a campaign's creation is one transaction."""

    def log_path(self, report_dir: Path, shard: Shard | None) -> Path:
        part = f".shard{shard.index}of{shard.count}" if shard else ""
        return report_dir / f"{self.campaign}{part}.log"

    def resume_args(self) -> str:
        return f"--state {self.dsn} --campaign {self.campaign}"

    # -- connecting ----------------------------------------------------------------------

    def _connect(self, *, readonly: bool) -> PgConnection:
        given = psycopg.conninfo.conninfo_to_dict(self.dsn)
        extra = {k: v for k, v in CLIENT_DEFAULTS.items() if k not in given}
        extra.setdefault("application_name", application_name())
        try:
            conn = psycopg.connect(
                psycopg.conninfo.make_conninfo(self.dsn, **extra), autocommit=True
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise StateError(f"cannot connect to PostgreSQL at {self.dsn}: {first}") from exc
        wrapped = PgConnection(conn, self.describe)
        try:
            settings = dict(SESSION_SETTINGS)
            if readonly:
                settings["default_transaction_read_only"] = "on"
            for name, value in settings.items():
                wrapped.execute("SELECT set_config(?, ?, false)", (name, value))
            wrapped.execute("SELECT set_config('search_path', ?, false)", (self.schema,))
        except BaseException:
            wrapped.close()
            raise
        return wrapped


def application_name() -> str:
    """What other sessions see of this one in pg_stat_activity (at most 63 bytes)."""
    return f"orchestrator pid {os.getpid()} on {socket.gethostname()}"[:63]


def campaigns(dsn: str) -> list[str]:
    """The campaigns in a database (schemas orch_* with a meta table)."""
    with contextlib.closing(PgLocation(dsn, "x")._connect(readonly=True)) as conn:
        rows = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'meta'"
            " AND table_schema LIKE 'orch\\_%' ORDER BY 1"
        ).fetchall()
    return [str(row[0]).removeprefix("orch_") for row in rows]
