"""The completion report of a run: built by a pure function, written by small writers.

build_summary(run, targets) -> Summary      one pass, counters and durations only
summary_to_dict(summary) -> dict            what summary.json (and status --json) holds
write_report(report_dir, run, targets)      <report_dir>/<run_id>/{summary.json,
                                            targets.csv, report.md}, all or nothing
"""

from orchestrator.report.render import render_markdown
from orchestrator.report.summary import (
    DurationStats,
    Summary,
    build_summary,
    summary_to_dict,
    target_duration,
)
from orchestrator.report.write import ReportPaths, write_report, write_targets_csv

__all__ = [
    "DurationStats",
    "ReportPaths",
    "Summary",
    "build_summary",
    "render_markdown",
    "summary_to_dict",
    "target_duration",
    "write_report",
    "write_targets_csv",
]
