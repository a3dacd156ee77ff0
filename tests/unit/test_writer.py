"""Group commit over a real state file: few transactions, durable before the await returns."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model import IllegalTransition, TargetSpec, TargetState
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore
from orchestrator.store.writer import StateWriter

S = TargetState
PROJECT = "0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.timeout(20)


def _specs(count: int) -> list[TargetSpec]:
    return [
        TargetSpec(PROJECT, f"00000000-0000-4000-8000-{n:012x}", "key", "user", line=n + 1)
        for n in range(1, count + 1)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore.create(
        tmp_path / "run.state.sqlite",
        _specs(60),
        inventory_path="inventory.csv",
        inventory_sha256="0" * 64,
    )
    store.begin_invocation({"rate": 5}, "inventory.csv")
    yield store
    store.close()


class CountingApply:
    """Wraps StateStore.apply to count transactions (one apply is one transaction)."""

    def __init__(self, store: StateStore) -> None:
        self.inner = store.apply
        self.batches: list[int] = []
        store.apply = self  # type: ignore[method-assign]

    def __call__(self, changes: Any, counters: Any = None) -> list[bool]:
        self.batches.append(len(changes))
        return self.inner(changes, counters)


def _state_on_disk(path: Path, target_id: int) -> str:
    """The target's state as a second, independent connection sees it."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT state FROM targets WHERE id = ?", (target_id,)).fetchone()[0]


def _intent(target_id: int) -> Change:
    return Change(target_id, S.PENDING, S.SUBMITTING, "intent", {"attempts": 1})


async def test_concurrent_changes_share_few_transactions(store: StateStore) -> None:
    counting = CountingApply(store)
    writer = StateWriter(store, window=0.02)
    try:
        results = await asyncio.gather(*(writer.change(_intent(n)) for n in range(1, 51)))
    finally:
        await writer.close()
    assert results == [True] * 50
    assert sum(counting.batches) == 50
    assert len(counting.batches) <= 3, counting.batches
    counts = store.counts()
    assert counts[S.SUBMITTING] == 50
    assert counts[S.PENDING] == 10
    events = store.events()
    assert [e.target_id for e in events] == list(range(1, 51))
    assert {e.invocation for e in events} == {store.invocation}


async def test_change_is_durable_when_the_await_returns(store: StateStore) -> None:
    writer = StateWriter(store, window=0.01)
    try:
        for n in (1, 2, 3):
            assert _state_on_disk(store.path, n) == "pending"
            assert await writer.change(_intent(n)) is True
            # Readable by another connection at once: committed, not just queued.
            assert _state_on_disk(store.path, n) == "submitting"
        assert _state_on_disk(store.path, 4) == "pending"
    finally:
        await writer.close()


async def test_change_does_not_return_before_it_is_committed(store: StateStore) -> None:
    seen: list[str] = []
    inner = store.apply

    def observing_apply(changes: Any, counters: Any = None) -> list[bool]:
        seen.append(_state_on_disk(store.path, 5))
        result = inner(changes, counters)
        seen.append(_state_on_disk(store.path, 5))
        return result

    store.apply = observing_apply  # type: ignore[method-assign]
    writer = StateWriter(store, window=0.05)
    try:
        task = asyncio.create_task(writer.change(_intent(5)))
        await asyncio.sleep(0.01)
        assert not task.done()  # still inside the group-commit window
        assert _state_on_disk(store.path, 5) == "pending"
        assert await task is True
    finally:
        await writer.close()
    assert seen == ["pending", "submitting"]


async def test_stale_change_returns_false_and_writes_nothing(store: StateStore) -> None:
    writer = StateWriter(store, window=0.005)
    try:
        assert await writer.change(_intent(7)) is True
        # The caller believes the target is still PENDING: not applied, no event.
        stale = Change(7, S.PENDING, S.FAILED, "stale view")
        assert await writer.change(stale) is False
    finally:
        await writer.close()
    assert store.get(7).state is S.SUBMITTING
    assert [(e.from_state, e.to_state) for e in store.events(7)] == [("pending", "submitting")]


