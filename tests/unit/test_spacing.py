"""The send-side spacing of `RateLimiter.space`, on a virtual-time event loop.

Workers do what the runner does: take a token (`acquire`), "commit the intent"
(a delay chosen by the test: a stall holds every commit until it ends), wait
for the send slot (`space`) and "send" (a time stamp). The loop's clock jumps
to the next timer, so seconds of pacing are checked exactly, in milliseconds.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import selectors
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator.engine.adaptive import AdaptivePacing, stated_ceiling
from orchestrator.engine.pacing import RateLimiter, Unlimited


class _Selector(selectors.DefaultSelector):
    """A blocking select advances virtual time by its timeout (plus `lateness()`, as a
    loaded event loop wakes late) instead of sleeping."""

    def __init__(self, lateness: Callable[[], float] | None) -> None:
        super().__init__()
        self.now = 0.0
        self._lateness = lateness

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("nothing scheduled: the test would block forever")
        self.now += timeout + (self._lateness() if self._lateness else 0.0)
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, lateness: Callable[[], float] | None = None) -> None:
        self._virtual = _Selector(lateness)
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(
    main: Callable[[], Awaitable[Any]], lateness: Callable[[], float] | None = None
) -> Any:
    loop = VirtualLoop(lateness)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def max_in_window(stamps: list[float], width: float = 1.0) -> int:
    """The most stamps in any closed window [t, t + width]."""
    stamps = sorted(stamps)
    return max(
        (bisect.bisect_right(stamps, t + width + 1e-9) - i for i, t in enumerate(stamps)),
        default=0,
    )


@dataclass
class Trace:
    granted: list[float] = field(default_factory=list)
    committed: list[float] = field(default_factory=list)  # ready to send, before `space`
    sent: list[float] = field(default_factory=list)
    most_in_between: int = 0  # most requests granted and not yet sent at once

    def waits(self) -> list[float]:
        """Seconds each request spent in `space` (sends are in commit order)."""
        return [s - c for c, s in zip(sorted(self.committed), self.sent, strict=False)]


async def paced_run(
    limiter: RateLimiter,
    seconds: float,
    *,
    commit: Callable[[float], float] = lambda now: 0.005,
    space: bool = True,
    workers: int = 400,
    at: Callable[[float], None] | None = None,
    hold: float = 0.0,
) -> Trace:
    """`workers` submitters for `seconds`; `commit(now)` is how long the intent's commit
    takes when granted at `now`; `at(now)` runs after each send (rate changes); each
    submitter waits `hold` seconds after a send before it asks again."""
    loop = asyncio.get_running_loop()
    trace = Trace()
    in_between = 0

    async def submitter() -> None:
        nonlocal in_between
        while True:
            await limiter.acquire()
            now = loop.time()
            if now >= seconds:
                return
            trace.granted.append(now)
            in_between += 1
            trace.most_in_between = max(trace.most_in_between, in_between)
            await asyncio.sleep(commit(now))
            trace.committed.append(loop.time())
            if space:
                await limiter.space()
            in_between -= 1
            trace.sent.append(loop.time())
            if at is not None:
                at(loop.time())
            if hold:
                await asyncio.sleep(hold)

    await asyncio.gather(*(submitter() for _ in range(workers)))
    return trace


def stall(start: float, length: float, usual: float = 0.005) -> Callable[[float], float]:
    """Commits take `usual`, except that none ends between `start` and `start + length`."""

    def commit(now: float) -> float:
        end = now + usual
        return start + length - now if start <= end < start + length else usual

    return commit


# -- the bunch is spread again --------------------------------------------------------------


@pytest.mark.parametrize(("rate", "burst"), [(200.0, 1), (50.0, 1), (10.0, 1), (200.0, 5)])
def test_a_stall_after_the_grant_does_not_bunch_the_sends(rate: float, burst: int) -> None:
    commit = stall(start=2.0, length=0.5)

    unspaced = run_virtual(
        lambda: paced_run(RateLimiter(rate, burst), 6.0, commit=commit, space=False)
    )
    spaced = run_virtual(lambda: paced_run(RateLimiter(rate, burst), 6.0, commit=commit))

    # Without spacing, what was granted during the stall leaves at once...
    assert max_in_window(unspaced.sent) >= rate + 0.4 * rate
    # ...with it, the sends keep the grants' own bound.
    assert max_in_window(spaced.sent) <= rate + burst
    assert max_in_window(spaced.sent, 0.1) <= rate * 0.1 + burst


def test_grants_are_held_back_so_no_queue_stays_behind_the_bunch() -> None:
    """After the bunch has been spread, requests wait no longer in `space` than the
    slack (0.05 s at 200/s): the grants made room instead of queueing behind it."""
    rate, length = 200.0, 0.5
    trace = run_virtual(
        lambda: paced_run(RateLimiter(rate), 8.0, commit=stall(start=2.0, length=length))
    )
    waits = trace.waits()
    bunch_over = 2.0 + 2 * length + 0.1  # the stall, the bunch spread at the rate, a margin
    after = [w for w, c in zip(waits, sorted(trace.committed), strict=False) if c > bunch_over]
    assert after and max(after) <= 0.05 + 1e-6
    # During the bunch a request waits at most the bunch's length (bunch / rate).
    assert max(waits) <= length + 0.05 + 1e-6
    # What is granted and not yet sent stays about the bunch, never a growing queue.
    assert trace.most_in_between <= rate * (length + 0.05) + 3


def test_the_time_a_stall_took_is_lost_and_no_more() -> None:
    rate, seconds, length = 100.0, 10.0, 0.5
    trace = run_virtual(
        lambda: paced_run(RateLimiter(rate), seconds, commit=stall(start=3.0, length=length))
    )
    # The bunch goes at the rate, so the stall's sending time is not made up...
    assert len(trace.sent) <= rate * (seconds - length) + 0.05 * rate + 2
    # ...but nothing beyond it is lost: the rest of the run is at the full rate.
    assert len(trace.sent) >= rate * (seconds - length) - 0.05 * rate - 2


def test_the_usual_commit_jitter_costs_no_rate() -> None:
    """Commits of 2-40 ms, varying from one to the next (below the slack): the sends
    stay within the bound and the run loses no rate to the spacing."""
    rate, seconds = 200.0, 10.0
    jitter = [0.002, 0.03, 0.004, 0.04, 0.01, 0.002, 0.025]
    n = iter(range(1 << 30))

    def commit(now: float) -> float:
        return jitter[next(n) % len(jitter)]

    trace = run_virtual(lambda: paced_run(RateLimiter(rate), seconds, commit=commit))
    assert len(trace.sent) >= rate * seconds - 2
    assert max_in_window(trace.sent) <= rate + 1
    assert max(trace.waits()) <= 0.05


def test_a_late_event_loop_costs_the_send_side_no_rate() -> None:
    """Every wake-up late by up to 2 ms at 200/s (0.4 of an interval, as a loaded loop
    here is): the send side makes the lateness up instead of losing it at each send,
    so the sends keep the grants' rate, within the same window bound."""
    rate, seconds = 200.0, 10.0
    late = random.Random(7)
    trace = run_virtual(
        lambda: paced_run(RateLimiter(rate), seconds, commit=lambda now: 0.004),
        lateness=lambda: late.uniform(0.0, 0.002),
    )
    assert len(trace.sent) >= len(trace.granted) - 2
    assert len(trace.granted) >= rate * seconds * 0.99
    assert max_in_window(trace.sent) <= rate + 1
    assert max(trace.waits()) <= 0.05


