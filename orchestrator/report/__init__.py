"""The completion report of a run: built by a pure function, written by small writers.

build_summary(run, targets) -> Summary      one pass, counters and durations only
summary_to_dict(summary) -> dict            what summary.json (and status --json) holds
write_report(report_dir, run, targets, ...) <report_dir>/<run_id>/{summary.json,
                                            targets.csv, report.md, report.html},
                                            all or nothing
write_campaign_report(report_dir, store)    the same from a state file: every
                                            target, invocation and event
check_group_by(run, column)                 UsageError unless --group-by COLUMN exists
"""

from orchestrator.report.durations import DurationStats
from orchestrator.report.render import render_markdown
from orchestrator.report.summary import (
    Summary,
    build_summary,
    check_group_by,
    group_columns,
    summary_to_dict,
    target_duration,
)
from orchestrator.report.write import (
    ReportPaths,
    ReportSource,
    write_campaign_report,
    write_report,
    write_targets_csv,
)

__all__ = [
    "DurationStats",
    "ReportPaths",
    "ReportSource",
    "Summary",
    "build_summary",
    "check_group_by",
    "group_columns",
    "render_markdown",
    "summary_to_dict",
    "target_duration",
    "write_campaign_report",
    "write_report",
    "write_targets_csv",
]
