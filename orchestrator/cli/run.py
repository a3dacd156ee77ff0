"""`run`, `resume` and `retry`: resolve the options, open the state, run, print the end.

All three start the same way (`start`): the options resolved once into a frozen
Invocation (nothing created yet), logging set up, the state opened (or created from
the inventory), one async call (`campaign.execute`), and the outcome's exit code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.document import Ended, run_to_dict
from orchestrator.cli.exits import EXIT_CODES, guarded
from orchestrator.cli.options import (
    CAMPAIGN_OPTION,
    accept_changed_user_data,
    cloud_init_options,
    encoding_option,
    run_options,
    selection_options,
    user_data_option,
)
from orchestrator.cli.output import print_end, resume_args
from orchestrator.cli.request_options import inventory_defaults, selection_from
from orchestrator.cli.resolve import LogChoice, resolve, saved_options, state_location
from orchestrator.cli.state_files import default_state
from orchestrator.console.logs import log_format_for, setup_logging
from orchestrator.console.run_log import log_run_end, log_run_start
from orchestrator.engine.campaign import check_report_dir, execute, open_state
from orchestrator.engine.retry_select import STATES_IS, RetryRequest, plan_retry
from orchestrator.engine.selection import Selection
from orchestrator.errors import OrchestratorError
from orchestrator.inventory import InventoryDefaults
from orchestrator.report import check_group_by
from orchestrator.store import StateLocation
from orchestrator.store.sqlite import StoreFailure
from orchestrator.visible import echo

__all__ = ["resume", "retry", "run", "start"]


def start(
    command: str,
    location: StateLocation,
    given: dict[str, Any],
    *,
    inventory: Path | None = None,
    defaults: InventoryDefaults | None = None,
    selection: Selection | None = None,
    retry: RetryRequest | None = None,
) -> Ended:
    """Run the state's targets as `given` (and the state's saved options) say."""
    log = LogChoice.of(given)
    inv = resolve(
        location,
        given,
        saved_options(location),
        inventory=inventory,
        defaults=defaults,
        selection=selection,
        retry=retry,
    )
    secrets = inv.cloud.secrets() if inv.cloud else ()
    log_file = log.file or location.log_path(inv.report_dir, inv.settings.shard)
    # Before anything is created: a --log-format the log file's lines are not in is exit 2.
    fmt = log_format_for(log_file, log.format)
    setup_logging(None, log.level, secrets, fmt)
    check_report_dir(inv.report_dir, inv.report_mode)
    store = open_state(inv)
    try:
        if retry is not None:
            # Chosen before the invocation starts: a selection of nothing is exit 2.
            inv = replace(inv, retry=(retry, plan_retry(store, retry)))
        # Only now are the inventory's columns known; still nothing has been sent.
        check_group_by(store.run_info(), inv.group_by)
        # The log file starts once the state file exists: an invalid inventory leaves neither.
        setup_logging(log_file, log.level, secrets, fmt)
        log_run_start(command, inventory=inv.inventory, state=inv.state.label, options=inv.options)
        if inv.cloud is not None:
            # Where the credentials came from and whose they are; never a secret.
            about = {k: v for k, v in inv.cloud.describe().items() if v}
            logging.getLogger("orchestrator.campaign").info(
                "credentials: %s; CA: %s",
                ", ".join(f"{k}={v}" for k, v in about.items()),
                inv.ca.source,
            )
        try:
            result = asyncio.run(execute(inv, store))
        except StoreFailure as exc:
            # The database went away during the run: whatever was sent is recorded as
            # intent; a resume (from any host) settles it. Not finished: exit 3.
            echo(f"error: {exc}", err=True)
            echo(f"not finished; continue with: orchestrator resume {resume_args(inv)}", err=True)
            log_run_end(command, outcome="interrupted", exit_code=3, error=str(exc))
            return Ended(3, run_to_dict(command, 3, inv=inv, outcome="interrupted", error=str(exc)))
        except OrchestratorError as exc:
            log_run_end(command, outcome="error", exit_code=2, error=str(exc))
            raise
    finally:
        store.close()
    print_end(result, inv)
    outcome = result.outcome
    log_run_end(
        command,
        outcome=outcome.label,
        exit_code=outcome.exit_code,
        counts=outcome.counts,
        held=outcome.held,
        report=result.report.directory if result.report is not None else None,
        error=outcome.aborted or result.report_error,
    )
    return Ended(outcome.exit_code, run_to_dict(command, outcome.exit_code, inv=inv, result=result))


@click.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--state",
    "state_path",
    metavar="PATH|URL",
    help="SQLite state file, or a PostgreSQL database postgresql://USER@HOST:PORT/DB"
    " (password from PGPASSWORD or ~/.pgpass).  [default: state/<inventory>.state.sqlite,"
    " or <report-dir>/<inventory>.state.sqlite where an earlier version made it]",
)
@CAMPAIGN_OPTION
@encoding_option
@click.option("--keyname", help="Key pair name, where the inventory gives none.")
@click.option("--userid", help="User ID, where the inventory gives none.")
@click.option(
    "--stop-server",
    is_flag=True,
    help="Send mode withStopServer (reinstall running servers), where the inventory gives no mode.",
)
@click.option(
    "--byol/--no-byol", default=None, help="metadata.BYOL, where the inventory gives none."
)
@click.option(
    "--accept-changed-options",
    is_flag=True,
    help=(
        "Re-running with other --keyname/--userid/--stop-server/--byol/--cloud-init/"
        "--user-data than the state file's: apply them to the targets nothing was sent for yet."
    ),
)
@cloud_init_options
@selection_options
@run_options
@guarded
def run(inventory: Path, state_path: str | None, campaign: str | None, **given: Any) -> Ended:
    """Reinstall every server in INVENTORY (CSV or JSON) and write the report.

    Running the same command again resumes: nothing already succeeded is sent again,
    and options not given again are the state file's (the defaults shown apply to a
    new state file). With --only-project/--exclude/--limit only part of the
    inventory is imported; the report says how many were left out.
    """
    location = state_location(
        state_path or str(default_state(inventory, given["report_dir"])),
        campaign,
        inventory,
    )
    return start(
        "run",
        location,
        given,
        inventory=inventory,
        defaults=inventory_defaults(given),
        selection=selection_from(given),
    )


@click.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH|URL",
    help="The state file of the run to resume, or its PostgreSQL database (with --campaign).",
)
@CAMPAIGN_OPTION
@user_data_option
@accept_changed_user_data
@run_options
@guarded
def resume(state_path: str, campaign: str | None, **given: Any) -> Ended:
    """Resume a run from its state file, without the inventory.

    Every option not given again is taken from the state file's latest
    invocation (the defaults shown apply only to options it never set),
    including where the report goes.
    """
    return start("resume", state_location(state_path, campaign), given)


@click.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH|URL",
    help="The state file whose targets to send again, or its PostgreSQL database.",
)
@CAMPAIGN_OPTION
@click.option(
    "--state-is",
    type=click.Choice(STATES_IS),
    default="failed",
    show_default=True,
    help="failed: failed targets; deferred: pending ones a run deferred; unverified:"
    " failed as Orchestrator.Unverified (needs --i-checked-unverified).",
)
@click.option(
    "--error-code",
    "error_codes",
    multiple=True,
    metavar="CODE",
    help="Only this code (repeatable).",
)
@click.option(
    "--only-project",
    "projects",
    multiple=True,
    metavar="ID",
    help="Only the targets of this project (repeatable).",
)
# The earlier spelling, kept working for scripts; `run` and `plan` call it --only-project.
@click.option("--project", "old_projects", multiple=True, hidden=True)
@click.option(
    "--i-checked-unverified",
    is_flag=True,
    help="Include Orchestrator.Unverified targets: you checked that they were not reinstalled.",
)
@user_data_option
@accept_changed_user_data
@run_options
@guarded
def retry(
    state_path: str,
    campaign: str | None,
    state_is: str,
    error_codes: tuple[str, ...],
    projects: tuple[str, ...],
    old_projects: tuple[str, ...],
    i_checked_unverified: bool,
    **given: Any,
) -> Ended:
    """Send again only the selected targets of a state file, as a new attempt.

    By default every failed target except those failed as Orchestrator.Unverified
    (their reinstall may have happened: check them, then --i-checked-unverified).
    Each is sent with the values it was sent with before; no other target is
    sent. Targets left mid-way by an earlier invocation are settled and followed
    as by resume. The events keep every attempt; the report is written as for a run.
    """
    request = RetryRequest(
        state_is=state_is,
        error_codes=tuple(error_codes),
        projects=(*projects, *old_projects),
        checked_unverified=i_checked_unverified,
    )
    return start("retry", state_location(state_path, campaign), given, retry=request)
