"""What the operator sees while a run goes: the live panel on a terminal, a plain line
every few seconds elsewhere, and an interval summary in the log either way.

    ProgressMeter    rates and ETA from LiveStats snapshots over time (pure; clock injected)
    Reading          one evaluation of the meter: what both views print
    ProgressDisplay  the asyncio task that samples the run and shows it; never per event:
                     the panel redraws every `refresh` seconds, lines every `interval`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console

from orchestrator.console.livestats import LiveStats
from orchestrator.console.logs import PROGRESS_LOGGER, log_format
from orchestrator.model import TargetState

if TYPE_CHECKING:
    from orchestrator.console.panel import LivePanel

log = logging.getLogger(PROGRESS_LOGGER)

ORDER = [
    TargetState.SUCCEEDED,
    TargetState.FAILED,
    TargetState.SKIPPED,
    TargetState.RUNNING,
    TargetState.SUBMITTED,
    TargetState.SUBMITTING,
    TargetState.IN_DOUBT,
    TargetState.PENDING,
]
RATE_WINDOW = 10.0  # seconds over which "current" request rates are measured


def format_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--:--"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True, slots=True)
class Reading:
    """The meter's view of one snapshot."""

    stats: LiveStats
    elapsed: float  # since this invocation began
    final_here: int  # targets that became final in this invocation
    target_rate: float  # final targets per second, this invocation
    eta: float | None  # seconds until every target is final, at that rate
    submit_rate: float  # reinstall requests per second, over the last RATE_WINDOW
    query_rate: float  # job and server queries per second, same window

    def counts_text(self) -> str:
        counts = self.stats.counts
        parts = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in ORDER if counts.get(s, 0))
        return parts or "nothing yet"

    def line(self) -> str:
        """The plain progress line (no terminal, or the log)."""
        s = self.stats
        return (
            f"{s.final}/{s.total} final ({self.counts_text()}); "
            f"{self.target_rate:.1f} targets/s; "
            f"submit {self.submit_rate:.1f}/{s.submit_limit:g} per s, "
            f"query {self.query_rate:.1f}/{s.query_limit:g} per s; "
            f"throttled {s.throttled}; in flight {s.in_flight}/{s.max_in_flight}; "
            f"elapsed {format_seconds(self.elapsed)}; ETA {format_seconds(self.eta)}"
        )

    def fields(self) -> dict[str, Any]:
        """The same as structured fields, for a JSON summary line (docs/reference/logs.md)."""
        s = self.stats
        return {
            "event": "progress",
            "total": s.total,
            "final": s.final,
            "counts": {state.value: s.counts.get(state, 0) for state in ORDER},
            "targets_per_s": round(self.target_rate, 3),
            "submit_per_s": round(self.submit_rate, 3),
            "submit_limit": s.submit_limit,
            "query_per_s": round(self.query_rate, 3),
            "query_limit": s.query_limit,
            "throttled": s.throttled,
            "in_flight": s.in_flight,
            "max_in_flight": s.max_in_flight,
            "elapsed_s": round(self.elapsed, 1),
            "eta_s": None if self.eta is None else round(self.eta, 1),
        }


class ProgressMeter:
    """Rates and ETA from snapshots sampled over time."""

    def __init__(self, total: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._clock = clock
        self._start = clock()
        self._first_final: int | None = None
        # (time, reinstall requests, queries) samples within RATE_WINDOW
        self._samples: deque[tuple[float, int, int]] = deque()

    def begin(self, stats: LiveStats) -> None:
        """Take the starting point, so a resumed run's rate counts only this run's work."""
        self._start = self._clock()
        self._first_final = stats.final
        self._samples.clear()
        self._samples.append((self._start, stats.submitted_requests, stats.query_requests))

    def read(self, stats: LiveStats) -> Reading:
        now = self._clock()
        if self._first_final is None:
            self._first_final = stats.final
        elapsed = max(now - self._start, 1e-9)
        final_here = stats.final - self._first_final
        rate = final_here / elapsed
        eta = (stats.total - stats.final) / rate if rate > 0 else None
        if stats.total == stats.final:
            eta = 0.0
        samples = self._samples
        samples.append((now, stats.submitted_requests, stats.query_requests))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        t0, sub0, q0 = samples[0]
        span = now - t0
        submit_rate = (stats.submitted_requests - sub0) / span if span > 0 else 0.0
        query_rate = (stats.query_requests - q0) / span if span > 0 else 0.0
        return Reading(stats, elapsed, final_here, rate, eta, submit_rate, query_rate)


class ProgressDisplay:
    """The live panel on a terminal; a plain line every `interval` seconds otherwise.

    Either way the log file gets an interval summary every `interval` seconds
    and one at the end. Redraws happen on a timer, never per state change.
    """

    def __init__(
        self,
        meter: ProgressMeter,
        snapshot: Callable[[], LiveStats],
        *,
        interval: float = 5.0,
        refresh: float = 0.5,
        live: bool | None = None,
        title: str = "ECS reinstall",
        console: Console | None = None,
    ) -> None:
        self._meter = meter
        self._snapshot = snapshot
        self._interval = interval
        self._refresh = refresh
        if live is None:
            live = sys.stderr.isatty() and log_format() == "text"
        self._live = live
        self._title = title
        self._console = console
        self._task: asyncio.Task[None] | None = None
        self.panel: LivePanel | None = None  # while the panel is up, for tests

    @property
    def live(self) -> bool:
        return self._live

    async def __aenter__(self) -> ProgressDisplay:
        self._meter.begin(self._snapshot())
        self._task = asyncio.create_task(self._run(), name="progress")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._summary(console=not self._live)

    def _summary(self, *, console: bool) -> None:
        reading = self._meter.read(self._snapshot())
        log.info("progress: %s", reading.line(), extra={**reading.fields(), "console": console})

    async def _run(self) -> None:
        if self._live:
            try:
                await self._run_panel()
            except Exception as exc:
                # What the operator watches must never be what stops a run.
                log.warning("live panel failed (%s); plain progress lines from now on", exc)
                self._live = False
        if not self._live:
            while True:
                await asyncio.sleep(self._interval)
                self._summary(console=True)

    async def _run_panel(self) -> None:
        from orchestrator.console.panel import LivePanel  # rich's Live only where a panel is shown

        console = self._console or Console(stderr=True)
        with LivePanel(console, self._title) as panel:
            self.panel = panel
            next_summary = time.monotonic() + self._interval
            try:
                while True:
                    panel.show(self._meter.read(self._snapshot()))
                    if time.monotonic() >= next_summary:
                        next_summary += self._interval
                        self._summary(console=False)  # to the log file; the panel shows it
                    await asyncio.sleep(self._refresh)
            finally:
                panel.show(self._meter.read(self._snapshot()))  # the final state, once
