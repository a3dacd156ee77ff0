"""Where a run's server readings come from: the lists where they are cheaper, single
reads where they are not. The cloud's API gateway allows each API tens of calls a
second; every read taken from that budget is time a reinstall waits for.

Per project (and region), at its first reading, by a cost model the run logs:

    singles    fewer than two targets to do, or a project so large that paging it
               would cost more calls than reading its targets one by one
    pages      the v1 list read page by page (1,000 servers a call) once, where the
               project's pages number no more than its targets to do

Either way, while at least `TICK_WORTH` readings of a project were wanted since the
last tick, the project is ticked (watch.py): one `changes-since` call every
`interval` keeps every row current, and a reading costs nothing. Where no row is
current the server is read singly, and that reading becomes a row too.

Settling a doubt always reads singly (`single=True`): a reading that may send a
reinstall again is taken from the server's own answer, never from a list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.cloud.interface import Cloud, ServerView
from orchestrator.cloud.retry_policy import RetrySettings, brief, call_retrying
from orchestrator.engine.rows import SPILL_AT, RowMemory
from orchestrator.engine.watch import PAGE, ProjectWatch
from orchestrator.errors import ApiError, AuthFailed
from orchestrator.model import Target

log = logging.getLogger("orchestrator.reads")
T = TypeVar("T")
Key = tuple[str, str | None]  # (project_id, region)
TICK_WORTH = 2  # readings a tick must serve to be worth its call


@dataclass
class Method:
    """How one project is read, why, and what it cost."""

    name: str  # "singles" or "pages"
    why: str
    servers: int | None = None  # in the project, as the v1 list counts them
    to_do: int = 0
    singles: int = 0  # single reads made
    served: int = 0  # readings the lists answered without a call


class ServerReads:
    def __init__(
        self,
        client: Cloud,
        to_do: Mapping[Key, int],
        *,
        retry: RetrySettings,
        interval: float,
        lists: bool = True,
        rows_in_memory: int = SPILL_AT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._to_do = dict(to_do)
        self._retry = retry
        self._lists = lists
        self.interval = interval
        self.max_age = 2 * self.interval
        self._clock = clock
        self._watches: dict[Key, ProjectWatch] = {}
        self._rows = RowMemory(rows_in_memory)  # every project's rows, one budget
        self.methods: dict[Key, Method] = {}
        self._wanted: dict[Key, int] = {}  # readings wanted since the last tick
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tickers: list[asyncio.Task[None]] = []

    # -- the readings ------------------------------------------------------------------

    async def server(
        self, target: Target, *, single: bool = False, patient: bool = False
    ) -> ServerView:
        """The server as it is now: a current row of its project's lists, else its own
        answer (errors as `Cloud.server` raises them; retried briefly, or with a
        reinstall's whole budget when `patient`)."""
        key = _key(target)
        method = await self._method(key)
        if not single:
            self._wanted[key] = self._wanted.get(key, 0) + 1
            shown = self._current(key, target.server_id)
            if shown is not None:
                method.served += 1
                return shown
        sent = self._clock()
        server = await call_retrying(
            self._retry if patient else brief(self._retry),
            lambda: self._client.server(target.project_id, target.server_id, target.spec.region),
        )
        method.singles += 1
        watch = self._watches.get(key)
        if watch is not None:
            watch.keep_single(server, sent)
        return server

    def shown(self, target: Target) -> ServerView | None:
        """The server as its project's lists show it now, without a call; None where
        they cannot vouch for it (then read it, or ask its job)."""
        key = _key(target)
        if key not in self.methods:
            return None
        self._wanted[key] = self._wanted.get(key, 0) + 1
        shown = self._current(key, target.server_id)
        if shown is not None:
            self.methods[key].served += 1
        return shown

    def _current(self, key: Key, server_id: str) -> ServerView | None:
        watch = self._watches.get(key)
        return None if watch is None else watch.current(server_id, self.max_age)

    # -- the cost model ----------------------------------------------------------------

    async def _method(self, key: Key) -> Method:
        method = self.methods.get(key)
        if method is not None:
            return method
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            method = self.methods.get(key)
            if method is None:
                method = self.methods[key] = await self._choose(key)
                log.info("reads: project %s: %s (%s)", key[0], method.name, method.why)
        return method

    async def _choose(self, key: Key) -> Method:
        project, region = key
        to_do = self._to_do.get(key, 0)
        if not self._lists:
            return Method("singles", "--no-list-reads", to_do=to_do)
        if to_do < TICK_WORTH:
            return Method("singles", f"{to_do} target(s) to do: a list call would save none",
                          to_do=to_do)  # fmt: skip
        watch = ProjectWatch(
            self._client, project, region,
            query=self._list, clock=self._clock, rows=self._rows.rows(),
        )  # fmt: skip
        self._watches[key] = watch
        self._tickers.append(asyncio.create_task(self._ticks(key, watch), name=f"ticks-{project}"))
        try:
            servers = await watch.first_page()
        except AuthFailed:
            raise  # the run's fault, not the list's: the caller stops the run
        except ApiError as exc:
            return Method("singles", f"the server list could not be read: {exc}", to_do=to_do)
        pages = math.ceil(servers / PAGE)
        if pages - 1 > to_do:
            return Method(
                "singles",
                f"{servers} servers, {to_do} to do: paging would cost {pages} calls",
                servers=servers,
                to_do=to_do,
            )
        try:
            await watch.baseline()
        except AuthFailed:
            raise
        except ApiError as exc:
            return Method("singles", f"the server list could not be read: {exc}", to_do=to_do)
        return Method(
            "pages",
            f"{servers} servers, {to_do} to do: read in {pages} page call(s)",
            servers=servers,
            to_do=to_do,
        )

    async def _list(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_retrying(brief(self._retry), call)

    # -- ticks -------------------------------------------------------------------------

    async def _ticks(self, key: Key, watch: ProjectWatch) -> None:
        """Keep the project's rows current while readings of it are wanted."""
        while True:
            await asyncio.sleep(self.interval)
            if self._wanted.get(key, 0) < TICK_WORTH:
                continue
            self._wanted[key] = 0
            try:
                await watch.tick()
            except ApiError as exc:
                # Rows go stale and readings fall back to single reads; the next tick
                # tries again.
                log.info("reads: project %s: changes not read: %s", key[0], exc)

    async def close(self) -> None:
        for task in self._tickers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tickers, return_exceptions=True)
        self._rows.close()
        if self._rows.spilled:
            log.info(
                "reads: the rows of %d project(s) were kept on disk (more than %d in memory)",
                self._rows.spilled, self._rows.spill_at,
            )  # fmt: skip
        for key, method in sorted(self.methods.items(), key=lambda kv: kv[0][0]):
            watch = self._watches.get(key)
            calls = watch.calls if watch else 0
            ticks = watch.ticks if watch else 0
            log.info(
                "reads: project %s: %s; %d list call(s) (%d tick(s)), %d single read(s),"
                " %d reading(s) served by the lists",
                key[0], method.name, calls, ticks, method.singles, method.served,
            )  # fmt: skip

    def costs(self) -> dict[str, dict[str, object]]:
        """Per project: the method, why, and the calls it cost (for the report)."""
        found: dict[str, dict[str, object]] = {}
        for key, method in self.methods.items():
            watch = self._watches.get(key)
            found[key[0] if key[1] is None else f"{key[0]}@{key[1]}"] = {
                "method": method.name,
                "why": method.why,
                "list_calls": watch.calls if watch else 0,
                "ticks": watch.ticks if watch else 0,
                "single_reads": method.singles,
                "served_by_lists": method.served,
            }
        return found


def _key(target: Target) -> Key:
    return (target.project_id, target.spec.region)
