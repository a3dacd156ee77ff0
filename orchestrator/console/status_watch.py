"""`status --watch`: the status again every few seconds, in place on a terminal.

On a terminal the text is redrawn in place (rich's Live); elsewhere each
refresh is printed after the last (one JSON document per line with --json).
Stops when the latest invocation is no longer running, or on Ctrl-C, and
returns the exit code of the last status read. With --output json nothing is shown
while it waits (`wait_for_end`): the one document comes at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.console.status_view import StatusSnapshot, render_text, status_to_dict
from orchestrator.store.status import read_status


def _running(snap: StatusSnapshot) -> bool:
    return snap.invocation is not None and snap.invocation.state == "running"


def wait_for_end(
    path: Path | str, interval: float, *, examples: int = 5, campaign: str | None = None
) -> StatusSnapshot:
    """Read the status every `interval` seconds, showing nothing, until the run is no
    longer running (or Ctrl-C); the last status read (for `--watch --output json`)."""
    snap = read_status(path, examples=examples, campaign=campaign)
    try:
        while _running(snap):
            time.sleep(interval)
            snap = read_status(path, examples=examples, campaign=campaign)
    except KeyboardInterrupt:
        pass
    return snap


def watch_status(
    path: Path | str,
    interval: float,
    *,
    as_json: bool = False,
    examples: int = 5,
    console: Console | None = None,
    campaign: str | None = None,
) -> int:
    """Refresh until the run stops running (or Ctrl-C); the last status's exit code."""
    console = console or Console()
    snap = read_status(path, examples=examples, campaign=campaign)
    if as_json or not console.is_terminal:
        try:
            while True:
                if as_json:
                    sys.stdout.write(json.dumps(status_to_dict(snap)) + "\n")
                else:
                    sys.stdout.write(render_text(snap) + "\n\n")
                sys.stdout.flush()
                if not _running(snap):
                    break
                time.sleep(interval)
                snap = read_status(path, examples=examples, campaign=campaign)
        except KeyboardInterrupt:
            pass
        return snap.exit_code
    with Live(Text(render_text(snap)), console=console, auto_refresh=False) as live:
        try:
            while _running(snap):
                time.sleep(interval)
                snap = read_status(path, examples=examples, campaign=campaign)
                live.update(Text(render_text(snap)), refresh=True)
        except KeyboardInterrupt:
            pass
    return snap.exit_code
