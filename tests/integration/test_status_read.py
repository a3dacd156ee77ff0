"""`read_status` on real state files: what it reports, and that it neither waits for
nor disturbs a run that holds the file (its lock, or a write transaction)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.console.status_view import render_text, status_to_dict
from orchestrator.errors import StateError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.model import TargetState as S
from orchestrator.store.files import file_sha256
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore
from orchestrator.store.status import read_status


def create(path: Path, inventory: Path) -> StateStore:
    reader = InventoryReader(inventory, InventoryDefaults(keyname="k", userid="u" * 32))
    return StateStore.create(
        path, reader, inventory_path=str(inventory), inventory_sha256=file_sha256(inventory)
    )


def fail(store: StateStore, target_id: int, code: str) -> None:
    store.apply([Change(target_id, S.PENDING, S.SUBMITTING, "intent")])
    store.apply(
        [
            Change(
                target_id,
                S.SUBMITTING,
                S.FAILED,
                f"rejected: {code}",
                {"error_code": code, "fail_reason": f"{code} says no", "finished_at": "9999"},
            )
        ]
    )


@pytest.fixture
def state(tmp_path: Path, make_inventory: Callable[..., Path]) -> Path:
    """20 targets: 3 failed Ecs.0100, 1 failed Ecs.0605, 2 succeeded (one of them
    deferred first: no longer deferred), 1 in doubt, 3 deferred and still pending."""
    path = tmp_path / "fleet.state.sqlite"
    with create(path, make_inventory(20)) as store:
        store.begin_invocation({"rate": 10}, None)
        for target_id in (1, 2, 3):
            fail(store, target_id, "Ecs.0100")
        fail(store, 4, "Ecs.0605")
        store.note(5, S.PENDING, "deferred: server is busy")
        for target_id in (5, 6):
            store.apply([Change(target_id, S.PENDING, S.SUBMITTING, "intent")])
            store.apply([Change(target_id, S.SUBMITTING, S.SUBMITTED, "job", {"job_id": "j"})])
            store.apply([Change(target_id, S.SUBMITTED, S.SUCCEEDED, "job SUCCESS")])
        store.apply([Change(7, S.PENDING, S.SUBMITTING, "intent")])
        store.apply([Change(7, S.SUBMITTING, S.IN_DOUBT, "outcome unknown: timeout")])
        store.note(8, S.PENDING, "deferred: server is already rebuilding (not by this run)")
        store.note(9, S.PENDING, "deferred: still refused after retries")
        store.apply([Change(10, S.PENDING, S.SUBMITTING, "intent")])
        store.apply([Change(10, S.SUBMITTING, S.PENDING, "deferred: still refused")])
        store.end_invocation("deferred")
    return path


def test_status_reports_counts_failures_by_code_in_doubt_and_deferred(state: Path) -> None:
    snap = read_status(state, examples=2)
    assert snap.total == 20
    assert snap.counts["failed"] == 4 and snap.counts["succeeded"] == 2
    assert snap.counts["in_doubt"] == 1 and snap.counts["pending"] == 13
    assert [(g.error_code, g.count) for g in snap.failures] == [("Ecs.0100", 3), ("Ecs.0605", 1)]
    assert len(snap.failures[0].examples) == 2  # a few IDs per code, not all
    assert [r.detail for r in snap.failures[1].examples] == ["Ecs.0605 says no"]
    assert snap.deferred_count == 3
    assert [d.reason for d in snap.deferred][:2] == [
        "server is already rebuilding (not by this run)",
        "still refused after retries",
    ]
    assert len(snap.in_doubt) == 1
    assert snap.invocation is not None and snap.invocation.state == "ended"
    assert snap.invocation.outcome == "deferred"
    assert snap.exit_code == 3

    doc = status_to_dict(snap)
    assert doc["failures_by_error_code"] == {"Ecs.0100": 3, "Ecs.0605": 1}
    assert doc["deferred"]["count"] == 3 and doc["in_doubt"]["count"] == 1
    assert (doc["wave"], doc["window"]) == (None, None)
    text = render_text(snap)
    assert "Ecs.0100: 3" in text and "... and 1 more" in text
    assert "deferred (3)" in text and "in doubt (1)" in text
    assert text.endswith("exit 3: not finished")


def test_status_does_not_wait_for_a_write_transaction_nor_see_it(state: Path) -> None:
    writer = sqlite3.connect(state, isolation_level=None)
    try:
        writer.execute("PRAGMA busy_timeout = 0")
        writer.execute("BEGIN IMMEDIATE")  # the run, mid-commit
        writer.execute("UPDATE targets SET state = 'running' WHERE state = 'pending'")
        started = time.monotonic()
        snap = read_status(state)
        assert time.monotonic() - started < 1.0
        assert snap.counts["running"] == 0 and snap.counts["pending"] == 13
        writer.execute("ROLLBACK")
    finally:
        writer.close()


def test_status_works_while_a_run_holds_the_state_file(state: Path) -> None:
    with StateStore.open(state) as run:  # takes the run's exclusive lock
        run.begin_invocation({}, None)
        snap = read_status(state)
        assert snap.invocation is not None
        assert snap.invocation.state == "running"  # this process is alive
        assert snap.invocations == 2
        run.apply([Change(11, S.PENDING, S.SUBMITTING, "intent")])  # the run is not blocked
    assert read_status(state).counts["submitting"] == 1


def test_status_of_a_missing_or_foreign_file_is_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        read_status(tmp_path / "nope.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(StateError, match="not an orchestrator state file"):
        read_status(other)
