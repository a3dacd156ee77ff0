"""Tests for orchestrator.pacing.

Most tests run on a virtual-time event loop: `loop.time()` jumps to the next
timer instead of sleeping (optionally late by an injected amount), so pacing
over a minute is checked exactly, in milliseconds, and timer lateness can be
reproduced. A few tests run on the real loop with tolerances, to check the same
properties against real timers.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
import selectors
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator.engine.pacing import (
    DELIVERY_GUARD,
    INTENT_LEAD,
    RateLimiter,
    Unlimited,
    make_limiter,
)


class _VirtualTimeSelector(selectors.DefaultSelector):
    """Never sleeps: a blocking select advances virtual time by its timeout."""

    def __init__(self, lateness: Callable[[], float] | None) -> None:
        super().__init__()
        self.now = 0.0
        self.blocking_selects = 0
        self._lateness = lateness

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("nothing scheduled: the test would block forever")
        self.blocking_selects += 1
        self.now += timeout + (self._lateness() if self._lateness else 0.0)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, lateness: Callable[[], float] | None = None) -> None:
        self._selector_v = _VirtualTimeSelector(lateness)
        super().__init__(self._selector_v)
        self.timers_armed = 0

    def time(self) -> float:
        return self._selector_v.now

    def call_at(self, when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        self.timers_armed += 1
        return super().call_at(when, callback, *args, **kwargs)


def run_virtual(
    main: Callable[[VirtualTimeLoop], Awaitable[Any]],
    lateness: Callable[[], float] | None = None,
) -> Any:
    loop = VirtualTimeLoop(lateness)
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


async def _workers(limiter: RateLimiter, n: int, stamps: list[float]) -> list[asyncio.Task[None]]:
    """n tasks that take tokens forever, recording when each was granted."""
    loop = asyncio.get_running_loop()

    async def work() -> None:
        while True:
            await limiter.acquire()
            stamps.append(loop.time())

    return [asyncio.create_task(work()) for _ in range(n)]


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def max_in_window(stamps: list[float], width: float) -> int:
    """The largest number of stamps in any closed window [t, t + width]."""
    stamps = sorted(stamps)
    return max(
        (bisect.bisect_right(stamps, t + width + 1e-9) - i for i, t in enumerate(stamps)),
        default=0,
    )


# -- construction ---------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf])
def test_rejects_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate)
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(1).set_rate(rate)


@pytest.mark.parametrize("burst", [0, -1, 1.5, True])
def test_rejects_bad_burst(burst: Any) -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1, burst)


def test_make_limiter() -> None:
    assert isinstance(make_limiter(None), Unlimited)
    limiter = make_limiter(5, burst=3)
    assert isinstance(limiter, RateLimiter)
    assert (limiter.rate, limiter.burst, limiter.waiting, limiter.granted) == (5.0, 3, 0, 0)


# -- bounds ---------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, 5])
def test_start_releases_at_most_burst_then_paces(burst: int) -> None:
    stamps: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(RateLimiter(10, burst), 20, stamps)
        await asyncio.sleep(1.0)
        await _stop(tasks)

    run_virtual(main)
    assert stamps.count(0.0) == burst
    # After the opening burst the bucket is empty: one token every 100 ms.
    assert stamps[burst:] == pytest.approx([0.1 * k for k in range(1, 11)])


def test_window_bound_and_rate_hold_under_late_timers() -> None:
    """Up to 2 ms of timer lateness at 100/s (a fifth of an interval) neither
    lowers the long-run rate nor lets a 1-second window exceed R + burst."""
    rate, seconds = 100, 60.0
    jitter = random.Random(42)
    stamps: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(RateLimiter(rate), 50, stamps)
        await asyncio.sleep(seconds)
        await _stop(tasks)

    run_virtual(main, lateness=lambda: jitter.uniform(0.0, 0.002))
    granted_in_run = sum(1 for t in stamps if t <= seconds)
    # A re-anchoring limiter would get about 100 / (1 + 0.001 * 100) = 91/s here.
    assert abs(granted_in_run - (1 + rate * seconds)) <= 2
    assert max_in_window(stamps, 1.0) <= rate + 1
    # A late wake-up is caught up, but never closer than half an interval.
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.5 / rate - 1e-9


def test_window_bound_for_any_window_length() -> None:
    """Over any window of T seconds at most burst + R*T (+ the half-token
    allowance for late wake-ups) are granted."""
    rate, burst = 40, 3
    jitter = random.Random(7)
    stamps: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(RateLimiter(rate, burst), 20, stamps)
        await asyncio.sleep(10.0)
        await _stop(tasks)

    run_virtual(main, lateness=lambda: jitter.uniform(0.0, 0.01))
    for width in (0.0, 0.01, 0.025, 0.1, 0.37, 1.0, 2.5):
        assert max_in_window(stamps, width) <= math.floor(burst + 0.5 + rate * width)


async def test_real_loop_window_bound() -> None:
    rate, window = 200, 0.5
    stamps: list[float] = []
    tasks = await _workers(RateLimiter(rate), 100, stamps)
    await asyncio.sleep(window)
    await _stop(tasks)
    # The bound is exact on a real loop; how close to it a loaded machine gets is the
    # benchmark's figure (the virtual-time tests above hold the rate exactly).
    assert 0.25 * rate * window <= len(stamps) <= 1 + rate * window
    assert max_in_window(stamps, window) <= 1 + rate * window


async def test_real_loop_long_run_rate() -> None:
    rate = 100
    stamps: list[float] = []
    tasks = await _workers(RateLimiter(rate), 100, stamps)
    await asyncio.sleep(1.05)
    await _stop(tasks)
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    # Never above the rate; below it only as far as a loaded machine lags (the
    # 2%-over-a-minute figure is the benchmark's job: benchmarks/pacing.py).
    assert 0.25 * rate <= achieved <= rate * 1.03
    assert max_in_window(stamps, 1.0) <= rate + 1


def _guarded_run(guard: float, rate: int, seconds: float, seed: int) -> list[float]:
    stamps: list[float] = []
    jitter = random.Random(seed)

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(RateLimiter(rate, guard=guard), 50, stamps)
        await asyncio.sleep(seconds)
        await _stop(tasks)

    run_virtual(main, lateness=lambda: jitter.uniform(0.0, 0.001))
    return stamps


@pytest.mark.parametrize("rate", [10, 50, 200])
def test_the_delivery_guard_keeps_windows_at_the_service_within_rate_plus_burst(
    rate: int,
) -> None:
    """Requests delayed on the way by anything from 0 to 10 ms still arrive at most
    rate + burst in any 1-second window; without the guard they do not."""
    seconds = 30.0
    delays = random.Random(rate)

    def arrivals(stamps: list[float]) -> list[float]:
        # Every request late by its own delay: the worst case is early ones on time
        # and later ones 10 ms late, which uniform draws reach over thousands of them.
        return [t + delays.uniform(0.0, 0.00999) for t in stamps]

    guarded = _guarded_run(DELIVERY_GUARD, rate, seconds, seed=1)
    assert max_in_window(arrivals(guarded), 1.0) <= rate + 1
    achieved = sum(1 for t in guarded if t <= seconds) / seconds
    assert achieved == pytest.approx(rate / (1 + DELIVERY_GUARD), rel=0.005)
    assert achieved >= 0.98 * rate  # the 2 %

    if rate >= 200:  # at 10 and 50/s a whole interval (>= 20 ms) already absorbs it
        exact = _guarded_run(0.0, rate, seconds, seed=1)
        assert max_in_window(arrivals(exact), 1.0) > rate + 1


def _grants_after_a_rate_change(limiter: RateLimiter, rate: float) -> list[float]:
    """Grant times over 5 s after `limiter` granted for 2 s and was set to `rate`."""
    stamps: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(limiter, 10, stamps)
        await asyncio.sleep(2.0)
        limiter.set_rate(rate)
        stamps.clear()
        await asyncio.sleep(5.0)
        await _stop(tasks)

    run_virtual(main)
    return stamps


def test_the_guard_follows_rate_changes_and_is_checked() -> None:
    stamps = _grants_after_a_rate_change(RateLimiter(100, guard=0.25), 20)
    # 20/s slowed by a quarter: a token every 62.5 ms.
    assert len(stamps) == pytest.approx(5.0 * 20 / 1.25, abs=1)
    for bad in (-0.1, 1.0, math.nan):
        with pytest.raises(ValueError, match="guard"):
            RateLimiter(10, guard=bad)
    assert RateLimiter(10, guard=0.01).guard == 0.01


def test_the_lead_grants_each_token_that_long_before_it_is_due() -> None:
    stamps: list[float] = []

    async def main(loop: VirtualTimeLoop) -> None:
        tasks = await _workers(RateLimiter(10, lead=0.3), 10, stamps)
        await asyncio.sleep(1.0)
        await _stop(tasks)

    run_virtual(main)
    # Tokens due at 0, 0.1, 0.2, ... are granted 0.3 s early (and not before the start).
    due = [0.1 * k for k in range(13)]
    assert stamps[:13] == pytest.approx([max(0.0, t - 0.3) for t in due])
    assert len(stamps) <= 14  # the token due at 1.3 s, granted at the 1 s stop or not


def test_the_lead_keeps_the_rate_and_follows_rate_changes() -> None:
    stamps = _grants_after_a_rate_change(RateLimiter(100, lead=0.5), 20)
    # Once ahead, it stays ahead by the same time: the rate is the rate in force.
    assert len(stamps) == pytest.approx(5.0 * 20, abs=1)
    assert min(b - a for a, b in itertools.pairwise(stamps)) == pytest.approx(1 / 20)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_rejects_bad_lead(bad: float) -> None:
    with pytest.raises(ValueError, match="lead"):
        RateLimiter(10, lead=bad)


def test_make_limiter_passes_the_lead_and_keeps_the_guard() -> None:
    limiter = make_limiter(50, lead=INTENT_LEAD)
    assert isinstance(limiter, RateLimiter)
    assert (limiter.lead, limiter.guard) == (INTENT_LEAD, DELIVERY_GUARD)
    plain = make_limiter(50)
    assert isinstance(plain, RateLimiter) and plain.lead == 0.0


# -- queueing -------------------------------------------------------------


def test_fifo_order() -> None:
    order: list[int] = []

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(1000, burst=4)

        async def one(i: int) -> None:
            await limiter.acquire()
            order.append(i)

        await asyncio.gather(*(one(i) for i in range(200)))

    run_virtual(main)
    assert order == list(range(200))


def test_async_with_acquires() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = RateLimiter(4)
        stamps = []
        for _ in range(3):
            async with limiter:
                stamps.append(loop.time())
        assert limiter.granted == 3
        return stamps

    assert run_virtual(main) == pytest.approx([0.0, 0.25, 0.5])


def test_cancelled_waiter_takes_no_token() -> None:
    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(10)
        granted_at: dict[str, float] = {}

        async def one(name: str) -> None:
            await limiter.acquire()
            granted_at[name] = loop.time()

        tasks = {name: asyncio.create_task(one(name)) for name in "xabc"}
        await asyncio.sleep(0.05)
        assert limiter.waiting == 3
        tasks["b"].cancel()
        await asyncio.sleep(0)
        assert limiter.waiting == 2
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # b's turn (0.2 s) goes to c; nothing is lost or left queued.
        assert granted_at == pytest.approx({"x": 0.0, "a": 0.1, "c": 0.2})
        assert tasks["b"].cancelled()
        assert (limiter.granted, limiter.waiting) == (3, 0)
        assert limiter._timer is None

    run_virtual(main)


def test_cancelled_waiter_skipped_within_one_wake_up() -> None:
    """A cancelled caller between live ones, when one wake-up releases several."""
    lateness = iter([0.2])  # the first timer wakes 200 ms late: 3 tokens are due

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(10, burst=3)
        granted_at: dict[str, float] = {}

        async def one(name: str) -> None:
            await limiter.acquire()
            granted_at[name] = loop.time()

        tasks = {name: asyncio.create_task(one(name)) for name in ("x1", "x2", "x3", *"abcd")}
        await asyncio.sleep(0)
        tasks["b"].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert granted_at == pytest.approx(
            {"x1": 0.0, "x2": 0.0, "x3": 0.0, "a": 0.3, "c": 0.3, "d": 0.3}
        )
        assert (limiter.granted, limiter.waiting) == (6, 0)

    run_virtual(main, lateness=lambda: next(lateness, 0.0))


def test_cancelled_after_grant_gives_token_back() -> None:
    """A caller granted a token but cancelled before it resumed returns the
    token, and the next waiter gets it at once."""
    lateness = iter([0.1])  # the first timer wakes 100 ms late

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(10, burst=2)
        granted_at: dict[str, float] = {}
        tasks: dict[str, asyncio.Task[None]] = {}

        async def one(name: str) -> None:
            await limiter.acquire()
            granted_at[name] = loop.time()
            if name == "w1":
                tasks["w2"].cancel()  # w2 was granted in the same wake-up

        for name in ("x1", "x2", "w1", "w2", "w3"):
            tasks[name] = asyncio.create_task(one(name))
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert tasks["w2"].cancelled()
        assert granted_at == pytest.approx({"x1": 0.0, "x2": 0.0, "w1": 0.2, "w3": 0.2})
        assert (limiter.granted, limiter.waiting) == (4, 0)

    run_virtual(main, lateness=lambda: next(lateness, 0.0))


def test_mass_cancellation_leaves_the_queue_working() -> None:
    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(10)
        await limiter.acquire()  # empties the bucket
        doomed = [asyncio.create_task(limiter.acquire()) for _ in range(1000)]
        survivor = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        assert limiter.waiting == 1001
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        assert limiter.waiting == 1
        await survivor
        assert loop.time() == pytest.approx(0.1)
        assert (limiter.granted, limiter.waiting) == (2, 0)
        # Everyone cancelled: the wake-up is disarmed, the next caller is served
        # straight from the bucket once it has refilled.
        late = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
        await asyncio.sleep(0.01)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        assert limiter.waiting == 0
        assert limiter._timer is None
        await asyncio.sleep(1.0)
        before = loop.time()
        await limiter.acquire()
        assert loop.time() == before
        assert limiter.granted == 3

    run_virtual(main)


def test_set_rate_while_waiting() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = RateLimiter(1)
        stamps: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            stamps.append(loop.time())

        tasks = [asyncio.create_task(one()) for _ in range(4)]
        await asyncio.sleep(0.5)
        assert limiter.waiting == 3
        # Half a token has accrued at 1/s; at 10/s the other half takes 50 ms.
        limiter.set_rate(10)
        assert limiter.rate == 10.0
        await asyncio.gather(*tasks)
        # And down again: half a token accrued at 10/s takes 5 s more at 0.1/s.
        await asyncio.sleep(0.05)
        limiter.set_rate(0.1)
        await one()
        return stamps

    assert run_virtual(main) == pytest.approx([0.0, 0.55, 0.65, 0.75, 5.8])


def test_many_waiters_wake_once_per_token() -> None:
    """10,000 queued callers cost one timer per token, not one per waiter per tick."""
    rate, n, seconds = 100, 10_000, 2.0

    async def main(loop: VirtualTimeLoop) -> None:
        limiter = RateLimiter(rate)
        stamps: list[float] = []
        tasks = await _workers(limiter, n, stamps)
        await asyncio.sleep(0)
        armed_before = loop.timers_armed
        selects_before = loop._selector_v.blocking_selects
        await asyncio.sleep(seconds)
        assert limiter.waiting == n - 1
        # Only the limiter's single timer (plus this test's sleep) is pending.
        assert len([h for h in loop._scheduled if not h.cancelled()]) <= 2
        armed = loop.timers_armed - armed_before
        selects = loop._selector_v.blocking_selects - selects_before
        await _stop(tasks)
        grants = len(stamps) - 1
        assert grants == pytest.approx(rate * seconds, abs=1)
        assert armed <= grants + 2
        assert selects <= grants + 2

    run_virtual(main)


def test_injected_clock_paces_on_its_own_time_base() -> None:
    """A clock other than the loop's (here 1000 s ahead) is read for the bucket
    and the wake-up is armed as a delay."""

    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = RateLimiter(10, burst=2, clock=lambda: loop.time() + 1000.0)
        stamps: list[float] = []
        for _ in range(5):
            await limiter.acquire()
            stamps.append(loop.time())
        return stamps

    assert run_virtual(main) == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])


def test_usable_from_successive_event_loops() -> None:
    limiter = RateLimiter(1000, burst=2)

    async def take(k: int) -> None:
        for _ in range(k):
            await limiter.acquire()

    run_virtual(lambda loop: take(3))
    asyncio.run(take(3))
    assert limiter.granted == 6


# -- Unlimited ------------------------------------------------------------


def test_unlimited_never_waits() -> None:
    async def main(loop: VirtualTimeLoop) -> None:
        limiter = Unlimited()
        for _ in range(10_000):
            await limiter.acquire()
        async with limiter:
            pass
        limiter.set_rate(5)
        assert loop.time() == 0.0
        assert limiter.granted == 10_001
        assert limiter.waiting == 0
        assert limiter.rate == math.inf

    started = time.perf_counter()
    run_virtual(main)
    assert time.perf_counter() - started < 1.0