def test_no_stall_no_wait() -> None:
    trace = run_virtual(lambda: paced_run(RateLimiter(50.0, 2), 3.0))
    assert max(trace.waits()) <= 1e-9
    assert len(trace.sent) == len(trace.granted)


# -- no grant ahead of the send slot --------------------------------------------------------


def sent_by(trace: Trace, seconds: float) -> int:
    return sum(1 for t in trace.sent if t <= seconds)


@pytest.mark.parametrize(("rate", "burst"), [(200.0, 1), (50.0, 1), (10.0, 1), (200.0, 5)])
def test_a_short_stall_costs_its_time_and_never_the_bound(rate: float, burst: int) -> None:
    """No token is granted ahead of its time, so no intent is committed ahead of its
    send slot: a 0.4 s stall of the commits costs the run those 0.4 s (sending them
    later at once would be the bunch the service counts against us), and what is
    committed and unsent at any moment is the slack's worth, not a queue."""
    seconds, length = 10.0, 0.4
    trace = run_virtual(
        lambda: paced_run(RateLimiter(rate, burst), seconds, commit=stall(start=3.0, length=length))
    )
    assert sent_by(trace, seconds) <= rate * (seconds - length) + 0.05 * rate + burst + 1
    assert sent_by(trace, seconds) >= rate * (seconds - length) - 0.05 * rate - burst - 2
    assert max_in_window(trace.sent) <= rate + burst
    assert max_in_window(trace.sent, 0.1) <= rate * 0.1 + burst
    # Outside a stall, a request is granted, committed and sent within the commit's
    # time: at most a few at a time are in between.
    quiet = run_virtual(lambda: paced_run(RateLimiter(rate, burst), 2.0))
    assert quiet.most_in_between <= burst + 2


