"""What the operator sees while a run goes: a live display on a terminal, log lines elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.model import FINAL_STATES, TargetState

log = logging.getLogger("orchestrator.progress")

ORDER = [
    TargetState.SUCCEEDED,
    TargetState.FAILED,
    TargetState.RUNNING,
    TargetState.SUBMITTED,
    TargetState.SUBMITTING,
    TargetState.IN_DOUBT,
    TargetState.PENDING,
]


def format_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--:--"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressMeter:
    """Rates and ETA from counts sampled over time (pure; the display just reads it)."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._clock = clock
        self._start = clock()
        self._first_final: int | None = None

    def begin(self, counts: dict[TargetState, int]) -> None:
        """Take the starting point, so a resumed run's rate counts only this run's work."""
        self._start = self._clock()
        self._first_final = sum(counts.get(s, 0) for s in FINAL_STATES)

    def line(self, counts: dict[TargetState, int]) -> str:
        final = sum(counts.get(s, 0) for s in FINAL_STATES)
        if self._first_final is None:
            self._first_final = final
        elapsed = max(self._clock() - self._start, 1e-9)
        done_here = final - self._first_final
        rate = done_here / elapsed
        eta = (self.total - final) / rate if rate > 0 else None
        parts = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in ORDER if counts.get(s, 0))
        return (
            f"{final}/{self.total} final ({parts or 'nothing yet'}); "
            f"{rate:.1f} targets/s; elapsed {format_seconds(elapsed)}; ETA {format_seconds(eta)}"
        )

    def table(self, counts: dict[TargetState, int]) -> Table:
        table = Table(title="ECS reinstall", expand=False)
        for state in ORDER:
            table.add_column(state.value, justify="right")
        table.add_row(*(str(counts.get(s, 0)) for s in ORDER))
        table.caption = self.line(counts)
        return table


class ProgressDisplay:
    """Live table on a terminal; a log line every `interval` seconds otherwise."""

    def __init__(
        self,
        meter: ProgressMeter,
        counts: Callable[[], dict[TargetState, int]],
        *,
        interval: float = 10.0,
        live: bool | None = None,
    ) -> None:
        self._meter = meter
        self._counts = counts
        self._interval = interval
        self._live = sys.stderr.isatty() if live is None else live
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ProgressDisplay:
        self._meter.begin(self._counts())
        self._task = asyncio.create_task(self._run(), name="progress")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        log.info("progress: %s", self._meter.line(self._counts()))

    async def _run(self) -> None:
        if self._live:
            console = Console(stderr=True)
            with Live(
                self._meter.table(self._counts()), console=console, refresh_per_second=4
            ) as live:
                while True:
                    await asyncio.sleep(0.5)
                    live.update(self._meter.table(self._counts()))
        while True:
            await asyncio.sleep(self._interval)
            log.info("progress: %s", self._meter.line(self._counts()))
