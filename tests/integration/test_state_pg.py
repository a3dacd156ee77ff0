"""The PostgreSQL store: DSN rules, the campaign lock, shards, a lost connection,
atomic creation and migrations. On a real PostgreSQL (ORCH_TEST_PG)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from orchestrator.engine.shard import Shard, parse_shard
from orchestrator.errors import StateError, UsageError
from orchestrator.model import TargetSpec, TargetState
from orchestrator.store import check_campaign, open_store, pg_location
from orchestrator.store.pg import application_name
from orchestrator.store.sqlite import MIGRATIONS, SCHEMA_VERSION, Change, StateStore, StoreFailure

S = TargetState
SHA = "cd" * 32
pytestmark = pytest.mark.timeout(30)


def specs(count: int) -> list[TargetSpec]:
    return [
        TargetSpec(
            project_id="0123456789abcdef0123456789abcdef",
            server_id=f"00000000-0000-4000-8000-{n:012x}",
            keyname="k",
            userid="u",
            line=n + 1,
        )
        for n in range(1, count + 1)
    ]


def create(location: Any, count: int = 20, shard: Shard | None = None) -> StateStore:
    store: StateStore = location.create(
        specs(count), inventory_path="fleet.csv", inventory_sha256=SHA, shard=shard
    )
    return store


def admin(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params or None).fetchall()


# -- DSN and campaign names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://orch:s3cret-pw@127.0.0.1:5432/db",
        "postgresql://orch@127.0.0.1:5432/db?password=s3cret-pw",
        "postgres://orch@127.0.0.1/db?sslmode=require&sslpassword=s3cret-pw",
    ],
)
def test_a_dsn_with_a_password_is_refused_without_repeating_it(dsn: str) -> None:
    with pytest.raises(UsageError, match="PGPASSWORD") as info:
        pg_location(dsn, "fleet")
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize("name", ["", "Fleet", "1fleet", "a-b", "x" * 41, "a;drop"])
def test_campaign_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(UsageError, match="--campaign"):
        check_campaign(name)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1", "1/1000"])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_a_missing_campaign_name_lists_those_there(pg_dsn: str, pg_campaign: Any) -> None:
    create(pg_campaign("listed")).close()
    with pytest.raises(UsageError, match=r"--campaign NAME \(campaigns there: .*listed"):
        open_store(pg_dsn)


# -- the lock ------------------------------------------------------------------------------


def test_a_second_runner_is_refused_with_the_holders_host_and_pid(pg_campaign: Any) -> None:
    location = pg_campaign()
    with create(location):
        with pytest.raises(StateError, match="in use by another orchestrator") as info:
            location.open()
        assert application_name() in str(info.value)  # "orchestrator pid N on HOST"
        # Status from anywhere: a read-only open needs no lock.
        with location.open(readonly=True) as reader:
            assert reader.counts()[S.PENDING] == 20
    location.open().close()  # free again once the holder closed


def test_shards_of_one_split_run_together_and_exclude_everything_else(pg_campaign: Any) -> None:
    location = pg_campaign()
    create(location).close()
    one = location.open(shard=Shard(1, 2))
    two = location.open(shard=Shard(2, 2))
    try:
        with pytest.raises(StateError, match="shard 1/2 is in use"):
            location.open(shard=Shard(1, 2))
        with pytest.raises(StateError, match="being run as 2 shards"):
            location.open(shard=Shard(1, 3))
        with pytest.raises(StateError, match="in use by another orchestrator"):
            location.open()  # the whole campaign
    finally:
        one.close()
        two.close()
    whole = location.open()
    try:
        with pytest.raises(StateError, match="in use"):
            location.open(shard=Shard(2, 2))
    finally:
        whole.close()


def test_shards_partition_the_targets_as_python_computes_them(
    new_location: Callable[..., Any],
) -> None:
    with create(new_location(), count=60) as store:
        everything = {t.id: t for t in store.iter_targets()}
        seen: list[int] = []
        for index in (1, 2, 3):
            shard = Shard(index, 3)
            expected = sorted(i for i, t in everything.items() if shard.holds(t.server_id))
            pending = [t.id for t in store.pending_after(0, 1000, shard)]
            assert pending == expected
            assert store.counts(shard)[S.PENDING] == len(expected)
            seen += pending
        assert sorted(seen) == sorted(everything)  # disjoint and complete
        first = next(iter(everything.values()))
        home = next(Shard(i, 3) for i in (1, 2, 3) if Shard(i, 3).holds(first.server_id))
        store.apply([Change(first.id, S.PENDING, S.SUBMITTING, "intent")])
        assert [t.id for t in store.in_states([S.SUBMITTING], home)] == [first.id]
        other = Shard(home.index % 3 + 1, 3)
        assert store.in_states([S.SUBMITTING], other) == []


# -- a lost connection ------------------------------------------------------------------


def test_a_lost_connection_fails_the_next_write_and_frees_the_campaign(
    pg_dsn: str, pg_campaign: Any
) -> None:
    location = pg_campaign()
    store = create(location)
    try:
        store.begin_invocation({}, None)
        pid = admin(
            pg_dsn,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND pid <> pg_backend_pid()",
            application_name(),
        )
        assert len(pid) == 1
        admin(pg_dsn, "SELECT pg_terminate_backend(%s)", pid[0][0])
        with pytest.raises(StoreFailure, match="lost the connection") as info:
            store.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
        assert isinstance(info.value, StateError)  # the runner stops on StateError
        # The session ended on the server, and its lock with it: another runner may
        # take over at once, and finds nothing of the failed write.
        with location.open() as successor:
            assert successor.get(1).state is S.PENDING
            assert successor.events(1) == []
    finally:
        store.close()


# -- creation and migrations --------------------------------------------------------------


def test_a_refused_inventory_leaves_no_campaign(pg_campaign: Any) -> None:
    location = pg_campaign()

    def refuse() -> None:
        raise UsageError("no")

    with pytest.raises(UsageError):
        location.create(specs(5), inventory_path="x", inventory_sha256=SHA, validate=refuse)
    assert not location.exists()


def test_duplicate_targets_are_a_state_error_and_leave_no_campaign(pg_campaign: Any) -> None:
    location = pg_campaign()
    twice = specs(3) + specs(1)
    with pytest.raises(StateError, match="could not import"):
        location.create(twice, inventory_path="x", inventory_sha256=SHA)
    assert not location.exists()


def test_an_older_schema_is_migrated_on_open(pg_dsn: str, pg_campaign: Any) -> None:
    location = pg_campaign()
    create(location, count=3).close()
    schema = sql.Identifier(location.schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for version in range(2, SCHEMA_VERSION + 1):
            for column in MIGRATIONS.get(version, ()):
                name = sql.Identifier(column.split()[0])
                conn.execute(sql.SQL("ALTER TABLE {}.targets DROP COLUMN {}").format(schema, name))
        conn.execute(
            sql.SQL("UPDATE {}.meta SET value = '1' WHERE key = 'schema_version'").format(schema)
        )
    with pytest.raises(StateError, match="schema version 1"):
        location.open(readonly=True)  # a reader does not migrate
    with location.open() as store:
        assert store.meta_value("schema_version") == str(SCHEMA_VERSION)
        assert store.get(1).not_accepted == 0


def test_a_readonly_store_cannot_write(pg_campaign: Any) -> None:
    location = pg_campaign()
    create(location).close()
    with location.open(readonly=True) as reader, pytest.raises(StateError, match="read-only"):
        reader.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])


def test_a_runners_session_ends_soon_after_its_host_dies(pg_campaign: Any) -> None:
    """The server-side settings that bound the takeover time stated in docs/how-to/postgresql.md."""
    from orchestrator.store.pg import SESSION_SETTINGS, TAKEOVER_SECONDS

    with create(pg_campaign()) as store:
        conn = store._conn
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
        assert shown == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                         "tcp_keepalives_count": "3"}  # fmt: skip
        assert conn.execute("SHOW tcp_user_timeout").fetchone()[0] == "30000"  # ms
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    idle = int(SESSION_SETTINGS["tcp_keepalives_idle"])
    probes = int(SESSION_SETTINGS["tcp_keepalives_interval"]) * int(
        SESSION_SETTINGS["tcp_keepalives_count"]
    )
    assert idle + probes <= TAKEOVER_SECONDS
    assert int(SESSION_SETTINGS["tcp_user_timeout"]) / 1000 <= TAKEOVER_SECONDS


@pytest.mark.parametrize(
    ("objid", "split"),
    [
        (0, None),
        (2001, (1, 2)),
        (2002, (2, 2)),
        (999_999, (999, 999)),
        (2003, None),
        (2000, None),
        (4_294_967_295, None),
    ],
)
def test_lock_keys_read_back_from_pg_locks(objid: int, split: tuple[int, int] | None) -> None:
    """Only shard keys N*1000+K are shards: the campaign's and the creation lock
    (-1, shown by pg_locks as 4294967295) are not, whatever they divide into."""
    from orchestrator.store.pg import _shard_lock

    assert _shard_lock(objid) == split


def test_retry_queries_work_on_both_stores(new_location: Callable[..., Any]) -> None:
    """What `retry` asks of a store (reopen, limit_feed, deferred_pending), including a
    LIKE with % next to ? placeholders (psycopg reads every % as a placeholder)."""
    with create(new_location(), count=12) as store:
        store.apply(
            [Change(n, S.PENDING, S.FAILED, "gone", {"error_code": "Ecs.0001"}) for n in (2, 3)]
        )
        store.note(5, S.PENDING, "deferred: busy server")
        assert store.deferred_pending() == [5]
        assert store.reopen([2, 3, 4], "test") == 2  # 4 was never failed
        store.limit_feed([2, 3, 9])
        assert [t.id for t in store.pending_after(0, 100)] == [2, 3, 9]
        in_shard = [t.id for t in store.pending_after(0, 100, Shard(1, 2))]
        assert in_shard == [t for t in (2, 3, 9) if Shard(1, 2).holds(store.get(t).server_id)]
        assert not store.has_cloud_init_targets()
