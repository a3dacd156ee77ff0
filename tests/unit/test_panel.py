"""The live panel: redrawn on its timer (never per event), warnings printed above it.

Rendered to a rich Console writing to a StringIO with force_terminal=True, so the
output is what a terminal would receive (cursor movements included).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest
from rich.console import Console

from orchestrator.console.livestats import FailureNote, LiveStats, WaveInfo, in_flight
from orchestrator.console.logs import setup_logging
from orchestrator.console.panel import render
from orchestrator.console.progress import ProgressDisplay, ProgressMeter, Reading
from orchestrator.model import TargetState as S

TITLE = "ECS reinstall · test-panel"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("orchestrator")
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()
    root.setLevel(logging.NOTSET)
    root.propagate = True


class FakeRun:
    """Counts that change as fast as the loop allows, like a busy runner."""

    def __init__(self, total: int) -> None:
        self.counts = {state: 0 for state in S}
        self.counts[S.PENDING] = total
        self.total = total
        self.events = 0

    def snapshot(self) -> LiveStats:
        counts = dict(self.counts)
        return LiveStats(
            counts=counts,
            total=self.total,
            requests={"reinstall": self.events, "job": 2 * self.events},
            throttled=3,
            submit_limit=10,
            query_limit=50,
            in_flight=in_flight(counts),
            max_in_flight=200,
        )

    async def churn(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            for _ in range(50):
                if self.counts[S.PENDING]:
                    self.counts[S.PENDING] -= 1
                    self.counts[S.SUCCEEDED] += 1
                self.events += 1
            await asyncio.sleep(0)


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, height=40), out


async def test_panel_redraws_on_its_timer_not_per_event() -> None:
    console, out = terminal()
    run = FakeRun(total=10**9)
    display = ProgressDisplay(
        ProgressMeter(run.total), run.snapshot, live=True, refresh=0.1, console=console
    )
    async with display:
        await run.churn(1.0)
        panel = display.panel
        assert panel is not None
    assert run.events > 2000  # many state changes...
    assert 3 <= panel.redraws <= 1.0 / 0.1 + 3  # ...a bounded number of redraws
    # Each redraw draws the panel (its title) once; Live's stop draws it once more.
    assert out.getvalue().count(TITLE.split(" · ")[0]) <= panel.redraws + 2


async def test_warnings_show_above_the_panel_and_are_not_overwritten() -> None:
    setup_logging(None, "INFO")
    console, out = terminal()
    run = FakeRun(total=100)
    display = ProgressDisplay(
        ProgressMeter(run.total), run.snapshot, live=True, refresh=0.05, console=console,
        title=TITLE,
    )  # fmt: skip
    async with display:
        await run.churn(0.2)
        logging.getLogger("orchestrator.campaign").warning(
            "signal SIGINT: finishing accepted jobs, then stopping"
        )
        for i in range(200):  # a burst of deferrals: no burst of redraws
            logging.getLogger("orchestrator.run").warning("p/s-%d deferred: busy", i)
        await run.churn(0.3)
        panel = display.panel
        assert panel is not None
    text = ANSI.sub("", out.getvalue())
    ack = text.index("WARNING: signal SIGINT: finishing accepted jobs, then stopping")
    assert "WARNING: p/s-199 deferred: busy" in text
    # The acknowledgement was printed once, and a panel was drawn after it (below it).
    assert text.count("signal SIGINT") == 1
    assert text.rindex(TITLE) > ack
    assert panel.redraws <= 0.5 / 0.05 + 4


def test_render_shows_rates_against_limits_waves_and_failures() -> None:
    stats = LiveStats(
        counts={S.SUCCEEDED: 5, S.FAILED: 2, S.RUNNING: 3, S.PENDING: 10},
        total=20,
        requests={"reinstall": 10, "job": 40},
        throttled=1399,
        submit_limit=10,
        query_limit=50,
        in_flight=3,
        max_in_flight=200,
        recent_failures=(FailureNote("a" * 32, "srv-1", "Ecs.0100", "rejected: running"),),
        submit_rate_adaptive=7.5,
        wave=WaveInfo(number=2, of=4, size=10, final=4),
    )
    meter = ProgressMeter(20)
    meter.begin(stats)
    console, out = terminal()
    console.print(render(meter.read(stats), "T"))
    text = ANSI.sub("", out.getvalue())
    assert "7/20 final (35%)" in text
    assert "of 10/s" in text and "of 50/s" in text and "adapted to 7.5/s" in text
    assert "1399" in text and "3 of 200" in text
    assert "wave 2 of 4: 4/10 final" in text
    assert "Ecs.0100" in text and "srv-1" in text
    assert "window" not in text  # no window: no line for it


LINK_CODE = "[link=https://evil.example/login]Ecs.0605 unlock here[/link]"


def hostile_reading(failures: tuple[FailureNote, ...]) -> Reading:
    stats = LiveStats(
        counts={S.FAILED: len(failures), S.PENDING: 1},
        total=len(failures) + 1,
        requests={"reinstall": 2},
        throttled=0,
        submit_limit=10,
        query_limit=50,
        in_flight=0,
        max_in_flight=200,
        recent_failures=failures,
        extra={"[bold]label": "[red]value"},
    )
    meter = ProgressMeter(stats.total)
    meter.begin(stats)
    return meter.read(stats)


def test_service_text_is_shown_literally_never_as_markup() -> None:
    reading = hostile_reading(
        (
            FailureNote("p" * 32, "srv-1", LINK_CODE, "[/bold] closes nothing [i]x"),
            FailureNote("p" * 32, "srv-2", "Ecs.0100", "[blink]blinking[/blink] [link=x]y"),
        )
    )
    console = Console(record=True, width=200, force_terminal=True, file=io.StringIO())
    # A str cell would be parsed: "[/bold]" with nothing open raises MarkupError.
    console.print(render(reading, "ECS reinstall · [bold]state[/].sqlite"))
    text = console.export_text()
    assert LINK_CODE in text
    assert "[/bold] closes nothing [i]x" in text
    assert "[blink]blinking[/blink] [link=x]y" in text
    assert "[bold]label" in text and "[red]value" in text
    assert "ECS reinstall · [bold]state[/].sqlite" in text
    styles = [segment.style for segment in console._record_buffer if segment.style]
    assert not any(style.link for style in styles), "a link came from service text"
    assert not any(style.blink for style in styles)


def test_service_control_characters_are_shown_as_escapes_in_the_panel() -> None:
    reading = hostile_reading(
        (FailureNote("p" * 32, "srv-1", "\x1b]0;pwned\x07", "gone \x1b[2J\x9b31m \u202eevil"),)
    )
    console, out = terminal()
    console.print(render(reading, "title \x1b[5m"))
    raw = out.getvalue()
    for char in ("\x07", "\x9b", "\u202e", "\x1b]", "\x1b[2J", "\x1b[5m"):
        assert char not in raw
    text = ANSI.sub("", raw)
    assert "\\x1b]0;pwned\\x07" in text
    assert "gone \\x1b[2J\\x9b31m \\u202eevil" in text
    assert "title \\x1b[5m" in text
