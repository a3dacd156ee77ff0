"""When each followed target is next due for a query: one heap, no task per target.

A fleet of 100,000 long jobs is 100,000 heap entries, not 100,000 sleeping
tasks; a small, fixed pool of poll workers takes whatever is due next.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Callable
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
    """Per-target polling cadence: a short first delay, growing toward a cap."""

    first: float
    cap: float
    factor: float = 1.5
    current: float = 0.0

    def next(self) -> float:
        self.current = (
            self.first if self.current == 0.0 else min(self.cap, self.current * self.factor)
        )
        return self.current
