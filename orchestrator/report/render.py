"""Pure renderers: summary to JSON text, targets to CSV rows, the Markdown report.

Nothing here touches the file system; `orchestrator.report.write` does.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.engine.next_step import continue_from_summary
from orchestrator.engine.selection import left_out_text
from orchestrator.model import Target, TargetState
from orchestrator.report.durations import DurationStats
from orchestrator.report.summary import (
    Summary,
    summary_to_dict,
    target_duration,
)
from orchestrator.report.times import parse_timestamp
from orchestrator.spreadsheet import neutralise
from orchestrator.visible import visible

CSV_COLUMNS: tuple[str, ...] = (
    "project_id",
    "server_id",
    "state",
    "job_id",
    "error_code",
    "fail_reason",
    "attempts",
    "submitted_at",
    "finished_at",
    "duration_s",
    "region",
    "wave",
)

# Rows listed per section of report.md; the CSV always has every target.
MARKDOWN_ROW_CAP = 500
# Longer cells are cut in report.md only, so one huge API message cannot
# swamp the page.
MARKDOWN_CELL_CAP = 300
# Inventory columns shown beside each failed target in report.md (name, owner, ...).
MARKDOWN_EXTRA_COLUMNS = 3
# Rows of the --group-by table in report.md; the HTML report shows them all.
MARKDOWN_GROUP_CAP = 50


def summary_json(summary: Summary) -> str:
    # default=str: an option value that JSON cannot hold must not sink the report.
    return json.dumps(summary_to_dict(summary), indent=2, ensure_ascii=False, default=str) + "\n"


# -- CSV ----------------------------------------------------------------------


def csv_extra_columns(extra_columns: Sequence[str]) -> list[tuple[str, str]]:
    """(header, extra key) for each inventory column kept for the report.

    An inventory column named like one of ours (say "state") gets an "extra_"
    prefix, and repeats are dropped, so csv.DictReader never loses a column.
    """
    used = set(CSV_COLUMNS)
    pairs: list[tuple[str, str]] = []
    for key in dict.fromkeys(extra_columns):
        header = key
        while header in used:
            header = "extra_" + header
        used.add(header)
        pairs.append((header, key))
    return pairs


def csv_header(extra_columns: Sequence[str]) -> list[str]:
    headers = [*CSV_COLUMNS, *(header for header, _ in csv_extra_columns(extra_columns))]
    return [neutralise(header) for header in headers]


def csv_row(target: Target, extra_keys: Sequence[str]) -> list[str | int | float]:
    """One CSV row; `extra_keys` are the keys of `csv_extra_columns`, in order."""
    duration = target_duration(target)
    texts = [
        target.project_id,
        target.server_id,
        str(target.state.value if isinstance(target.state, TargetState) else target.state),
        target.job_id,
        target.error_code,
        target.fail_reason,
    ]
    stamps = [target.submitted_at, target.finished_at]
    extras = [target.spec.extra.get(key) for key in extra_keys]
    return [
        *(_text(value) for value in texts),
        target.attempts,  # numbers stay numbers: no quote, no neutralising
        *(_text(value) for value in stamps),
        round(duration, 3) if duration is not None else "",
        _text(target.spec.region),
        target.wave if target.wave is not None else "",
        *(_text(value) for value in extras),
    ]


def _text(value: object) -> str:
    return "" if value is None else neutralise(str(value))


# -- Markdown -----------------------------------------------------------------


@dataclass
class Listing:
    """The first `cap` targets offered, and how many were offered in all."""

    cap: int = MARKDOWN_ROW_CAP
    rows: list[Target] = field(default_factory=list)
    total: int = 0

    def offer(self, target: Target) -> None:
        self.total += 1
        if len(self.rows) < self.cap:
            self.rows.append(target)


@dataclass
class Listings:
    """The failed and the unfinished targets shown in report.md."""

    failed: Listing = field(default_factory=Listing)
    not_final: Listing = field(default_factory=Listing)

    def offer(self, target: Target) -> None:
        if target.state == TargetState.FAILED:
            self.failed.offer(target)
        elif not target.is_final:
            self.not_final.offer(target)


# One pass: a backslash of the input is escaped like the rest, so it cannot undo ours.
_MD_ESCAPES = str.maketrans({char: "\\" + char for char in "\\|<>&[]!`"})


class Md(str):
    """Text that is Markdown already (ours, such as `**total**`): `md_cell` keeps it."""


def md_cell(value: object) -> str:
    """`value` as literal text in one Markdown table cell (or line), which cannot
    break the table nor become markup.

    Backslashes are escaped first so an input `\\|` cannot turn our `\\|` back
    into a bare pipe. `<`, `>` and `&` are escaped so that text from the API or an
    inventory is never HTML where a renderer allows it (`<img onerror=...>`);
    `[`, `]`, `!` and backticks so that it is never a link, an image (fetched from
    anywhere the report is pasted) or a code span that swallows what follows.
    Control characters are shown as escapes (`visible`), as for a terminal.
    """
    if value is None:
        return ""
    if isinstance(value, Md):
        return str(value)
    text = " ".join(str(value).splitlines())
    if len(text) > MARKDOWN_CELL_CAP:
        text = text[: MARKDOWN_CELL_CAP - 1] + "…"
    return visible(text).translate(_MD_ESCAPES)


def md_code(value: object) -> str:
    """`value` as one Markdown code span: shown as it is, never markup, whatever
    backticks it holds (the fence is one backtick longer than its longest run)."""
    text = visible(" ".join(str(value).splitlines()))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(headers: Sequence[object], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def _more(listing: Listing) -> list[str]:
    hidden = listing.total - len(listing.rows)
    return [f"… and {hidden} more, see targets.csv"] if hidden > 0 else []


def format_seconds(seconds: float) -> str:
    """A short human duration, e.g. `1h 02m 03s`; sub-minute values keep a decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _stat_values(stats: DurationStats) -> tuple[float | None, ...]:
    return (stats.p50, stats.p90, stats.p95, stats.p99, stats.max, stats.mean)