def test_no_queue_builds_ahead_when_the_rate_is_not_what_waits() -> None:
    """50 submitters that each hold their target a second after sending (as a slot held
    by a running job) ask for 50/s against a 200/s limit: no request ever waits for its
    send slot, not even in the opening, where the 50 are granted at the rate."""
    trace = run_virtual(lambda: paced_run(RateLimiter(200.0), 6.0, workers=50, hold=1.0))
    waits = trace.waits()
    after_opening = [w for w, c in zip(waits, sorted(trace.committed), strict=False) if c > 1.0]
    assert len(after_opening) >= 200
    assert max(after_opening) <= 1e-9
    assert max(waits) <= 1e-9
    assert trace.granted[:50] == pytest.approx([k / 200.0 for k in range(50)])


def test_adaptive_pacing_grants_every_kind_on_time() -> None:
    async def main() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        pacing = AdaptivePacing({"reinstall": 20.0, "job": 20.0}, clock=loop.time)
        granted: dict[str, list[float]] = {"reinstall": [], "job": []}

        async def one(kind: str) -> None:
            await pacing.acquire(kind, "eu-de")
            granted[kind].append(loop.time())

        await asyncio.gather(*(one(kind) for kind in granted for _ in range(15)))
        return granted

    granted = run_virtual(main)
    # Tokens every 50 ms for each kind, the first at once: reinstalls no earlier than jobs.
    for kind in ("reinstall", "job"):
        assert granted[kind] == pytest.approx([k / 20.0 for k in range(15)])


# -- the rate in force ----------------------------------------------------------------------


def test_the_spacing_follows_a_rate_cut_while_a_bunch_waits() -> None:
    """A rate cut (adaptive pacing) while a bunch is being spread: the rest of the
    bunch goes at the new rate, not at the one it was queued under."""
    limiter = RateLimiter(200.0)
    cut_at = 2.6  # the bunch of the stall [2.0, 2.5) is being spread

    def cut(now: float) -> None:
        if now >= cut_at and limiter.rate == 200.0:
            limiter.set_rate(50.0)

    trace = run_virtual(
        lambda: paced_run(limiter, 5.0, commit=stall(start=2.0, length=0.5), at=cut)
    )
    after_cut = [t for t in trace.sent if t > cut_at + 0.01]
    assert max_in_window(after_cut) <= 50 + 1
    gaps = [b - a for a, b in itertools.pairwise(after_cut)]
    assert min(gaps) >= 1 / 50.0 - 1e-9


