"""The live panel on a terminal: what `render` draws from a Reading, and `LivePanel`,
which owns the terminal while a run goes.

Two defects of the first live table are avoided here by construction:
- log lines (deferrals, the Ctrl-C acknowledgement) are routed through the panel's
  console, which prints them above the panel; a raw write to stderr would be
  overwritten by the next redraw;
- one redraw per `show` (the caller's timer), with the queued log lines printed in
  the same redraw, so a burst of warnings does not make a burst of redraws, and the
  panel never scrolls its header into the scrollback.

Every cell, the title included, is a `rich.text.Text` made by `_plain`: rich parses a
plain `str` as markup, and the failures listed here quote the service (an error code
`[link=...]` would become a link, a `[/bold]` would stop the panel). Their control
characters are shown as escapes (`visible`), so an ESC from the service never reaches
the terminal either.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.console.livestats import LiveStats, WaveInfo, WindowInfo
from orchestrator.console.logs import console_handler
from orchestrator.console.progress import ORDER, Reading, format_seconds
from orchestrator.model import TargetState
from orchestrator.visible import visible, visible_lines

STYLES = {
    TargetState.SUCCEEDED: "green",
    TargetState.FAILED: "red",
    TargetState.IN_DOUBT: "yellow",
    TargetState.PENDING: "dim",
}


def _plain(value: object, style: str = "") -> Text:
    """`value` as literal text for rich: never markup, control characters escaped."""
    return Text(visible(value), style=style)


def _rate(current: float, limit: float, adaptive: float | None) -> Text:
    text = Text(f"{current:6.1f}/s of {limit:g}/s")
    if adaptive is not None:
        text.append(f"  (adapted to {adaptive:.1f}/s)", style="yellow")
    return text


def _wave(wave: WaveInfo) -> str:
    of = f" of {wave.of}" if wave.of else ""
    return f"wave {wave.number}{of}: {wave.final}/{wave.size} final"


def _window(window: WindowInfo, now: datetime) -> str:
    if window.opens_at is not None and window.opens_at > now:
        text = f"opens in {format_seconds((window.opens_at - now).total_seconds())}"
    elif window.closes_at is not None:
        left = (window.closes_at - now).total_seconds()
        text = (
            f"closes in {format_seconds(left)}"
            if left > 0
            else f"closed {format_seconds(-left)} ago; following accepted jobs"
        )
    else:
        text = "open"
    return f"{text} ({window.note})" if window.note else text


def render(reading: Reading, title: str, now: datetime | None = None) -> RenderableType:
    """The panel for one reading (pure, apart from `now` for window countdowns)."""
    s: LiveStats = reading.stats
    now = now or datetime.now(UTC)
    done = s.final
    share = done / s.total if s.total else 1.0
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(s.total, 1), completed=done, width=40),
        Text(f"{done}/{s.total} final ({share:.0%})", style="bold"),
    )
    counts = Table.grid(padding=(0, 2))
    for _ in ORDER:
        counts.add_column(justify="right", no_wrap=True)
    counts.add_row(*(Text(state.value.replace("_", " "), style="dim") for state in ORDER))
    counts.add_row(
        *(
            Text(str(n), style=STYLES.get(state, "") if n else "dim")
            for state, n in ((state, s.counts.get(state, 0)) for state in ORDER)
        )
    )

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row(
        _plain("submit"), _rate(reading.submit_rate, s.submit_limit, s.submit_rate_adaptive)
    )
    grid.add_row(_plain("query"), _rate(reading.query_rate, s.query_limit, s.query_rate_adaptive))
    throttled = Text(str(s.throttled), style="yellow" if s.throttled else "")
    grid.add_row(_plain("throttled"), throttled)
    grid.add_row(_plain("in flight"), _plain(f"{s.in_flight} of {s.max_in_flight}"))
    if s.deferred:
        grid.add_row(_plain("deferred"), _plain(s.deferred))
    if s.wave is not None:
        grid.add_row(_plain("wave"), _plain(_wave(s.wave)))
    if s.window is not None:
        grid.add_row(_plain("window"), _plain(_window(s.window, now)))
    for label, value in s.extra.items():
        grid.add_row(_plain(label), _plain(value))
    grid.add_row(
        _plain("time"),
        _plain(
            f"elapsed {format_seconds(reading.elapsed)}   ETA {format_seconds(reading.eta)}"
            f"   {reading.target_rate:.1f} targets/s"
        ),
    )
    parts: list[RenderableType] = [bar, counts, grid]
    if s.recent_failures:
        failures = Table.grid(padding=(0, 2))
        failures.add_column(style="red", no_wrap=True, min_width=9)
        failures.add_column(no_wrap=True, min_width=36)
        failures.add_column(overflow="ellipsis", no_wrap=True, max_width=60)
        for note in reversed(s.recent_failures):  # newest first
            failures.add_row(
                _plain(note.error_code or "?"), _plain(note.server_id), _plain(note.detail)
            )
        parts += [Text("last failures", style="dim"), failures]
    return Panel(Group(*parts), title=_plain(title), title_align="left", expand=False)


class LivePanel:
    """rich's Live, redrawn only by `show`, with the console log lines printed above it."""

    def __init__(self, console: Console, title: str) -> None:
        self._console = console
        self._title = title
        self._pending: list[str] = []
        self._live = Live(
            Text(""),
            console=console,
            auto_refresh=False,  # redraws come from `show`, on the caller's timer
            transient=False,  # the last panel stays on screen, once
            redirect_stdout=True,
            redirect_stderr=True,  # stray writes land above the panel too
            vertical_overflow="crop",
        )
        self.redraws = 0
        self.cpu_seconds = 0.0  # this thread's CPU spent drawing: what the panel costs

    def __enter__(self) -> LivePanel:
        self._live.start()
        handler = console_handler()
        if handler is not None:
            handler.redirect(self._pending.append)
        return self

    def __exit__(self, *exc: Any) -> None:
        handler = console_handler()
        if handler is not None:
            handler.redirect(None)
        self._flush()
        self._live.stop()

    def show(self, reading: Reading) -> None:
        """Redraw once: queued log lines above, the panel below."""
        started = time.thread_time()
        self._live.update(render(reading, self._title), refresh=False)
        if not self._flush():
            self._live.refresh()
        self.redraws += 1
        self.cpu_seconds += time.thread_time() - started

    def _flush(self) -> bool:
        if not self._pending:
            return False
        lines, self._pending[:] = list(self._pending), []
        # Printing while Live is up puts the text above the panel and redraws it below.
        text = visible_lines("\n".join(lines))  # escaped by the log's formatter already
        self._console.print(Text(text), highlight=False, markup=False)
        return True
