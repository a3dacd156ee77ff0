"""When each followed target is next due for a query: one heap, no task per target.

A fleet of 100,000 long jobs is 100,000 heap entries, not 100,000 sleeping
tasks; a small, fixed pool of poll workers takes whatever is due next.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait for `event` at most `timeout` seconds (TimeoutError when it does not come).

    asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
    cancellation that arrives as the event fires, and a worker would never stop.
    """
    async with asyncio.timeout(timeout):
        await event.wait()


class DueQueue:
    """A heap of (due time, item); `get` waits until the earliest is due.

    However many workers call `get`, one of them (the sleeper) waits for the
    earliest due time; the others wait in line and are woken one at a time, so
    an item coming due wakes one worker, not all of them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0
        self._wake = asyncio.Event()  # for the sleeper: an earlier item arrived
        self._sleeping = False
        self._idle: deque[asyncio.Future[None]] = deque()
        self.wakeups = 0  # times a waiting worker was woken (for tests and profiling)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: int, delay: float) -> None:
        due = self._clock() + max(0.0, delay)
        self._seq += 1
        earliest = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, self._seq, item))
        if earliest:
            if self._sleeping:
                self._wake.set()
            else:
                self._wake_one()

    async def get(self) -> int:
        while True:
            now = self._clock()
            if self._heap and self._heap[0][0] <= now:
                item = heapq.heappop(self._heap)[2]
                if not self._sleeping:
                    self._wake_one()  # someone must watch what is left
                return item
            if self._sleeping:
                await self._wait_in_line()
            else:
                await self._sleep_until_due(now)
            self.wakeups += 1

    async def _sleep_until_due(self, now: float) -> None:
        self._sleeping = True
        self._wake.clear()
        try:
            timeout = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await wait_event(self._wake, timeout)
        finally:
            self._sleeping = False
            self._wake_one()  # the next in line takes over watching

    async def _wait_in_line(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._wake_one()  # woken but cancelled: pass the turn on
            else:
                with contextlib.suppress(ValueError):
                    self._idle.remove(future)
            raise

    def _wake_one(self) -> None:
        while self._idle:
            future = self._idle.popleft()
            if not future.done():
                future.set_result(None)
                return


@dataclass(slots=True)
class Backoff:
    """Per-target polling cadence: a first delay, then growing toward a cap.

    With `ratio` 0, each wait is `factor` times the last. With a `ratio`, each wait
    after the first is that share of the time waited so far (at least `floor`):
    a job is then seen to end within about `ratio` of its age, whatever its length.
    """

    first: float
    cap: float
    factor: float = 1.5
    current: float = 0.0
    ratio: float = 0.0
    floor: float = 0.0
    waited: float = 0.0

    def next(self) -> float:
        if self.current == 0.0:
            self.current = self.first
        elif self.ratio:
            self.current = min(self.cap, max(self.floor, self.ratio * self.waited))
        else:
            self.current = min(self.cap, self.current * self.factor)
        self.waited += self.current
        return self.current


# Learned polling: the first query at FIRST_SHARE of the typical
# job length, then every AGE_SHARE of the job's age. For lengths spread over 0.5x-2x
# of the typical one this sees a job end on average within ~15 % of its length,
# with fewer than 4 queries per job (see tests/unit/test_schedule.py).
FIRST_SHARE = 0.6
AGE_SHARE = 0.3
MIN_SAMPLES = 5  # job lengths seen before they outweigh the configured first poll
KEPT = 1000  # the latest job lengths kept: the recent past describes the fleet best
LONGEST_FLOOR = 0.2  # learned waits are never shorter than this (or --first-poll)


class JobLengths:
    """The lengths of jobs this state file has seen end, and the polling they suggest.

    Pure bookkeeping: the runner feeds it the lengths it loads and observes, and
    asks it for each new job's `Backoff`.
    """

    def __init__(self, expected: float | None = None, seen: Iterable[float] = ()) -> None:
        self.expected = expected  # --expected-job-seconds, where given
        self._seen: deque[float] = deque((s for s in seen if s >= 0), maxlen=KEPT)
        self._median: float | None = None
        self._new = len(self._seen)  # observed since the median was last taken

    def observe(self, seconds: float) -> None:
        if seconds >= 0:
            self._seen.append(seconds)
            self._new += 1

    def typical(self) -> float | None:
        """The median seen (once there are enough), else the expected length, else None."""
        if len(self._seen) < MIN_SAMPLES:
            return self.expected
        # Taken again after every 5 % of the sample is new, not for every job.
        if self._median is None or self._new * 20 >= len(self._seen):
            self._median = statistics.median(self._seen)
            self._new = 0
        return self._median

    def backoff(self, first_poll: float, cap: float) -> Backoff:
        return learned_backoff(self.typical(), first_poll, cap)


def learned_backoff(typical: float | None, first_poll: float, cap: float) -> Backoff:
    """The polling of one job, given the typical job length (None: nothing known yet)."""
    if typical is None:
        return Backoff(first_poll, cap)
    # The first query is not capped by --poll-cap (the longest wait *between* queries):
    # a 10-minute job is first asked about after 6 minutes, then at most every cap.
    floor = min(first_poll, LONGEST_FLOOR)
    first = max(floor, FIRST_SHARE * typical)
    return Backoff(first, max(cap, floor), ratio=AGE_SHARE, floor=floor)
