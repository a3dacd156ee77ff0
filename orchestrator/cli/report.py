"""`report`: the report written again from the state, where and as the run would."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.exits import REPORT_EXIT_CODES, guarded
from orchestrator.cli.options import (
    CAMPAIGN_OPTION,
    GROUP_BY_OPTION,
    REPORT_MODE_OPTION,
    STATE_HELP,
)
from orchestrator.cli.output import print_report
from orchestrator.cli.resolve import report_dir_from, report_mode_from, state_location
from orchestrator.engine.outcome import exit_code
from orchestrator.report import check_group_by, write_campaign_report
from orchestrator.rollout.report import rollout_summary
from orchestrator.visible import echo

__all__ = ["report"]


@click.command(epilog=REPORT_EXIT_CODES)
@click.option("--state", "state_path", required=True, metavar="PATH|URL", help=STATE_HELP)
@CAMPAIGN_OPTION
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Where to write it.  [default: the run's own report directory]",
)
@GROUP_BY_OPTION
@REPORT_MODE_OPTION
@guarded
def report(
    state_path: str,
    campaign: str | None,
    report_dir: Path | None,
    group_by: str | None,
    report_mode: int | None,
) -> int:
    """Write the report again from the state (of every shard). Exits as the run would for
    the same state: 0 all succeeded, 1 finished with failures, 3 not finished."""
    location = state_location(state_path, campaign)
    with location.open(readonly=True) as store:
        if store.journal_missing:
            echo(f"warning: {store.journal_missing}", err=True)
        run = store.run_info()
        # Given now, else as the latest invocation had them: where, by what, which mode.
        group_by = group_by or run.options.get("group_by")
        check_group_by(run, group_by)
        paths = write_campaign_report(
            report_dir_from(report_dir, run.options, location),
            store,
            group_by=group_by,
            rollout=rollout_summary(store),
            mode=report_mode_from(report_mode, run.options),
        )
        counts = store.counts()
    print_report(paths)
    return exit_code(counts)
