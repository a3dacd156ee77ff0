"""--rate and --poll-rate are the campaign's: each runner sharing it (a shard on another
host, through PostgreSQL) takes an equal share, recounted every heartbeat on the
database's clock. A SQLite state file is held by one runner: nothing to share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

from orchestrator.engine.context import RunContext
from orchestrator.errors import StateError

log = logging.getLogger("orchestrator.run")
# A runner sharing a campaign says it is alive this often; one not seen for the lease
# is counted out, and the others take its share of the rates.
HEARTBEAT = 1.0
LEASE = 5.0


class RateSharing:
    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(3)}"
        self.runners = 1  # runners sharing the campaign, this one included
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Before the first request: this runner's share, once every runner already
        there has had a heartbeat to count this one in."""
        if not self.run.store.SHARED:
            return
        await self._recount()
        await asyncio.sleep(HEARTBEAT * 1.2)
        await self._recount()
        self._task = asyncio.create_task(self._keep(), name="share-rates")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(StateError):
            await self.run.writer.call(self.run.store.leave, self.holder)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._recount()

    async def _recount(self) -> None:
        run = self.run
        shard = str(run.settings.shard) if run.settings.shard else None
        try:
            runners = await run.writer.call(run.store.heartbeat, self.holder, shard, LEASE)
        except StateError as exc:
            log.warning("could not count the runners sharing the campaign: %s", exc)
            return  # the share stays as it was; the run's own writes will say more
        if runners == self.runners:
            return
        self.runners = runners
        s = run.settings
        run.client.set_rates(s.rate / runners, s.poll_rate / runners)
        if runners > 1:
            log.info(
                "%d runners share the campaign: this one sends %.2f reinstalls and %.2f"
                " reads per second",
                runners,
                s.rate / runners,
                s.poll_rate / runners,
            )
