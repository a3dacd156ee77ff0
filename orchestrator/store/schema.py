"""The state store's schema, in SQL that SQLite and PostgreSQL both accept.

Tables:
    meta      key/value: schema version, run id, inventory hash, extra columns
    runs      one row per invocation (run or resume): options, start, end, outcome
    targets   one row per server: state, job_id, attempts, errors, timestamps
    events    append-only: every state change of every target, with why
    counters  requests sent by kind, throttling answers
    samples   throttled answers over time, for the report's timeline
    rollout   append-only: every rollout decision (window, wave, budget, breaker)
    runners   the runners sharing a campaign right now (PostgreSQL shards)

One definition serves both stores: `{pk}` stands for the dialect's auto-numbered
key (`StateStore.ID_TYPE`), and a store made today is created by the same
statements, in the same order, as an older one upgraded by `MIGRATIONS`, so both
hold the same schema. sqlite-utils is used here for what it is made for and what
needs no second definition: reading which tables a SQLite file holds
(`sqlite_table_names`). Creating the tables and adding columns through it would
write the schema a second time, for SQLite alone, in other words (it cannot state
the `UNIQUE (project_id, server_id)` of `targets`): see docs/store.md.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from orchestrator.store.records import utc_now

SCHEMA_VERSION = 7
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
    # The system disk's volume ID (boot index 0) before the latest and the first attempt:
    # a reinstall replaces it, the one change the documentation promises.
    7: ("volume_before TEXT", "first_volume TEXT"),
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
# Written with the schema, before the file takes its name: proof that this tool made it.
CREATOR = "ecs-reinstall-orchestrator"

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


def migration_statements(version: int, id_type: str) -> Iterator[str]:
    """The statements that bring a store of schema `version` up to this one (columns
    and tables only ever added), in the dialect given by `id_type`."""
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for column in MIGRATIONS.get(step, ()):
            yield f"ALTER TABLE targets ADD COLUMN {column}"
        for statement in MIGRATION_TABLES.get(step, ()):
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


def sqlite_table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables a SQLite database holds (sqlite-utils' introspection).

    Neither its recursive-triggers pragma nor its plugins touch the connection: a
    plugin installed beside this tool must never change how the state is read or
    written.
    """
    import sqlite_utils  # here: ~35 ms of imports every command would pay otherwise

    database = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    return set(database.table_names())