async def test_illegal_change_raises_to_its_caller(store: StateStore) -> None:
    writer = StateWriter(store, window=0.005)
    try:
        with pytest.raises(IllegalTransition):
            await writer.change(Change(8, S.PENDING, S.SUCCEEDED, "skips the reinstall"))
        # The writer is still usable afterwards.
        assert await writer.change(_intent(8)) is True
    finally:
        await writer.close()
    assert store.get(8).state is S.SUBMITTING
    assert [e.to_state for e in store.events(8)] == ["submitting"]


async def test_an_illegal_change_does_not_fail_the_changes_batched_with_it(
    store: StateStore,
) -> None:
    # Group commit is an optimisation: one caller's bad change must not make another
    # caller's legal change fail (and go unrecorded) because they shared a window.
    writer = StateWriter(store, window=0.05)
    try:
        legal = asyncio.create_task(writer.change(_intent(9)))
        illegal = asyncio.create_task(writer.change(Change(10, S.PENDING, S.RUNNING, "bad")))
        await asyncio.wait({legal, illegal}, timeout=5.0)
    finally:
        await writer.close()
    assert isinstance(illegal.exception(), IllegalTransition)
    assert legal.exception() is None
    assert legal.result() is True
    assert store.get(9).state is S.SUBMITTING
    assert store.get(10).state is S.PENDING


async def test_close_flushes_queued_changes(store: StateStore) -> None:
    # A window far longer than the test: only close() can have committed them.
    writer = StateWriter(store, window=60.0)
    tasks = [asyncio.create_task(writer.change(_intent(n))) for n in range(11, 21)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in tasks)
    assert _state_on_disk(store.path, 11) == "pending"
    await asyncio.wait_for(writer.close(), 5.0)
    assert all(task.done() for task in tasks)
    assert [task.result() for task in tasks] == [True] * 10
    assert all(_state_on_disk(store.path, n) == "submitting" for n in range(11, 21))


async def test_counters_are_committed_with_the_changes(store: StateStore) -> None:
    totals = {"requests.reinstall": 0, "throttled": 0}
    sent: dict[str, int] = {}

    def deltas() -> dict[str, int]:
        out = {k: v - sent.get(k, 0) for k, v in totals.items()}
        sent.update(totals)
        return out

    writer = StateWriter(store, window=0.005, counters=deltas)
    try:
        totals["requests.reinstall"] = 3
        totals["throttled"] = 1
        assert await writer.change(_intent(21)) is True
        totals["requests.reinstall"] = 5
        assert await writer.change(_intent(22)) is True
    finally:
        await writer.close()
    info = store.run_info()
    assert info.requests == {"reinstall": 5}
    assert info.throttled == 1


async def test_call_runs_store_methods_off_the_loop(store: StateStore) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def probe() -> dict[TargetState, int]:
        seen.append(threading.get_ident())
        return store.counts()

    writer = StateWriter(store)
    try:
        counts = await writer.call(probe)
    finally:
        await writer.close()
    assert counts[S.PENDING] == 60
    assert seen and seen[0] != loop_thread


async def test_a_cancelled_caller_does_not_cancel_the_commit(store: StateStore) -> None:
    writer = StateWriter(store, window=0.05)
    try:
        task = asyncio.create_task(writer.change(_intent(30)))
        other = asyncio.create_task(writer.change(_intent(31)))
        await asyncio.sleep(0.01)
        task.cancel()
        assert await other is True
    finally:
        await writer.close()
    assert task.cancelled()
    # The cancelled caller's change was queued, so it is committed all the same:
    # the runner must re-read the state, never assume it was dropped.
    assert store.get(30).state is S.SUBMITTING
    assert store.get(31).state is S.SUBMITTING


async def test_calls_made_after_the_last_change_are_counted_at_close(store: StateStore) -> None:
    totals = {"requests.list": 0}
    sent: dict[str, int] = {}

    def deltas() -> dict[str, int]:
        out = {k: v - sent.get(k, 0) for k, v in totals.items()}
        sent.update(totals)
        return out

    writer = StateWriter(store, window=0.005, counters=deltas)
    totals["requests.list"] = 2
    assert await writer.change(_intent(23)) is True
    totals["requests.list"] = 3  # a list read at the end of the run: no change follows
    await writer.close()
    assert store.run_info().requests == {"list": 3}
