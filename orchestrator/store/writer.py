"""Group commit: many concurrent state changes, few SQLite transactions.

All access to the state store goes through one worker thread, so the event loop
never blocks on a disk sync and the connection is never shared between threads.
Changes queued within a few milliseconds of each other share one transaction;
each caller's await returns only once its change is durable, which is what lets
the runner send a reinstall right after its intent is written, and never before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from orchestrator.store.records import Change, validate
from orchestrator.store.sqlite import StateStore

T = TypeVar("T")

MAX_BATCH = 1000


class StateWriter:
    def __init__(
        self,
        store: StateStore,
        *,
        window: float = 0.005,
        counters: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._store = store
        self._window = window
        self._counters = counters or (lambda: {})
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state")
        self._queue: list[tuple[Change, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method on the state thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def change(self, change: Change) -> bool:
        """Queue a change and wait until it is committed; True if it applied."""
        # Refuse a bad change here, to its own caller: queued, it would fail the
        # whole batch it shares a transaction with.
        validate(change)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((change, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon(), name="state-flush")
        # No shield needed: a cancelled caller cancels only its own future; the batch
        # is committed by the flusher task all the same (flush skips done futures).
        return await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window)
        await self.flush()

    async def flush(self) -> None:
        """Commit everything queued so far."""
        async with self._lock:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                changes = [change for change, _ in batch]
                counters = self._counters()
                try:
                    results = await asyncio.shield(self.call(self._store.apply, changes, counters))
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), ok in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(ok)

    async def close(self) -> None:
        """Commit what is queued, then stop the state thread."""
        with contextlib.suppress(Exception):
            await self.flush()
            # Calls made after the last change (a list read at the end) count too.
            if any((counters := self._counters()).values()):
                await self.call(self._store.apply, [], counters)
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        self._executor.shutdown(wait=True)