def _elapsed(summary: Summary) -> str:
    start = parse_timestamp(summary.started_at)
    end = parse_timestamp(summary.ended_at)
    if start is None:
        return "not started"
    if end is None:
        return "still running (or interrupted without an end time)"
    return format_seconds((end - start).total_seconds())


def percent(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "-"


def _campaign_lines(summary: Summary) -> list[str]:
    history = summary.history
    if history is None or not history.invocations:
        return [
            f"- Invocations: {summary.invocations}; latest started {summary.started_at or '-'}, "
            f"ended {summary.ended_at or '-'}, took {_elapsed(summary)}"
        ]
    span = format_seconds(history.span_s) if history.span_s is not None else "-"
    lines = [
        f"- Duration: {format_seconds(history.active_s)} working (sum of "
        f"{len(history.invocations)} invocation(s)); {span} from the first start "
        f"({history.first_started_at or '-'}) to the last end ({history.last_ended_at or '-'})",
        f"- Outcome: {'complete' if summary.complete else 'not complete'}; latest invocation "
        f"{history.invocations[-1].how}",
        "",
        "## Campaign: every invocation",
        "",
        *_table(
            ["#", "started", "ended", "took", "how it ended"],
            [
                (
                    inv.number,
                    inv.started_at or "-",
                    (inv.ended_at or "-") + ("" if inv.end_recorded else " (last activity)"),
                    format_seconds(inv.duration_s) if inv.duration_s is not None else "-",
                    inv.how,
                )
                for inv in history.invocations
            ],
        ),
    ]
    return lines


def _state_rows(summary: Summary) -> list[tuple[str, int, str]]:
    # States no target is in are left out: they only make the table longer.
    return [(state, n, percent(n, summary.total)) for state, n in summary.counts.items() if n]


def _failed_rows(failed: Listing, extra: Sequence[str]) -> list[list[object]]:
    return [
        [
            t.project_id,
            t.server_id,
            *(t.spec.extra.get(key) for key in extra),
            t.error_code,
            t.fail_reason,
        ]
        for t in failed.rows
    ]


def _group_lines(summary: Summary) -> list[str]:
    if summary.group_by is None:
        return []
    states = [state for state, n in summary.counts.items() if n]
    rows: list[list[object]] = []
    for key, counts in list(summary.groups.items())[:MARKDOWN_GROUP_CAP]:
        total = sum(counts.values())
        rows.append(
            [
                key,
                total,
                *(counts.get(s, 0) for s in states),
                percent(counts.get("failed", 0), total),
            ]
        )
    lines = ["", f"## By {md_cell(summary.group_by)}", ""]
    lines += _table([summary.group_by, "targets", *states, "failed %"], rows)
    hidden = len(summary.groups) - len(rows)
    if hidden > 0:
        lines.append(f"… and {hidden} more values, see report.html")
    return lines


def _selection_lines(summary: Summary) -> list[str]:
    text = left_out_text(dict(summary.selection))
    return [f"- Selection: {md_cell(text)}"] if text else []


def _duration_note(stats: DurationStats) -> str:
    if not stats.count:
        return "no finished target yet"
    if stats.from_job_times == stats.count:
        return "from the jobs' own begin and end times"
    if stats.from_job_times == 0:
        return "from submission to the end the orchestrator saw"
    return (
        f"{stats.from_job_times} from the jobs' own begin/end times, the rest from "
        "submission to the end the orchestrator saw"
    )


def _rollout_lines(summary: Summary) -> list[str]:
    """The Rollout section: the plan, each wave, every decision, what was left and why."""
    rollout = summary.rollout
    if rollout is None:
        return []
    plan = rollout.get("plan") or {}
    lines = ["", "## Rollout", ""]
    sizes = plan.get("sizes") or []
    lines.append(
        f"- Plan: waves {md_cell(plan.get('waves') or 'one wave')}"
        + (f", canary {plan['canary']}" if plan.get("canary") else "")
        + (f" (sizes {', '.join(map(str, sizes))})" if sizes else "")
    )
    if rollout.get("left_pending"):
        lines.append(f"- Left: {md_cell(rollout['left_pending'])}")
    if rollout.get("overran"):
        lines.append(f"- Overran: {md_cell(rollout['overran'])}")
    for trip in rollout.get("trips") or []:
        lines.append(f"- Tripped: {md_cell(trip)}")
    for name, rate in (rollout.get("adaptive_rates") or {}).items():
        lines.append(
            f"- Pacing settled: {md_cell(name)} at {rate['rate']:g}/s of {rate['ceiling']:g}/s"
            f" ({rate['throttles']} throttled answers, {rate['cuts']} cuts)"
        )
    waves = rollout.get("waves") or []
    if waves:
        states = [s.value for s in TargetState]
        lines += ["", *_table(["wave", "total", *states], [
            [w["wave"], w["total"], *(w.get(s, 0) for s in states)] for w in waves
        ])]  # fmt: skip
    decisions = rollout.get("decisions") or []
    if decisions:
        lines += ["", "Decisions:", ""]
        lines += _table(
            ["at", "run", "decision", "project", "wave", "detail"],
            [
                [d["at"], d["invocation"], d["kind"], d["project_id"], d["wave"], d["detail"]]
                for d in decisions[-MARKDOWN_ROW_CAP:]
            ],
        )
    return lines


def render_markdown(
    summary: Summary,
    listings: Listings,
    *,
    extra_columns: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The human-readable report.

    `listings` is filled during the pass that writes the CSV, so report.md lists
    at most `cap` targets per section whatever the fleet size. Failed targets
    show the first inventory `extra_columns` (such as name and owner) too.
    """
    failed, not_final = listings.failed, listings.not_final
    stats = summary.duration_s
    total = summary.total
    n_failed = summary.counts.get(TargetState.FAILED.value, 0)
    requests = sum(summary.requests.values())
    extra = list(dict.fromkeys(extra_columns))[:MARKDOWN_EXTRA_COLUMNS]
    lines = [
        f"# Reinstall report: {md_cell(summary.run_id)}",
        "",
        f"- Targets: {total}; succeeded {summary.counts.get('succeeded', 0)} "
        f"({percent(summary.counts.get('succeeded', 0), total)}), failed {n_failed} "
        f"({percent(n_failed, total)})",
        *_campaign_lines(summary)[:2],
        f"- Throttled answers: {summary.throttled} ({percent(summary.throttled, requests)} "
        f"of {requests} requests)",
        f"- State file: {md_code(summary.state_path)}",
        f"- Inventory: {md_code(summary.inventory_path or '-')}"
        f" (sha256 {md_code(summary.inventory_sha256)})",
        f"- Created: {md_cell(summary.created_at)}",
        f"- Generated: {md_cell(summary.generated_at)}; see report.html for charts and every"
        " target",
        *_selection_lines(summary),
        *notes,
        *_campaign_lines(summary)[2:],
        "",
        "## Targets by state",
        "",
        *_table(
            ["state", "count", "share"],
            [*_state_rows(summary), (Md("**total**"), total, percent(total, total))],
        ),
        *_group_lines(summary),
        "",
        f"## Durations (seconds, nearest-rank percentiles; {_duration_note(stats)})",
        "",
        *_table(
            ["count", "p50", "p90", "p95", "p99", "max", "mean"],
            [[stats.count, *("-" if v is None else v for v in _stat_values(stats))]],
        ),
        "",
        "## API requests",
        "",
        *_table(
            ["kind", "sent"],
            [*summary.requests.items(), ("throttled answers", summary.throttled)],
        ),
        "",
        "## Failures by error code",
        "",
    ]
    if summary.failures_by_error_code:
        lines += _table(
            ["error_code", "count", "of failures"],
            [(c, n, percent(n, n_failed)) for c, n in summary.failures_by_error_code.items()],
        )
        lines += ["", "## Failures by project", ""]
        lines += _table(
            ["project_id", "failed", "of failures"],
            [(p, n, percent(n, n_failed)) for p, n in summary.failures_by_project.items()],
        )
    else:
        lines.append("No target failed.")

    lines += _rollout_lines(summary)
    lines += ["", "## Failed targets", ""]
    if failed.total:
        lines += _table(
            ["project_id", "server_id", *extra, "error_code", "fail_reason"],
            _failed_rows(failed, extra),
        )
        lines += _more(failed)
    else:
        lines.append("None.")

    lines += ["", "## Targets not in a final state", ""]
    if not_final.total:
        command, advice = continue_from_summary(
            summary.rollout, "orchestrator resume --state " + shlex.quote(summary.state_path)
        )
        lines += [
            f"{not_final.total} target(s) are not finished. The run can be resumed with "
            f"{md_code(command)}" + (f" ({md_cell(advice)})" if advice else "") + ".",
            "",
        ]
        lines += _table(
            ["project_id", "server_id", *extra, "state", "job_id", "attempts"],
            [
                (
                    t.project_id,
                    t.server_id,
                    *(t.spec.extra.get(key) for key in extra),
                    t.state,
                    t.job_id,
                    t.attempts,
                )
                for t in not_final.rows
            ],
        )
        lines += _more(not_final)
    else:
        lines.append("None: every target is in a final state.")
    return "\n".join(lines) + "\n"
