"""`status`: what a state holds now, and how a run ending there would exit.

Without --state it reads the one state file `run` made here by default (in state/,
or in reports/ where an earlier version made it), and says which; with a PostgreSQL
--state and no --campaign, the database's only campaign. Anything else is ambiguous:
the candidates are listed and it exits 2.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.checks import check_state_file
from orchestrator.cli.document import OUTPUT_OPTION, Ended
from orchestrator.cli.exits import STATE_EXIT_CODES, guarded
from orchestrator.cli.options import STATE_HELP
from orchestrator.cli.resolve import state_location
from orchestrator.cli.rollout import status_fields, status_lines
from orchestrator.cli.state_files import DEFAULT_REPORT_DIR, STATE_DIR, find_state_files
from orchestrator.cli.types import Number
from orchestrator.console.status_view import StatusSnapshot, render_text, status_to_dict
from orchestrator.console.status_watch import wait_for_end, watch_status
from orchestrator.errors import UsageError
from orchestrator.rollout.report import rollout_summary
from orchestrator.store import StateLocation, is_dsn, pg_location
from orchestrator.store.status import read_status
from orchestrator.visible import echo

__all__ = ["status"]


@click.command(epilog=STATE_EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    metavar="PATH|URL",
    help=f"{STATE_HELP}  [default: the only state file in {STATE_DIR}/ or"
    f" {DEFAULT_REPORT_DIR}/ here]",
)
@click.option(
    "--campaign",
    metavar="NAME",
    help="With a PostgreSQL --state: the campaign (schema orch_NAME).  [default: the"
    " database's only campaign]",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="The status as JSON on stdout (with --watch: one document per refresh).",
)
@OUTPUT_OPTION
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
    state_path: str | None,
    campaign: str | None,
    as_json: bool,
    output: str,
    failures: int,
    watch: float | None,
) -> int | Ended:
    """Counts by state, failures by error code, in-doubt and deferred targets, elapsed
    and ETA; during a run too (reads the state file without locking or slowing it).
    Exits as a run would for the same state: 0, 1, or 3 while not finished."""
    where, location = _location(state_path, campaign)
    campaign = getattr(location, "campaign", None)
    document = output.lower() == "json"
    if watch is not None and not document:
        return watch_status(where, watch, as_json=as_json, examples=failures, campaign=campaign)
    if watch is not None:
        snap = wait_for_end(where, watch, examples=failures, campaign=campaign)
    else:
        snap = read_status(where, examples=failures, campaign=campaign)
    with location.open(readonly=True) as store:
        rollout = rollout_summary(store)
        if store.journal_missing:
            echo(f"warning: {store.journal_missing}", err=True)
    wave, window = status_fields(rollout)
    snap = dataclasses.replace(
        snap, wave=wave, window=window, held=_held(rollout), report=_report_folder(snap)
    )
    if document:
        return Ended(snap.exit_code, status_to_dict(snap))
    if as_json:
        echo(json.dumps(status_to_dict(snap), indent=2))
    else:
        echo(render_text(snap))
        for line in status_lines(rollout):
            echo(line)
    return snap.exit_code


def _held(rollout: Mapping[str, Any] | None) -> str | None:
    """Why the latest invocation left targets pending (a window, a canary, a budget),
    else the latest failure-budget trip not acknowledged."""
    if not rollout:
        return None
    trips: list[str] = rollout.get("trips") or []
    return rollout.get("left_pending") or (trips[-1] if trips else None)


def _report_folder(snap: StatusSnapshot) -> str | None:
    """Where the run's report is: <report-dir>/<run-id>, when it is there on this host."""
    saved = snap.options.get("report_dir")
    if not isinstance(saved, str) or not snap.run_id:
        return None
    folder = Path(saved) / snap.run_id
    return str(folder) if folder.is_dir() else None


def _location(state_path: str | None, campaign: str | None) -> tuple[Path | str, StateLocation]:
    """The state to read (a path, or a DSN whose campaign the location names): as
    given, else the only one there is (said on stderr)."""
    if state_path is None:
        if campaign is not None:
            raise UsageError("--campaign names a campaign in a PostgreSQL --state; give it too")
        found = find_state_files()
        if not found:
            raise UsageError(
                f"no state file in {STATE_DIR}/ or {DEFAULT_REPORT_DIR}/ here; give --state"
                " PATH (or a PostgreSQL URL)"
            )
        if len(found) > 1:
            listed = "\n".join(f"  {path}" for path in found)
            raise UsageError(f"{len(found)} state files here; give --state with one of:\n{listed}")
        echo(f"state file {found[0]} (the only one here)", err=True)
        state_path = str(found[0])
    if is_dsn(state_path) and campaign is None:
        location = pg_location(state_path, None, sole=True)
        echo(f"{location.describe} (the only campaign there)", err=True)
        return state_path, location
    where = state_path if is_dsn(state_path) else check_state_file(Path(state_path))
    return where, state_location(state_path, campaign)
