"""`status`: what a state holds now, and how a run ending there would exit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from orchestrator.cli.checks import check_state_file
from orchestrator.cli.exits import STATE_EXIT_CODES, guarded
from orchestrator.cli.options import CAMPAIGN_OPTION, STATE_HELP
from orchestrator.cli.resolve import state_location
from orchestrator.cli.rollout import status_fields, status_lines
from orchestrator.cli.types import Number
from orchestrator.console.status_view import render_text, status_to_dict
from orchestrator.console.status_watch import watch_status
from orchestrator.rollout.report import rollout_summary
from orchestrator.store import is_dsn
from orchestrator.store.status import read_status
from orchestrator.visible import echo

__all__ = ["status"]


@click.command(epilog=STATE_EXIT_CODES)
@click.option("--state", "state_path", required=True, metavar="PATH|URL", help=STATE_HELP)
@CAMPAIGN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (README: Commands).")
@click.option(
    "--failures",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Server IDs listed per error code.",
)
@click.option(
    "--watch",
    type=Number(min=0.2, metavar="SECONDS"),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (2 if not given) until the run is no longer running.",
)
@guarded
def status(
    state_path: str, campaign: str | None, as_json: bool, failures: int, watch: float | None
) -> int:
    """Counts by state, failures by error code, in-doubt and deferred targets, elapsed
    and ETA; during a run too (reads the state file without locking or slowing it).
    Exits as a run would for the same state: 0, 1, or 3 while not finished."""
    where = state_path if is_dsn(state_path) else check_state_file(Path(state_path))
    if campaign is not None and not is_dsn(state_path):
        state_location(state_path, campaign)  # refuses --campaign with a state file
    if watch is None:
        snap = read_status(where, examples=failures, campaign=campaign)
        with state_location(state_path, campaign).open(readonly=True) as store:
            rollout = rollout_summary(store)
            if store.journal_missing:
                echo(f"warning: {store.journal_missing}", err=True)
        wave, window = status_fields(rollout)
        snap = dataclasses.replace(snap, wave=wave, window=window)
        if as_json:
            echo(json.dumps(status_to_dict(snap), indent=2))
        else:
            echo(render_text(snap))
            for line in status_lines(rollout):
                echo(line)
        return snap.exit_code
    return watch_status(where, watch, as_json=as_json, examples=failures, campaign=campaign)
