"""One project's servers, read many at a time and kept current through the list APIs.

    baseline   the v1 list, page by page (up to 1,000 servers a call): every server of
               the project, read once
    tick       Nova's list with `changes-since`: only the servers whose status changed
               since the last tick, a page of 1,000 a call
    row        a server's last reading, and the earliest moment on the service's clock
               it may have been taken at (rows.py keeps them: in memory, or on disk
               past the run's budget)

A row is current while the ticks cover the time since it was read: each tick lists
every server whose status changed after its `since`, and each reaches back over the
one before, so a server none of them listed since the row was read still shows what
the row shows (as of the latest tick, which must be recent). A row is the same
evidence as a single read (the same answer, parsed by the same function). Where the
lists cannot vouch for a server (it was not on any page, it was deleted, or no tick
covers its row), the watch has nothing to say (`current` is None) and the server is
read singly.

The system disk's volume is evidence of a reinstall (settle.py), and Nova's list
names no boot index: its row cannot say by itself which attached volume is the system
disk. It is told from the server's previous row (which knew it): that volume still
attached is the system disk, not replaced; gone, with exactly one volume attached that
the previous row did not list (and every other one listed there), that one is the new
system disk. Otherwise the row is dropped, and the server read singly: no decision
rests on a row with less evidence than a single read gives.

Where the reference is silent we assume the hardest: `changes-since` filters on the
last *status* update (the reference's words), the clock behind `updated` may differ
from the one behind `Date` by `SERVICE_CLOCKS_AGREE_WITHIN`, and a page read by
number may shift while servers change (a server missing from the pages is read
singly before anything is concluded). Each tick therefore reaches back over its
predecessor by `OVERLAP` seconds beyond the clock's own error.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN, ServiceClock
from orchestrator.cloud.interface import Cloud, ServerView
from orchestrator.engine.rows import NEVER, Row, RowMemory, Rows

T = TypeVar("T")
PAGE = 1000  # servers a list call returns at most (the reference's maximum)
# Seconds each tick reaches back over the previous one: the service's clocks may
# disagree, and `changes-since` is sent in whole seconds.
OVERLAP = SERVICE_CLOCKS_AGREE_WITHIN + 1.0
GONE = frozenset({"DELETED", "SOFT_DELETED"})  # Nova lists deleted servers by change


class Query(Protocol):
    """A list call made with the run's retries."""

    def __call__(self, call: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


class ProjectWatch:
    """The servers of one project (in one region) as the lists last showed them."""

    def __init__(
        self,
        client: Cloud,
        project_id: str,
        region: str | None,
        *,
        query: Query,
        clock: Callable[[], float] = time.monotonic,
        rows: Rows | None = None,
    ) -> None:
        """`rows`: where the rows are kept (from the run's `RowMemory`; by default a
        budget of this watch's own)."""
        self._client = client
        self.project_id = project_id
        self.region = region
        self._query = query
        self._clock = clock
        self._service: ServiceClock = client.service_clock
        self._rows = rows if rows is not None else RowMemory().rows()
        self.count: int | None = None  # servers in the project, as the v1 list counts them
        self.complete = False  # every page of the baseline was read
        self._since: datetime | None = None  # the next tick's changes-since
        # The first tick's changes-since: each later tick reaches back over the one
        # before, so together they listed every change since this moment.
        self._covered_from: datetime | None = None
        self._covered_at: float | None = None  # when (monotonic) the last tick left
        self.calls = 0  # list calls made
        self.ticks = 0

    # -- reading -----------------------------------------------------------------------

    async def first_page(self) -> int:
        """The first page of the v1 list: its servers, and how many the project has."""
        await self._page(1)
        assert self.count is not None
        return self.count

    async def baseline(self) -> None:
        """The rest of the v1 list's pages (after `first_page`)."""
        page: int | None = 2
        while page is not None and self.count is not None and (page - 1) * PAGE < self.count:
            page = await self._page(page)
        self.complete = True

    async def tick(self) -> int:
        """One round of Nova's list with changes-since: how many servers it showed.
        Nothing is asked before the service's clock is known (no row could be vouched
        for): the caller reads singly meanwhile."""
        sent = self._clock()
        since = self._since
        if since is None:
            start = self._earliest(sent)
            if start is None:
                return 0
            # The first tick reaches back to the oldest row it can vouch for (the
            # baseline's first page): a project read over many pages stays current
            # without a single read of each server.
            oldest = self._rows.oldest
            since = (start if oldest is None else min(start, oldest)) - timedelta(seconds=OVERLAP)
        marker: str | None = None
        shown = 0
        while True:
            left = self._clock()
            changed = functools.partial(
                self._client.servers_changed,
                self.project_id, since, PAGE, marker=marker, region=self.region,
            )  # fmt: skip
            page = await self._query(changed)
            self.calls += 1
            read_at = self._earliest(left)
            for server in page.servers:
                self._keep(server, read_at, left)
            shown += len(page.servers)
            marker = page.next_marker
            if marker is None:
                break
        start = self._earliest(sent)
        if start is not None:
            if self._covered_from is None:
                self._covered_from = since
            self._covered_at = sent
            self._since = start - timedelta(seconds=OVERLAP)
        self.ticks += 1
        return shown

    def keep_single(self, server: ServerView, sent: float) -> None:
        """A single read of one of the project's servers: a row like any other."""
        self._keep(server, self._earliest(sent), sent)

    def current(self, server_id: str, max_age: float) -> ServerView | None:
        """The server as the lists show it now, or None where they cannot vouch for it:
        its row was read within `max_age` seconds, or the last tick (within `max_age`)
        covered the time since it was read."""
        row = self._rows.get(server_id)
        if row is None:
            return None
        now = self._clock()
        if now - row.read_mono <= max_age:
            return row.server
        covered, at = self._covered_from, self._covered_at
        if covered is None or at is None or now - at > max_age:
            return None
        return row.server if row.read_at >= covered else None

    # -- internals ---------------------------------------------------------------------

    async def _page(self, number: int) -> int | None:
        left = self._clock()
        page = await self._query(
            lambda: self._client.servers_page(self.project_id, number, PAGE, region=self.region)
        )
        self.calls += 1
        self.count = page.count
        read_at = self._earliest(left)
        for server in page.servers:
            self._keep(server, read_at, left)
        return page.next_page

    def _keep(self, server: ServerView, read_at: datetime | None, sent: float) -> None:
        if server.status in GONE:
            # Deleted: the single read says so with the service's own words.
            self._rows.pop(server.server_id)
            return
        old = self._rows.get(server.server_id)
        if server.system_volume is None and server.attached:
            system = _system_disk_by(server.attached, None if old is None else old.server)
            if system is None:
                if old is None or old.read_mono <= sent:
                    self._rows.pop(server.server_id)  # read singly instead
                return
            server = replace(server, system_volume=system)
        if read_at is None:
            # No service time yet: the row is current while it is young, and no tick
            # can ever vouch for it.
            read_at = NEVER
        if old is None or old.read_mono <= sent:
            self._rows.put(Row(server, read_at, sent))

    def _earliest(self, sent: float) -> datetime | None:
        """The earliest service time a request that left at `sent` may have been served."""
        at = self._service.at(sent)
        return None if at is None else at.at - timedelta(seconds=at.error)


def _system_disk_by(attached: tuple[str, ...], previous: ServerView | None) -> str | None:
    """The system disk among volumes listed without boot indexes, told from the
    server's previous reading; None where that cannot tell."""
    if previous is None or previous.system_volume is None or previous.attached is None:
        return None
    if previous.system_volume in attached:
        return previous.system_volume  # still attached: not replaced
    new = [volume for volume in attached if volume not in previous.attached]
    if len(new) == 1 and len(attached) == len(previous.attached):
        return new[0]  # the one volume that took the old system disk's place
    return None
