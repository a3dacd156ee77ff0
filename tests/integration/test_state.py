"""The state store on real SQLite files: import, transitions, events, locking, damage.

Tests taking the `store` fixture run on PostgreSQL too (tests/conftest.py's `backend`).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import IncompleteImport, InventoryError, JournalLost, StateError
from orchestrator.inventory import read_inventory
from orchestrator.model import IllegalTransition, TargetSpec, TargetState
from orchestrator.store.files import file_sha256
from orchestrator.store.records import Change
from orchestrator.store.schema import SCHEMA_VERSION
from orchestrator.store.sqlite import StateStore

S = TargetState
REPO = Path(__file__).resolve().parents[2]
PROJECTS = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
SHA = "ab" * 32

pytestmark = pytest.mark.timeout(30)


def server_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


def specs(count: int, **changes: object) -> list[TargetSpec]:
    out = []
    for n in range(1, count + 1):
        fields: dict[str, object] = {
            "project_id": PROJECTS[n % 2],
            "server_id": server_id(n),
            "keyname": "fleet-key",
            "userid": "c4647159c324c9859b810e766ec9d286",
            "line": n + 1,
        }
        fields.update(changes)
        out.append(TargetSpec(**fields))  # type: ignore[arg-type]
    return out


def create(path: Path, targets: list[TargetSpec] | None = None, **kwargs: object) -> StateStore:
    kwargs.setdefault("inventory_path", "fleet.csv")
    kwargs.setdefault("inventory_sha256", SHA)
    return StateStore.create(path, specs(10) if targets is None else targets, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "fleet.state.sqlite"


@pytest.fixture
def store(new_location: Callable[..., Any]) -> Iterator[StateStore]:
    """A store of 25 targets, on SQLite and on PostgreSQL (the `backend` parameter)."""
    store = new_location().create(specs(25), inventory_path="fleet.csv", inventory_sha256=SHA)
    yield store
    store.close()


def closed_file(path: Path, count: int = 10) -> Path:
    """A valid state file on disk, with nobody holding it."""
    create(path, specs(count)).close()
    return path


def raw(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL on the file with a plain sqlite3 connection (as another program would)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- creating ---------------------------------------------------------------------------


def test_create_imports_an_inventory_read_from_csv(tmp_path: Path, path: Path) -> None:
    inventory = tmp_path / "fleet.csv"
    inventory.write_text(
        "project_id,server_id,region,keyname,userid,mode,byol,owner\n"
        f"{PROJECTS[0]},{server_id(1)},eu-de,key-a,user-a,,,team-web\n"
        f"{PROJECTS[1]},{server_id(2)},eu-nl,key-b,user-b,withStopServer,true,team-ml\n"
        f"{PROJECTS[1]},{server_id(3)},eu-nl,key-c,user-c,,false,\n"
    )
    targets = read_inventory(inventory)
    with StateStore.create(
        path,
        targets,
        inventory_path=str(inventory),
        inventory_sha256=file_sha256(inventory),
        extra_columns=lambda: ("owner",),
    ) as store:
        stored = list(store.iter_targets())
        assert [t.spec for t in stored] == targets
        assert [t.state for t in stored] == [S.PENDING] * 3
        assert all(t.attempts == 0 and t.job_id is None for t in stored)
        second = store.find(PROJECTS[1], server_id(2))
        assert second is not None
        assert (second.spec.mode, second.spec.byol, second.spec.region) == (
            "withStopServer",
            True,
            "eu-nl",
        )
        assert second.spec.extra == {"owner": "team-ml"}
        assert second.spec.reinstall_body() == targets[1].reinstall_body()
        info = store.run_info()
        assert info.inventory_path == str(inventory)
        assert info.inventory_sha256 == file_sha256(inventory)
        assert store.inventory_sha256 == file_sha256(inventory)
        assert info.extra_columns == ("owner",)
        assert info.state_path == str(path)
        assert info.invocations == 0
        assert store.counts()[S.PENDING] == 3


def test_state_file_is_owner_only(path: Path) -> None:
    with create(path) as store:
        store.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
        for suffix in ("", "-wal", "-shm", ".lock"):
            sibling = Path(str(path) + suffix)
            if sibling.exists():
                assert stat.S_IMODE(sibling.stat().st_mode) == 0o600, suffix
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_state_file_is_owner_only_under_a_permissive_umask(path: Path) -> None:
    old = os.umask(0)
    try:
        create(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_run_id_is_fixed_at_creation(path: Path) -> None:
    with create(path) as store:
        run_id = store.run_info().run_id
        assert run_id
    with StateStore.open(path) as store:
        store.begin_invocation({}, None)
        assert store.run_info().run_id == run_id


def test_a_refusing_validate_leaves_no_file(tmp_path: Path, path: Path) -> None:
    problem = InventoryError([], total=1)

    def validate() -> None:
        raise problem

    with pytest.raises(InventoryError) as info:
        create(path, specs(20), validate=validate)
    assert info.value is problem
    assert leftovers(tmp_path) == []


def test_validate_is_called_after_the_last_target(tmp_path: Path, path: Path) -> None:
    read: list[int] = []
    calls: list[int] = []

    def targets() -> Iterator[TargetSpec]:
        for spec in specs(7):
            read.append(spec.line)
            yield spec

    with create(path, targets(), validate=lambda: calls.append(len(read))) as store:  # type: ignore[arg-type]
        assert calls == [7]
        assert store.counts()[S.PENDING] == 7


def test_a_failing_inventory_stream_leaves_no_file(tmp_path: Path, path: Path) -> None:
    def targets() -> Iterator[TargetSpec]:
        yield from specs(5)
        raise OSError("inventory vanished")

    with pytest.raises(OSError, match="vanished"):
        create(path, targets())  # type: ignore[arg-type]
    assert leftovers(tmp_path) == []


def test_duplicate_targets_are_a_state_error_and_leave_no_file(tmp_path: Path, path: Path) -> None:
    targets = specs(3)
    with pytest.raises(StateError):
        create(path, [*targets, targets[1]])
    assert leftovers(tmp_path) == []


def test_create_refuses_an_existing_file(path: Path) -> None:
    closed_file(path, 4)
    before = path.read_bytes()
    with pytest.raises(StateError, match="already exists"):
        create(path, specs(9))
    assert path.read_bytes() == before
    with StateStore.open(path) as store:
        assert sum(store.counts().values()) == 4


def test_create_makes_the_directory(tmp_path: Path) -> None:
    nested = tmp_path / "reports" / "fleet" / "state.sqlite"
    with create(nested) as store:
        assert store.path == nested
    assert nested.is_file()


def test_a_large_import_round_trips(path: Path) -> None:
    # More than one import batch, with extra columns.
    targets = [
        TargetSpec(PROJECTS[0], server_id(n), "k", "u", n + 1, extra={"n": str(n)})
        for n in range(1, 12_001)
    ]
    with create(path, targets) as store:
        assert store.counts()[S.PENDING] == 12_000
        last = store.get(12_000)
        assert last.spec == targets[-1]


# -- changes and events -----------------------------------------------------------------


def test_apply_moves_a_target_and_records_the_event(store: StateStore) -> None:
    invocation = store.begin_invocation({"rate": 2.0}, "fleet.csv")
    fields = {"attempts": 1, "intent_at": "2027-01-15T08:00:00.000000Z"}
    assert store.apply([Change(3, S.PENDING, S.SUBMITTING, "intent", fields)]) == [True]
    target = store.get(3)
    assert target.state is S.SUBMITTING
    assert (target.attempts, target.intent_at) == (1, fields["intent_at"])
    assert target.updated_at is not None
    events = store.events(3)
    assert len(events) == 1
    event = events[0]
    assert (event.target_id, event.from_state, event.to_state, event.detail) == (
        3,
        "pending",
        "submitting",
        "intent",
    )
    assert event.invocation == invocation
    # Other targets untouched.
    assert store.get(4).state is S.PENDING
    assert store.events(4) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.SUCCEEDED),
        (S.PENDING, S.SUBMITTED),
        (S.SUCCEEDED, S.PENDING),
        (S.FAILED, S.SUBMITTING),
        (S.IN_DOUBT, S.SUBMITTING),
    ],
)
def test_apply_refuses_illegal_transitions_and_writes_nothing(
    store: StateStore, old: TargetState, new: TargetState
) -> None:
    legal = Change(1, S.PENDING, S.SUBMITTING, "intent")
    with pytest.raises(IllegalTransition):
        store.apply([legal, Change(2, old, new, "bad")])
    # Nothing of the batch was written, not even its legal part.
    assert store.get(1).state is S.PENDING
    assert store.get(2).state is S.PENDING
    assert store.events() == []


def test_stale_change_is_skipped_without_an_event(store: StateStore) -> None:
    assert store.apply([Change(5, S.PENDING, S.SUBMITTING, "intent")]) == [True]
    results = store.apply(
        [
            Change(5, S.PENDING, S.FAILED, "stale: thinks it is still pending"),
            Change(6, S.PENDING, S.SUBMITTING, "fresh"),
            Change(7, S.SUBMITTING, S.SUBMITTED, "stale: never submitted", {"job_id": "j"}),
        ]
    )
    assert results == [False, True, False]
    assert store.get(5).state is S.SUBMITTING
    assert store.get(7).state is S.PENDING
    assert store.get(7).job_id is None
    assert [(e.target_id, e.detail) for e in store.events()] == [(5, "intent"), (6, "fresh")]


def test_unknown_target_is_not_applied(store: StateStore) -> None:
    assert store.apply([Change(9999, S.PENDING, S.SUBMITTING, "no such target")]) == [False]
    assert store.events() == []


@pytest.mark.parametrize("column", ["state", "project_id", "server_id", "id", "keyname"])
def test_fields_cannot_touch_identity_or_state(store: StateStore, column: str) -> None:
    change = Change(1, S.PENDING, S.SUBMITTING, "sneaky", {column: "succeeded"})
    with pytest.raises(ValueError, match="changeable"):
        store.apply([change])
    assert store.get(1).state is S.PENDING
    assert store.events() == []


def test_events_record_every_change_in_order_across_invocations(path: Path) -> None:
    with create(path, specs(3)) as store:
        first = store.begin_invocation({"rate": 1}, "fleet.csv")
        store.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
        store.apply([Change(1, S.SUBMITTING, S.SUBMITTED, "job", {"job_id": "job-1"})])
        store.apply([Change(2, S.PENDING, S.SUBMITTING, "intent 2")])
        store.end_invocation("stopped")
    with StateStore.open(path) as store:
        second = store.begin_invocation({"rate": 1}, None)
        assert second != first
        store.apply([Change(2, S.SUBMITTING, S.IN_DOUBT, "resumed mid-send")])
        store.apply([Change(1, S.SUBMITTED, S.RUNNING, "job running")])
        store.note(2, S.IN_DOUBT, "settling from the server")
        store.apply([Change(1, S.RUNNING, S.SUCCEEDED, "job SUCCESS")])
        store.end_invocation("completed")
        one = store.events(1)
        assert [(e.from_state, e.to_state, e.invocation) for e in one] == [
            ("pending", "submitting", first),
            ("submitting", "submitted", first),
            ("submitted", "running", second),
            ("running", "succeeded", second),
        ]
        everything = store.events()
        assert [(e.target_id, e.detail) for e in everything] == [
            (1, "intent"),
            (1, "job"),
            (2, "intent 2"),
            (2, "resumed mid-send"),
            (1, "job running"),
            (2, "settling from the server"),
            (1, "job SUCCESS"),
        ]
        note = everything[5]
        assert (note.from_state, note.to_state) == ("in_doubt", "in_doubt")
        assert [e.at for e in everything] == sorted(e.at for e in everything)
        assert store.get(1).job_id == "job-1"
        assert store.get(1).is_final


def test_counters_accumulate(path: Path) -> None:
    with create(path) as store:
        store.apply([], {"requests.reinstall": 2, "requests.job": 5, "throttled": 1})
        store.apply(
            [Change(1, S.PENDING, S.SUBMITTING, "i")], {"requests.reinstall": 1, "throttled": 0}
        )
        info = store.run_info()
        assert info.requests == {"reinstall": 3, "job": 5}
        assert info.throttled == 1
    with StateStore.open(path, readonly=True) as store:
        assert store.run_info().requests == {"reinstall": 3, "job": 5}


def test_invocations_and_run_info(path: Path) -> None:
    options = {"rate": 2.5, "stop_server": True, "endpoint": "http://127.0.0.1:1", "tags": [1]}
    with create(path) as store:
        info = store.run_info()
        assert info.invocations == 0
        assert (info.started_at, info.ended_at, info.options) == (None, None, {})
        first = store.begin_invocation(options, "fleet.csv")
        info = store.run_info()
        assert info.invocations == 1
        assert info.started_at is not None and info.ended_at is None
        assert info.options == options
        assert store.last_options() == options
        store.end_invocation("completed")
        ended = store.run_info()
        assert ended.ended_at is not None and ended.ended_at >= ended.started_at
    with StateStore.open(path) as store:
        second = store.begin_invocation({"rate": 1.0}, "other.csv")
        assert second == first + 1
        info = store.run_info()
        assert info.invocations == 2
        assert info.ended_at is None
        assert info.options == {"rate": 1.0}
        store.end_invocation("interrupted")
    rows = raw(path, "SELECT id, outcome, inventory_path, pid, options FROM runs ORDER BY id")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (first, "completed", "fleet.csv"),
        (second, "interrupted", "other.csv"),
    ]
    assert rows[0][3] == os.getpid()
    # Stored as given, nothing added.
    assert json.loads(str(rows[0][4])) == options


def test_options_are_stored_exactly_as_given_and_nothing_else(path: Path) -> None:
    options = {"rate": 3, "auth": "token"}
    with create(path) as store:
        store.begin_invocation(options, "fleet.csv")
        store.end_invocation("completed")
    stored = raw(path, "SELECT options FROM runs")
    assert [json.loads(str(r[0])) for r in stored] == [options]
    meta = dict(raw(path, "SELECT key, value FROM meta"))
    assert set(meta) == {
        "creator",  # proof that this tool made the file
        "journal",  # whether changes may live in the -wal file alone (closed here)
        "journal_opened_at",
        "schema_version",
        "run_id",
        "created_at",
        "inventory_path",
        "inventory_sha256",
        "extra_columns",
        "import_complete",
        "lock_holder",  # who holds the run lock, for "in use by" messages
    }
    assert meta["lock_holder"].startswith(f"pid {os.getpid()} on ")


def test_end_invocation_without_begin_is_a_no_op(path: Path) -> None:
    with create(path) as store:
        store.end_invocation("completed")
        assert store.run_info().invocations == 0


# -- reads ------------------------------------------------------------------------------


def test_in_states_pending_after_and_iter_targets(store: StateStore) -> None:
    store.apply([Change(n, S.PENDING, S.SUBMITTING, "i") for n in (3, 8, 15, 21)])
    store.apply([Change(8, S.SUBMITTING, S.SUBMITTED, "j", {"job_id": "j8"})])
    store.apply([Change(n, S.PENDING, S.FAILED, "gone") for n in (4, 5)])

    assert [t.id for t in store.in_states([S.SUBMITTING])] == [3, 15, 21]
    assert [t.id for t in store.in_states([S.SUBMITTED, S.SUBMITTING])] == [3, 8, 15, 21]
    assert [t.id for t in store.in_states([S.FAILED])] == [4, 5]
    assert store.in_states([S.RUNNING]) == []

    pending = [n for n in range(1, 26) if n not in (3, 4, 5, 8, 15, 21)]
    pages: list[list[int]] = []
    after = 0
    while page := store.pending_after(after, 6):
        pages.append([t.id for t in page])
        assert all(t.state is S.PENDING for t in page)
        after = page[-1].id
    assert [n for page in pages for n in page] == pending
    assert [len(page) for page in pages] == [6, 6, 6, 1]

    for batch in (1, 7, 25, 100):
        everything = list(store.iter_targets(batch=batch))
        assert [t.id for t in everything] == list(range(1, 26))
    assert [t.spec.line for t in store.iter_targets(batch=4)] == list(range(2, 27))
    counts = store.counts()
    assert counts == {
        S.PENDING: 19,
        S.SUBMITTING: 3,
        S.SUBMITTED: 1,
        S.RUNNING: 0,
        S.IN_DOUBT: 0,
        S.SUCCEEDED: 0,
        S.FAILED: 2,
        S.SKIPPED: 0,
    }


def test_get_and_find(store: StateStore) -> None:
    target = store.get(2)
    assert target.spec.server_id == server_id(2)
    assert store.find(target.project_id, target.server_id) == target
    assert target.project_id == PROJECTS[0]
    # The key is the pair: the same server ID in another project is another target.
    assert store.find(PROJECTS[1], server_id(2)) is None
    assert store.find(target.project_id, server_id(999)) is None
    with pytest.raises(KeyError):
        store.get(999)


# -- locking ----------------------------------------------------------------------------


def test_a_second_open_while_one_is_open_is_refused(path: Path) -> None:
    with create(path):
        with pytest.raises(StateError, match="in use") as info:
            StateStore.open(path)
        assert str(os.getpid()) in str(info.value)
    # Released on close.
    with StateStore.open(path) as store:
        with pytest.raises(StateError, match="in use"):
            StateStore.open(path)
        assert store.counts()[S.PENDING] == 10
    StateStore.open(path).close()


def test_the_lock_holds_across_processes(path: Path) -> None:
    closed_file(path)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from orchestrator.errors import StateError
        from orchestrator.store.sqlite import StateStore
        try:
            StateStore.open(Path(sys.argv[1]))
        except StateError as exc:
            print("refused:", exc)
        else:
            print("opened")
        """
    )
    with StateStore.open(path):
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=20,
            check=True,
        )
    assert result.stdout.startswith("refused:"), result.stdout + result.stderr
    assert "in use" in result.stdout