def test_adaptive_pacing_spaces_each_endpoint_at_its_own_rate() -> None:
    async def main() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        pacing = AdaptivePacing({"reinstall": 20.0}, clock=loop.time)
        sent: dict[str, list[float]] = {"eu-de": [], "eu-nl": []}
        pacing.on_answer("reinstall", "eu-nl", True, sent_at=loop.time())  # cut to 14/s

        async def one(endpoint: str) -> None:
            await pacing.acquire("reinstall", endpoint)
            await asyncio.sleep(max(0.0, 1.0 - loop.time()))  # every commit ends at 1.0
            await pacing.space("reinstall", endpoint)
            sent[endpoint].append(loop.time())

        await asyncio.gather(*(one(e) for e in sent for _ in range(10)))
        await pacing.space("job", "eu-de")  # a kind without a ceiling: never waits
        return sent

    sent = run_virtual(main)
    for endpoint, rate in (("eu-de", 20.0), ("eu-nl", 14.0)):
        assert len(sent[endpoint]) == 10
        # At most n + burst in any n intervals of this endpoint's own rate...
        for n in range(1, 10):
            assert max_in_window(sent[endpoint], n / rate) <= n + 1
        # ...and no slower: the bunch took 9 intervals less the lateness made up.
        assert sent[endpoint][-1] - sent[endpoint][0] == pytest.approx((9 - 0.9) / rate)


# -- a limit the service stated -------------------------------------------------------------


