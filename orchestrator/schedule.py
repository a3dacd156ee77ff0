"""When each followed target is next due for a query: one heap, no task per target.

A fleet of 100,000 long jobs is 100,000 heap entries, not 100,000 sleeping
tasks; a small, fixed pool of poll workers takes whatever is due next.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
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
    """A heap of (due time, item); `get` waits until the earliest is due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: int, delay: float) -> None:
        due = self._clock() + max(0.0, delay)
        self._seq += 1
        earliest = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, self._seq, item))
        if earliest:
            self._wake.set()

    async def get(self) -> int:
        while True:
            now = self._clock()
            if self._heap and self._heap[0][0] <= now:
                return heapq.heappop(self._heap)[2]
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await wait_event(self._wake, timeout)


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