def test_readonly_open_works_while_the_lock_is_held(path: Path) -> None:
    with create(path) as writer:
        writer.begin_invocation({"rate": 1}, "fleet.csv")
        writer.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
        with StateStore.open(path, readonly=True) as reader:
            assert reader.get(1).state is S.SUBMITTING
            assert reader.run_info().invocations == 1
            # The reader sees later commits too.
            writer.apply([Change(2, S.PENDING, S.FAILED, "gone")])
            assert reader.get(2).state is S.FAILED


def test_a_readonly_store_cannot_write(path: Path) -> None:
    closed_file(path)
    with (
        StateStore.open(path, readonly=True) as reader,
        pytest.raises(StateError, match="read-only"),
    ):
        reader.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
    with StateStore.open(path, readonly=True) as reader:
        assert reader.get(1).state is S.PENDING


def test_open_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        StateStore.open(tmp_path / "nope.sqlite")
    assert leftovers(tmp_path) == []


# -- damaged or foreign files -------------------------------------------------------------


@pytest.mark.parametrize("version", ["0", str(SCHEMA_VERSION + 1), "99"])
@pytest.mark.parametrize("readonly", [False, True])
def test_other_schema_versions_are_refused(path: Path, version: str, readonly: bool) -> None:
    closed_file(path)
    raw(path, "UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    with pytest.raises(StateError, match=f"schema version {version}") as info:
        StateStore.open(path, readonly=readonly)
    assert f"reads version {SCHEMA_VERSION}" in str(info.value)
    # A refused open does not keep the lock.
    with pytest.raises(StateError, match="schema version"):
        StateStore.open(path)


@pytest.mark.parametrize("readonly", [False, True])
def test_random_bytes_are_refused(path: Path, readonly: bool) -> None:
    path.write_bytes(secrets.token_bytes(8192))
    before = path.read_bytes()
    with pytest.raises(StateError) as info:
        StateStore.open(path, readonly=readonly)
    assert str(path) in str(info.value)
    # Refused from its first bytes, before SQLite opens (and might write to) it.
    assert "is not a SQLite database" in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("fraction", [0.02, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_truncated_database_is_refused(path: Path, fraction: float, readonly: bool) -> None:
    closed_file(path, 300)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StateError, match=r"corrupt|malformed|not a database"):
        StateStore.open(path, readonly=readonly)


def test_a_foreign_sqlite_database_is_refused(path: Path) -> None:
    raw(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(StateError, match="not an orchestrator state file"):
        StateStore.open(path)


def test_an_empty_file_is_not_taken_for_an_unfinished_creation(path: Path) -> None:
    # Nothing proves this tool made it: refused, never deleted.
    path.write_bytes(b"")
    with pytest.raises(StateError, match="not an orchestrator state file") as info:
        StateStore.open(path)
    assert not isinstance(info.value, IncompleteImport)
    with pytest.raises(StateError):
        StateStore.discard_incomplete(path)
    assert path.read_bytes() == b""


def test_an_unfinished_import_is_refused(path: Path) -> None:
    closed_file(path)
    raw(path, "DELETE FROM meta WHERE key = 'import_complete'")
    with pytest.raises(StateError, match="never finished"):
        StateStore.open(path)


def test_an_import_killed_half_way_is_reported_as_unfinished(path: Path) -> None:
    # A process killed during the import (power loss, kill -9) leaves the schema but no
    # meta rows. open() must say so; campaign.open_state relies on "never finished" to
    # restart such an import rather than refusing the file.
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from orchestrator.model import TargetSpec
        from orchestrator.store.sqlite import StateStore

        def targets():
            for n in range(1, 50):
                yield TargetSpec("0" * 32, f"00000000-0000-4000-8000-{n:012x}", "k", "u", n)
            os._exit(17)  # dies mid-import, as kill -9 would

        StateStore.create(Path(sys.argv[1]), targets(), inventory_path="x", inventory_sha256="y")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, timeout=20, capture_output=True
    )
    assert result.returncode == 17, result.stderr
    assert path.exists()
    with pytest.raises(StateError, match="never finished"):
        StateStore.open(path)


def test_a_full_disk_fails_the_change_and_keeps_what_was_committed(path: Path) -> None:
    store = create(path, specs(20))
    try:
        store.begin_invocation({"rate": 1}, "fleet.csv")
        assert store.apply([Change(1, S.PENDING, S.SUBMITTING, "intent 1")]) == [True]
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        huge = {"fail_reason": "x" * 2_000_000, "finished_at": "2027-01-15T08:00:00Z"}
        with pytest.raises(StateError, match="disk is full") as info:
            store.apply(
                [
                    Change(2, S.PENDING, S.SUBMITTING, "intent 2"),
                    Change(3, S.PENDING, S.FAILED, "too big", huge),
                ],
                {"requests.reinstall": 1},
            )
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        # The failed batch left nothing behind, and what came before is intact.
        assert store.get(1).state is S.SUBMITTING
        assert store.get(2).state is S.PENDING
        assert store.get(3).state is S.PENDING
        assert [e.detail for e in store.events()] == ["intent 1"]
        assert store.run_info().requests == {}
        # The connection is not wedged in a half transaction: once space is back it works.
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        assert store.apply([Change(2, S.PENDING, S.SUBMITTING, "intent 2 again")]) == [True]
    finally:
        store.close()
    with StateStore.open(path) as reopened:
        assert reopened.get(1).state is S.SUBMITTING
        assert reopened.get(2).state is S.SUBMITTING
        assert reopened.get(3).fail_reason is None
        assert [e.detail for e in reopened.events()] == ["intent 1", "intent 2 again"]
    rows = raw(path, "SELECT id, state FROM targets WHERE id <= 3 ORDER BY id")
    assert rows == [(1, "submitting"), (2, "submitting"), (3, "pending")]


def test_writes_are_durable_for_another_connection(store: StateStore, backend: str) -> None:
    store.apply([Change(9, S.PENDING, S.SUBMITTING, "intent", {"attempts": 1})])
    query = "SELECT state, attempts FROM targets WHERE id = 9"
    if backend == "sqlite":
        rows = raw(store.path, query)
    else:
        import psycopg

        dsn = store.location.partition(" ")[0]
        with psycopg.connect(dsn, options=f"-csearch_path={store.path}") as conn:
            rows = conn.execute(query).fetchall()
    assert rows == [("submitting", 1)]


def _synchronous_during_commits(store: StateStore, changes: list[Change]) -> list[str]:
    """The PRAGMA synchronous statements SQLite saw while `changes` were applied."""
    seen: list[str] = []
    conn = store._conn
    conn.set_trace_callback(lambda sql: seen.append(sql) if "synchronous" in sql else None)
    try:
        store.apply(changes)
    finally:
        conn.set_trace_callback(None)
    return seen


def test_every_commit_is_durable(path: Path) -> None:
    # An intent must be on disk before its request leaves, a job id before the run
    # relies on it: no batch is ever committed with a weaker sync.
    with create(path) as store:
        intents = [Change(n, S.PENDING, S.SUBMITTING, "intent") for n in (1, 2)]
        assert _synchronous_during_commits(store, intents) == []
        answers = [
            Change(1, S.SUBMITTING, S.SUBMITTED, "accepted", {"job_id": "j-1"}),
            Change(2, S.SUBMITTING, S.IN_DOUBT, "no answer"),
        ]
        assert _synchronous_during_commits(store, answers) == []
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert store.get(1).job_id == "j-1"


def test_job_lengths_are_read_from_the_jobs_that_ended(path: Path) -> None:
    # Begin to end on the service's own clock: this host's submitted_at and finished_at,
    # on another clock (maybe minutes off, or stepped), never enter a length.
    ends = [
        ("2027-01-15T08:00:00.000Z", "2027-01-15T08:00:20.000Z"),
        (None, "2027-01-15T08:00:35.500Z"),  # no begin: no length
        ("2027-01-15T08:00:00.000Z", "2027-01-15T08:00:35.500Z"),
    ]
    with create(path) as store:
        for n, (begin, end) in enumerate(ends, 1):
            store.apply([Change(n, S.PENDING, S.SUBMITTING, "intent")])
            store.apply(
                [
                    Change(
                        n,
                        S.SUBMITTING,
                        S.SUBMITTED,
                        "accepted",
                        # This host's clock a day ahead of the service's.
                        {"job_id": f"j-{n}", "submitted_at": "2027-01-16T08:00:00.000000Z"},
                    )
                ]
            )
            fields = {"job_begin_at": begin, "job_end_at": end, "finished_at": "2027-01-16T08:01Z"}
            store.apply([Change(n, S.SUBMITTED, S.SUCCEEDED, "done", fields)])
        store.apply([Change(4, S.PENDING, S.SUBMITTING, "intent")])  # not ended: not counted
        assert store.job_lengths() == pytest.approx([35.5, 20.0], abs=0.01)  # newest first
        assert store.job_lengths(limit=1) == pytest.approx([35.5], abs=0.01)


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_journal_planted_as_a_link_is_refused_and_its_target_untouched(
    path: Path, tmp_path: Path, suffix: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    closed_file(path)
    Path(f"{path}{suffix}").symlink_to(victim)
    with pytest.raises(StateError, match="symbolic link"):
        StateStore.open(path)
    with pytest.raises(StateError, match="symbolic link"):
        StateStore.open(path, readonly=True)
    assert victim.read_text() == "precious"


def test_a_new_state_file_with_a_companion_already_there_is_refused(
    path: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    Path(f"{path}-wal").symlink_to(victim)
    with pytest.raises(StateError, match="symbolic link"):
        create(path)
    assert not path.exists()
    assert victim.read_text() == "precious"


KILLED_AFTER = """
import os, sys
from pathlib import Path
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore
from orchestrator.model import TargetState as S

store = StateStore.open(Path(sys.argv[1]))
if sys.argv[2] == "sending":
    store.mark_sending("2027-01-15T08:00:00+00:00", 0.5)
elif sys.argv[2] == "intent":
    store.mark_sending(None, None)
    store.apply([Change(1, S.PENDING, S.SUBMITTING, "intent")])
os._exit(0)  # as kill -9 would: no clean close, no checkpoint at the end
"""


@pytest.mark.parametrize("moment", ["opened", "sending", "intent"])
def test_a_run_killed_at_any_moment_leaves_a_journal_that_is_not_taken_for_lost(
    path: Path, moment: str
) -> None:
    closed_file(path)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER, str(path), moment], capture_output=True, text=True
    )
    assert killed.returncode == 0, killed.stderr
    assert Path(f"{path}-wal").stat().st_size > 0  # a log that holds the open run's writes
    with StateStore.open(path) as store:  # not JournalLost
        assert store.get(1).state is (S.SUBMITTING if moment == "intent" else S.PENDING)
    # And had the log been deleted after that kill, the file would be refused.
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER, str(path), moment], check=True)
    os.unlink(f"{path}-wal")
    with pytest.raises(JournalLost):
        StateStore.open(path)