def test_a_hold_grants_nothing_until_it_ends_then_one_token_and_the_rate() -> None:
    """A hold (the gateway said its window is full) stops the callers queued and those
    that come later alike; a rate change during it does not move it."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(10.0)
        granted: list[float] = []

        async def worker() -> None:
            while True:
                await limiter.acquire()
                granted.append(round(loop.time(), 6))

        tasks = [asyncio.create_task(worker()) for _ in range(5)]
        await asyncio.sleep(0.25)
        limiter.hold(2.0)
        await asyncio.sleep(0.75)
        limiter.set_rate(5.0)  # a cut while held: the hold stays where it is in time
        await asyncio.sleep(1.65)
        limiter.hold(1.5)  # a hold that ended already changes nothing
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return granted

    assert run_virtual(main) == pytest.approx([0.0, 0.1, 0.2, 2.0, 2.2, 2.4, 2.6, 2.8])


@pytest.mark.parametrize(("calls", "seconds"), [(30, 60.0), (5, 1.0), (100, 60.0), (2, 1.0)])
def test_the_stated_ceiling_keeps_every_window_within_the_stated_limit(
    calls: int, seconds: float
) -> None:
    """Paced at `stated_ceiling(N, W)`, grant, commit and send slot as in a run, on a
    loop that wakes late: no window of W seconds at the service holds more than N,
    though each request is delayed on the way by anything up to the guard's share of
    W; and the limit is used, not wasted."""
    rate = stated_ceiling(calls, seconds)
    late = random.Random(calls)
    trace = run_virtual(
        lambda: paced_run(RateLimiter(rate), 4 * seconds, commit=lambda now: 0.001, workers=20),
        lateness=lambda: late.uniform(0.0, 0.002),
    )
    delays = random.Random(seconds)
    arrivals = [t + delays.uniform(0.0, 0.01 * seconds * 0.999) for t in trace.sent]
    assert max_in_window(arrivals, seconds) <= calls
    assert len(trace.sent) >= 4 * (calls - 1) / 1.01 - 1


# -- the edges ------------------------------------------------------------------------------


def test_unlimited_never_waits_to_send() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        limiter = Unlimited()
        for _ in range(1000):
            await limiter.acquire()
            await limiter.space()
        return loop.time()

    assert run_virtual(main) == 0.0


def test_a_stop_interrupts_every_request_waiting_for_its_send_slot() -> None:
    class Stopped(Exception):
        pass

    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(10.0)
        outcomes: list[str] = []

        async def one() -> None:
            await limiter.acquire()
            # A stall: no commit ends before 0.35 s, so those granted by then (at 0,
            # 0.1, 0.2, 0.3 s) come to their send slots together.
            await asyncio.sleep(max(0.0, 0.35 - loop.time()))
            try:
                await limiter.space()
                outcomes.append(f"sent {loop.time():.2f}")
            except Stopped:
                outcomes.append(f"stopped {loop.time():.2f}")

        tasks = [asyncio.create_task(one()) for _ in range(8)]
        await asyncio.sleep(0.42)  # the bunch: 2 sent, 2 wait, and the one granted at 0.4
        assert (limiter.spacing, limiter.waiting) == (3, 3)
        assert limiter.interrupt_spacing(Stopped) == 3
        assert limiter.spacing == 0
        assert limiter.interrupt_spacing(Stopped) == 0
        await asyncio.sleep(0.5)  # the three still waiting for a token get one, and go
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return outcomes, loop.time()

    outcomes, _ = run_virtual(main)
    # At once, not as their slots (0.46-0.66 s) would have come; the next one granted
    # takes the first of those slots, unused by them.
    expected = ["sent 0.35", "sent 0.36", *["stopped 0.42"] * 3, "sent 0.50", "sent 0.60"]
    assert outcomes == [*expected, "sent 0.70"]
    assert Unlimited().interrupt_spacing(Stopped) == 0


def test_a_stop_fails_the_callers_waiting_out_a_hold_at_once_and_consumes_no_token() -> None:
    class Stopped(Exception):
        pass

    async def main() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(10.0, clock=loop.time)
        await limiter.acquire()  # the first token, at 0
        limiter.hold(60.0)  # a gateway whose minute is full
        outcomes: list[str] = []

        async def one() -> None:
            try:
                await limiter.acquire()
                outcomes.append(f"granted {loop.time():.1f}")
            except Stopped:
                outcomes.append(f"stopped {loop.time():.1f}")

        tasks = [asyncio.create_task(one()) for _ in range(3)]
        await asyncio.sleep(2.0)
        assert limiter.waiting == 3
        assert limiter.interrupt_waiting(Stopped) == 3
        await asyncio.gather(*tasks)
        assert (limiter.waiting, limiter.interrupt_waiting(Stopped)) == (0, 0)
        await limiter.acquire()  # the hold still stands for a later caller
        outcomes.append(f"granted {loop.time():.1f}")
        return outcomes, limiter.granted

    outcomes, granted = run_virtual(main)
    assert outcomes == ["stopped 2.0"] * 3 + ["granted 60.0"]
    assert granted == 2
    assert Unlimited().interrupt_waiting(Stopped) == 0


def test_adaptive_pacing_interrupts_its_kind_only() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        pacing = AdaptivePacing({"reinstall": 10.0, "job": 10.0}, clock=loop.time)
        outcomes: list[str] = []

        async def one(kind: str, endpoint: str) -> None:
            await pacing.acquire(kind, endpoint)
            await asyncio.sleep(max(0.0, 0.35 - loop.time()))  # a stall, as above
            try:
                await pacing.space(kind, endpoint)
                outcomes.append(f"{kind} sent")
            except LookupError:
                outcomes.append(f"{kind} stopped")

        pairs = [("reinstall", "eu-de"), ("reinstall", "eu-nl"), ("job", "eu-de")]
        tasks = [asyncio.create_task(one(*pair)) for pair in pairs for _ in range(4)]
        await asyncio.sleep(0.37)  # per limiter: 4 granted, 2 sent, 2 wait for a slot
        assert pacing.interrupt_spacing("reinstall", LookupError) == 4
        await asyncio.gather(*tasks)
        return outcomes

    outcomes = sorted(run_virtual(main))
    assert outcomes == sorted(["reinstall sent"] * 4 + ["reinstall stopped"] * 4 + ["job sent"] * 4)


def test_a_request_cancelled_in_the_spacer_gives_its_slot_back() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(10.0)
        sent: list[float] = []

        async def one() -> None:
            await limiter.space()
            sent.append(loop.time())

        tasks = [asyncio.create_task(one()) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert limiter.spacing == 2
        tasks[2].cancel()  # waiting for its slot at 0.11 s
        await asyncio.gather(*tasks, return_exceptions=True)
        assert limiter.spacing == 0
        return sent

    # An idle send side makes up 0.9 of a token: the second goes 0.01 s after the first.
    assert run_virtual(main) == pytest.approx([0.0, 0.01, 0.11])
