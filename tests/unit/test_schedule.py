"""DueQueue and Backoff, on the real event loop with short delays."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import pytest

from orchestrator.engine.schedule import Backoff, DueQueue, JobLengths, learned_backoff, wait_event

pytestmark = pytest.mark.timeout(10)


async def test_items_come_out_in_due_order() -> None:
    queue = DueQueue()
    for item, delay in [(1, 0.06), (2, 0.02), (3, 0.0), (4, 0.04), (5, -1.0)]:
        queue.push(item, delay)
    assert len(queue) == 5
    got = [await queue.get() for _ in range(5)]
    # A negative delay counts as 0; equal due times keep push order.
    assert got == [3, 5, 2, 4, 1]
    assert len(queue) == 0


async def test_equal_due_times_keep_push_order() -> None:
    frozen = 100.0
    queue = DueQueue(clock=lambda: frozen)
    for item in (7, 3, 9, 1):
        queue.push(item, 0.0)
    assert [await queue.get() for _ in range(4)] == [7, 3, 9, 1]


async def test_get_waits_until_due() -> None:
    queue = DueQueue()
    start = time.monotonic()
    queue.push(42, 0.15)
    assert await queue.get() == 42
    elapsed = time.monotonic() - start
    assert 0.14 <= elapsed < 1.0


async def test_get_does_not_return_early() -> None:
    queue = DueQueue()
    queue.push(1, 0.3)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.1)
    assert not task.done()
    assert await asyncio.wait_for(task, 2.0) == 1


async def test_an_earlier_push_wakes_a_waiting_get() -> None:
    queue = DueQueue()
    queue.push(1, 30.0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.02)
    assert not task.done()
    start = time.monotonic()
    queue.push(2, 0.05)
    assert await asyncio.wait_for(task, 2.0) == 2
    assert time.monotonic() - start < 1.0
    assert len(queue) == 1  # the late item is still queued


async def test_a_push_wakes_a_get_on_an_empty_queue() -> None:
    queue = DueQueue()
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.02)
    assert not task.done()
    queue.push(5, 0.0)
    assert await asyncio.wait_for(task, 2.0) == 5


async def test_a_later_push_does_not_delay_the_earlier_item() -> None:
    queue = DueQueue()
    queue.push(1, 0.1)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.02)
    queue.push(2, 20.0)
    start = time.monotonic()
    assert await asyncio.wait_for(task, 2.0) == 1
    assert time.monotonic() - start < 1.0


async def test_the_queue_follows_its_injected_clock() -> None:
    now = [1000.0]
    queue = DueQueue(clock=lambda: now[0])
    queue.push(1, 60.0)
    queue.push(2, 30.0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.02)
    assert not task.done()  # due only in 30 s of the injected clock
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    now[0] += 61.0  # both are due by the injected clock: no real waiting
    start = time.monotonic()
    assert [await queue.get(), await queue.get()] == [2, 1]
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("content", ["empty", "not yet due"])
async def test_cancelling_a_blocked_get_ends_it_promptly(content: str) -> None:
    queue = DueQueue()
    if content == "not yet due":
        queue.push(1, 30.0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.02)
    assert not task.done()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert task in done
    assert task.cancelled()
    assert len(queue) == (1 if content == "not yet due" else 0)


async def test_cancellation_arriving_as_the_item_becomes_due_is_not_swallowed() -> None:
    # The regression: with wait_for on 3.11, a cancel that lands in the same loop
    # iteration as the wake-up could be lost, and a stopping worker would carry on.
    for _ in range(20):
        queue = DueQueue()
        task = asyncio.create_task(queue.get())
        await asyncio.sleep(0.005)
        queue.push(9, 0.0)  # wakes the waiter...
        task.cancel()  # ...and the cancel arrives before it runs
        done, _ = await asyncio.wait({task}, timeout=1.0)
        assert task in done
        assert task.cancelled()
        # The item was not taken by the cancelled get: it is not lost.
        assert len(queue) == 1
        assert await asyncio.wait_for(queue.get(), 1.0) == 9


async def test_cancellation_as_the_timer_fires_is_not_swallowed() -> None:
    queue = DueQueue()
    queue.push(1, 0.05)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0.045)
    # Cancel a few milliseconds before the deadline: the get must not return the item.
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert task in done
    assert task.cancelled()
    assert len(queue) == 1


async def test_wait_event_times_out_and_returns_when_set() -> None:
    event = asyncio.Event()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await wait_event(event, 0.05)
    assert 0.04 <= time.monotonic() - start < 1.0
    asyncio.get_running_loop().call_later(0.02, event.set)
    await wait_event(event, 2.0)
    assert event.is_set()


async def test_wait_event_propagates_cancellation() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_event(event, None))
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    assert task in done and task.cancelled()


@pytest.mark.parametrize(
    ("first", "cap", "factor", "expected"),
    [
        (1.0, 10.0, 2.0, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        (0.5, 2.0, 1.5, [0.5, 0.75, 1.125, 1.6875, 2.0, 2.0]),
        (3.0, 3.0, 2.0, [3.0, 3.0, 3.0]),
    ],
)
def test_backoff_grows_by_factor_to_cap(
    first: float, cap: float, factor: float, expected: list[float]
) -> None:
    backoff = Backoff(first=first, cap=cap, factor=factor)
    assert [backoff.next() for _ in expected] == pytest.approx(expected)


def test_backoff_default_factor_and_independence() -> None:
    a = Backoff(first=2.0, cap=100.0)
    b = Backoff(first=2.0, cap=100.0)
    assert [a.next(), a.next(), a.next()] == pytest.approx([2.0, 3.0, 4.5])
    assert b.next() == 2.0  # per target: one backoff does not move another


async def test_many_waiting_workers_are_not_all_woken_per_item() -> None:
    # 100 poll workers wait; 20 items come due one after another. Each item should
    # cost a couple of wake-ups, not one per waiting worker.
    queue = DueQueue()
    got: list[int] = []

    async def worker() -> None:
        while True:
            got.append(await queue.get())

    workers = [asyncio.create_task(worker()) for _ in range(100)]
    await asyncio.sleep(0.05)
    idle_wakeups = queue.wakeups
    for item in range(20):
        queue.push(item, 0.005 * item)
    deadline = time.monotonic() + 2.0
    while len(got) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)

    assert sorted(got) == list(range(20))
    assert queue.wakeups - idle_wakeups <= 3 * 20


async def test_items_due_together_are_taken_by_several_workers() -> None:
    queue = DueQueue()
    started: list[int] = []
    release = asyncio.Event()

    async def worker() -> None:
        started.append(await queue.get())
        await release.wait()  # busy with its item: the others must take the rest

    workers = [asyncio.create_task(worker()) for _ in range(5)]
    await asyncio.sleep(0.02)
    for item in range(5):
        queue.push(item, 0.0)
    await asyncio.sleep(0.05)
    assert sorted(started) == [0, 1, 2, 3, 4]
    release.set()
    await asyncio.gather(*workers)


# -- learned polling (issue 10, point 6) -------------------------------------------------


@pytest.mark.parametrize(
    ("typical", "first_poll", "cap", "waits"),
    [
        # nothing known: the configured first poll and the 1.5x backoff, as before
        (None, 5.0, 60.0, [5.0, 7.5, 11.25, 16.875]),
        # 20 s jobs: first at 12 s, then 30 % of the age (12 -> 3.6 -> 4.68 -> 6.08)
        (20.0, 5.0, 60.0, [12.0, 3.6, 4.68, 6.084]),
        # 2 s jobs with --first-poll 5: asked after 1.2 s, not held 5 s
        (2.0, 5.0, 60.0, [1.2, 0.36, 0.468, 0.6084]),
        # ... but never asked more often than every 0.2 s (or --first-poll if shorter)
        (0.5, 5.0, 60.0, [0.3, 0.2, 0.2, 0.21]),
        # 10-minute jobs: first after 6 minutes (not capped), then at most --poll-cap
        (600.0, 5.0, 60.0, [360.0, 60.0, 60.0, 60.0]),
        # instant jobs with a fast --first-poll: never sooner than it
        (0.001, 0.02, 0.2, [0.02, 0.02, 0.02, 0.02]),
    ],
)
def test_learned_backoff(
    typical: float | None, first_poll: float, cap: float, waits: list[float]
) -> None:
    backoff = learned_backoff(typical, first_poll, cap)
    assert [backoff.next() for _ in waits] == pytest.approx(waits)


def test_job_lengths_need_a_few_samples_before_they_outweigh_the_expected_length() -> None:
    assert JobLengths().typical() is None
    assert JobLengths(expected=30.0).typical() == 30.0
    lengths = JobLengths(expected=30.0, seen=[10.0, 12.0, 14.0, -1.0])  # negative: ignored
    assert lengths.typical() == 30.0
    lengths.observe(16.0)
    lengths.observe(18.0)
    assert lengths.typical() == 14.0  # the median of five
    for _ in range(2000):
        lengths.observe(100.0)
    assert lengths.typical() == 100.0  # only the latest lengths count


@pytest.mark.parametrize("spread", ["uniform", "log-uniform"])
def test_learned_polling_detects_within_15_percent_with_under_4_queries(spread: str) -> None:
    # Jobs of 0.5x-2x a median of 20 s (the target 6), polled by what was
    # learned from 200 earlier jobs of the same fleet.
    rng = random.Random(7)

    def draw() -> float:
        if spread == "uniform":
            return rng.uniform(10.0, 40.0)
        return 20.0 * 2 ** rng.uniform(-1.0, 1.0)

    lengths = JobLengths(seen=[draw() for _ in range(200)])
    lags, queries = [], []
    for _ in range(2000):
        length, backoff = draw(), lengths.backoff(5.0, 60.0)
        asked_at, count = backoff.next(), 1
        while asked_at < length:
            asked_at += backoff.next()
            count += 1
        lags.append((asked_at - length) / length)
        queries.append(count)
    assert statistics.fmean(lags) <= 0.15
    assert statistics.fmean(queries) <= 4.0
