"""report.html: one self-contained page, written as a stream.

`html_head` renders everything that comes from the summary (outcome, campaign,
charts, failure tables); the targets then follow as JSON rows, one per
`TargetRows.row` call, inside `<script type="application/json">`, and
`html_tail` closes the page with its script. So a million targets pass through
one at a time, never held in memory together.

Escaping: text in markup goes through `esc`; in the JSON every `<`, `>` and `&`
is written as a \\u escape, so no value can close the script element or open
a comment, whatever it holds.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.engine.next_step import continue_from_summary
from orchestrator.engine.selection import left_out_text
from orchestrator.model import FINAL_STATES, Target, TargetState
from orchestrator.report.history import History
from orchestrator.report.page_assets import CSS, ERROR_HOOK, SCRIPT
from orchestrator.report.render import Listings, format_seconds
from orchestrator.report.summary import Summary, target_duration
from orchestrator.report.svg import (
    IN_FLIGHT_COLOUR,
    STATE_COLOURS,
    SUBMITTED_COLOUR,
    THROTTLE_COLOUR,
    esc,
    histogram_chart,
    status_bar,
    timeline_chart,
)
from orchestrator.report.timeline import Bin
from orchestrator.visible import visible

# Columns of the in-page table: (key, label, numeric, searched by the search box).
# An inventory column "name" goes right after the server ID; other inventory
# columns go last.
BASE_COLUMNS: tuple[tuple[str, str, bool, bool], ...] = (
    ("server_id", "server ID", False, True),
    ("project_id", "project", False, True),
    ("state", "state", False, False),
    ("error_code", "error code", False, False),
    ("fail_reason", "reason", False, True),
    ("attempts", "attempts", True, False),
    ("duration_s", "duration s", True, False),
    ("finished_at", "finished", False, False),
    ("job_id", "job ID", False, True),
)
BASE_KEYS = frozenset(key for key, *_ in BASE_COLUMNS)
FINAL_VALUES = frozenset(s.value for s in FINAL_STATES)
NAME_COLUMN = "name"
# Cells longer than this are cut in the page (the CSV keeps them whole).
CELL_CAP = 500


def json_for_script(value: Any) -> str:
    """JSON that is safe inside a <script> element, whatever the strings hold."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "-"


def _cell(value: object) -> str | None:
    """A table cell's text: control and bidi characters as visible escapes (a cell
    must not reorder or hide what it shows), cut to CELL_CAP."""
    if value is None:
        return None
    text = visible(str(value))
    return text if len(text) <= CELL_CAP else text[: CELL_CAP - 1] + "…"


def _base_value(target: Target, key: str) -> object:
    if key == "state":
        return target.state.value
    if key == "attempts":
        return target.attempts
    if key == "duration_s":
        duration = target_duration(target)
        return round(duration, 3) if duration is not None else None
    if key == "finished_at":
        return to_the_second(target.finished_at)
    return _cell(getattr(target, key))  # the ID and text columns


def to_the_second(stamp: str | None) -> str | None:
    """`2026-12-06T10:26:01.050807Z` as people read it: `2026-12-06 10:26:01Z`."""
    if not stamp:
        return None
    head, _, _ = stamp.replace("T", " ", 1).partition(".")
    return head.removesuffix("Z").removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True)
class TargetRows:
    """Turns targets into the page's JSON rows; the columns are fixed per report."""

    columns: tuple[tuple[str, str, bool, bool, bool], ...]  # ... and "is an inventory column"

    @classmethod
    def for_columns(cls, extra_columns: Sequence[str]) -> TargetRows:
        extras = [key for key in dict.fromkeys(extra_columns) if key not in BASE_KEYS]
        base = [(*column, False) for column in BASE_COLUMNS]
        named = [(NAME_COLUMN, NAME_COLUMN, False, True, True)] if NAME_COLUMN in extras else []
        others = [(key, key, False, True, True) for key in extras if key != NAME_COLUMN]
        return cls(tuple([base[0], *named, *base[1:], *others]))

    def columns_json(self) -> str:
        return json_for_script(
            [
                {"key": key, "label": label, "numeric": numeric, "search": search, "extra": extra}
                for key, label, numeric, search, extra in self.columns
            ]
        )

    def row(self, target: Target) -> str:
        return json_for_script(
            [
                _cell(target.spec.extra.get(key)) if extra else _base_value(target, key)
                for key, _, _, _, extra in self.columns
            ]
        )


# -- the head: everything from the summary ----------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(value: object, label: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def _options(options: Mapping[str, Any]) -> str:
    """The options as a two-column table, one per line (nested groups as group.name)."""
    shown = _flat_options(options)
    if not shown:
        return '<span class="muted">defaults</span>'
    rows = "".join(
        f"<tr><th><code>{esc(k)}</code></th><td><code>{esc(v)}</code></td></tr>" for k, v in shown
    )
    return f'<table class="options">{rows}</table>'


def _rollout(summary: Summary) -> str:
    """The rollout: the plan, each wave, what tripped, why sending stopped, every
    decision (window, wave, budget, canary) with its time."""
    rollout = summary.rollout
    if not rollout:
        return ""
    plan = rollout.get("plan") or {}
    sizes = plan.get("sizes") or []
    facts = [
        (
            "Plan",
            f"waves {plan.get('waves') or 'one wave'}"
            + (f", canary {plan['canary']}" if plan.get("canary") else "")
            + (f" (sizes {', '.join(map(str, sizes))})" if sizes else ""),
        )
    ]
    facts += [("Tripped", trip) for trip in rollout.get("trips") or []]
    if rollout.get("left_pending"):
        facts.append(("Held", rollout["left_pending"]))
    if rollout.get("overran"):
        facts.append(("Overran", rollout["overran"]))
    for name, rate in (rollout.get("adaptive_rates") or {}).items():
        facts.append(
            (
                "Pacing settled",
                f"{name} at {rate['rate']:g}/s of {rate['ceiling']:g}/s"
                f" ({rate['throttles']} throttled, {rate['cuts']} cuts)",
            )
        )
    parts = [
        '<section id="rollout"><h2>Rollout</h2><table class="facts">',
        *(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts),
        "</table>",
    ]
    waves = rollout.get("waves") or []
    if waves:
        states = [s.value for s in TargetState if any(w.get(s.value) for w in waves)]
        parts.append("<h3>Waves</h3>")
        parts.append(
            _table(
                ["wave", "targets", *states],
                [[w["wave"], w["total"], *(w.get(s, 0) for s in states)] for w in waves],
                set(range(len(states) + 2)),
            )
        )
    decisions = rollout.get("decisions") or []
    if decisions:
        parts.append(f"<h3>Decisions ({len(decisions)})</h3>")
        parts.append(
            '<div class="scroll">'
            + _table(
                ["at", "run", "decision", "project", "wave", "detail"],
                [
                    [
                        d["at"],
                        d["invocation"],
                        d["kind"],
                        d["project_id"] or "",
                        d["wave"] or "",
                        d["detail"],
                    ]
                    for d in decisions
                ],
                {1},
            )
            + "</div>"
        )
    return "".join(parts) + "</section>"


def _left(summary: Summary, listings: Listings | None, retry_rows: int) -> str:
    """What is not final and what to do about it: the targets left (resume), the ones
    that failed (retry), and the rows the selection left out."""
    state = shlex.quote(summary.state_path)
    parts = ['<section id="left"><h2>What is left</h2>']
    selection = left_out_text(dict(summary.selection))
    if selection:
        parts.append(f"<p><b>Selection:</b> {esc(selection)}</p>")
    not_final = listings.not_final if listings is not None else None
    open_ = summary.total - sum(
        summary.counts.get(s.value, 0) for s in TargetState if s.value in FINAL_VALUES
    )
    if open_:
        command, advice = continue_from_summary(
            summary.rollout, f"orchestrator resume --state {state}"
        )
        parts.append(
            f"<p><b>{open_:,} target(s) not final.</b> Continue with "
            f"<code>{esc(command)}</code>" + (f" ({esc(advice)})" if advice else "") + ".</p>"
        )
        if not_final is not None and not_final.rows:
            parts.append(
                _table(
                    ["project", "server ID", "state", "job ID", "attempts"],
                    [
                        (t.project_id, t.server_id, t.state.value, t.job_id or "", t.attempts)
                        for t in not_final.rows
                    ],
                    {4},
                )
            )
            more = not_final.total - len(not_final.rows)
            if more > 0:
                parts.append(f'<p class="small muted">… and {more:,} more in the table below.</p>')
    else:
        parts.append("<p>Every target is final.</p>")
    failed = summary.counts.get(TargetState.FAILED.value, 0)
    if failed:
        parts.append(
            f"<p><b>{failed:,} target(s) failed.</b> After fixing their cause, send them again"
            f" with <code>orchestrator retry --state {esc(state)}</code>"
            + (
                f", or run <code>retry.csv</code> ({retry_rows:,} row(s), beside this page)"
                " with a new state file and <code>--skip-reinstalled-since</code>"
                if retry_rows
                else ""
            )
            + ".</p>"
        )
    return "".join(parts) + "</section>"


def _flat_options(options: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Options as name=value pairs, nested groups (credentials, rollout) flattened as
    group.name, and the unset ones (None, False, empty) left out."""
    shown: list[tuple[str, Any]] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            shown += _flat_options(value, f"{prefix}{key}.")
        elif value not in (None, False, "", [], ()):
            shown.append((prefix + str(key), value))
    return shown


def _campaign(history: History | None, summary: Summary) -> str:
    if history is None or not history.invocations:
        return '<p class="muted">No invocation recorded.</p>'
    rows = []
    for inv in history.invocations:
        rows.append(
            "<tr>"
            f'<td class="num">{inv.number}</td><td>{esc(inv.started_at or "-")}</td>'
            f"<td>{esc(inv.ended_at or '-')}{'' if inv.end_recorded else ' *'}</td>"
            f'<td class="num">'
            f"{esc(format_seconds(inv.duration_s) if inv.duration_s is not None else '-')}</td>"
            f"<td>{esc(inv.how)}</td>"
            f"<td><details><summary>options</summary>{_options(inv.options)}</details></td>"
            "</tr>"
        )
    note = (
        '<p class="small muted">* no end was recorded: the time shown is the last activity '
        "the state file holds for that invocation.</p>"
        if any(not inv.end_recorded for inv in history.invocations)
        else ""
    )
    return (
        "<table><thead><tr><th>#</th><th>started</th><th>ended</th>"
        '<th class="num">took</th><th>how it ended</th><th>options</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _durations(summary: Summary) -> str:
    stats = summary.duration_s
    if not stats.count:
        return '<p class="muted">No finished target has a duration yet.</p>'
    source = (
        "all from the jobs' own begin and end times"
        if stats.from_job_times == stats.count
        else "from submission to the end the orchestrator saw"
        if stats.from_job_times == 0
        else f"{stats.from_job_times} from the jobs' own begin/end times, the rest from "
        "submission to the end the orchestrator saw"
    )
    table = _table(
        ["targets", "p50", "p90", "p95", "p99", "max", "mean"],
        [[stats.count, stats.p50, stats.p90, stats.p95, stats.p99, stats.max, stats.mean]],
        set(range(7)),
    )
    return (
        f"{histogram_chart(stats.histogram)}"
        f'<p class="small muted">Seconds per reinstall of finished targets, {esc(source)}; '
        f"nearest-rank percentiles.</p>{table}"
    )


def _failures(summary: Summary) -> str:
    failed = summary.counts.get(TargetState.FAILED.value, 0)
    if not failed:
        return "<p>No target failed.</p>"
    by_code = _table(
        ["error code", "targets", "of failures"],
        [(code, n, pct(n, failed)) for code, n in summary.failures_by_error_code.items()],
        {1, 2},
    )
    by_project = _table(
        ["project", "failed", "of failures"],
        [(p, n, pct(n, failed)) for p, n in summary.failures_by_project.items()],
        {1, 2},
    )
    link = '<a href="#state=failed">show the failed targets in the table</a>'
    return (
        f'<div class="grid"><div><h3>By error code</h3>{by_code}</div>'
        f"<div><h3>By project</h3>{by_project}</div></div><p>{link}</p>"
    )


def _groups(summary: Summary) -> str:
    if summary.group_by is None:
        return ""
    states = [s.value for s in TargetState if summary.counts.get(s.value)]
    rows = []
    for key, counts in summary.groups.items():
        total = sum(counts.values())
        rows.append(
            [key, total, *(counts.get(s, 0) for s in states), pct(counts.get("failed", 0), total)]
        )
    table = _table(
        [summary.group_by, "targets", *states, "failed %"], rows, set(range(1, len(states) + 3))
    )
    return f"<h2>By {esc(summary.group_by)}</h2>{table}"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{esc(t)}</span>' for t, c in items)
        + "</div>"
    )


def html_head(
    summary: Summary,
    bins: Sequence[Bin],
    rows: TargetRows,
    *,
    listings: Listings | None = None,
    retry_rows: int = 0,
) -> str:
    """Everything before the target rows: a pure function of the summary, the timeline
    and the listings of the pass over the targets."""
    total = summary.total
    counts = summary.counts
    ok = counts.get("succeeded", 0)
    failed = counts.get("failed", 0)
    open_ = total - ok - failed
    history = summary.history
    latest = history.invocations[-1] if history and history.invocations else None
    if summary.complete:
        outcome = "<b>complete</b>: every target is final"
    else:
        outcome = f"<b>not complete</b>: {open_:,} target(s) not final; resume to continue"
    outcome += f" · latest invocation: {esc(latest.how) if latest else 'never run'}"
    if history and history.invocations:
        duration = format_seconds(history.active_s)
        span = format_seconds(history.span_s) if history.span_s is not None else "-"
        duration_note = (
            f"sum of {len(history.invocations)} invocation(s); first start to last end {span}"
        )
    else:
        duration, duration_note = "-", "not run"
    requests = sum(summary.requests.values())
    states_legend = [
        (f"{s} {n} ({pct(n, total)})", STATE_COLOURS.get(s, "#888")) for s, n in counts.items() if n
    ]
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched: the page must open the same on an air-gapped laptop.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Reinstall report {esc(summary.run_id)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{ERROR_HOOK}</script></head><body>",
        f"<h1>Reinstall report <code>{esc(summary.run_id)}</code></h1>",
        f'<p class="muted small">Generated {esc(summary.generated_at)} from state file '
        f"<code>{esc(summary.state_path)}</code></p>",
        '<section id="glance"><div class="cards">',
        _card(f"{total:,}", "targets"),
        _card(f"{ok:,}", f"succeeded · {pct(ok, total)}", "succeeded"),
        _card(f"{failed:,}", f"failed · {pct(failed, total)}", "failed"),
        _card(f"{open_:,}", f"not finished · {pct(open_, total)}", "open"),
        _card(
            f"{summary.throttled:,}",
            f"throttled answers · {pct(summary.throttled, requests)} of requests",
        ),
        _card(duration, duration_note),
        "</div>",
        status_bar(counts, total),
        _legend(states_legend),
        "<table>",
        f"<tr><th>Outcome</th><td>{outcome}</td></tr>",
        f"<tr><th>Inventory</th><td><code>{esc(summary.inventory_path or '-')}</code> "
        f"sha256 <code>{esc(summary.inventory_sha256)}</code></td></tr>",
        "<tr><th>Options (latest)</th><td><details><summary>"
        f"{len(_flat_options(summary.options))} set</summary>{_options(summary.options)}"
        "</details></td></tr>",
        "<tr><th>Requests sent</th><td>"
        + ", ".join(f"{esc(k)} {n:,}" for k, n in summary.requests.items())
        + f"; throttled answers {summary.throttled:,}</td></tr>",
        "</table></section>",
        _left(summary, listings, retry_rows),
        _rollout(summary),
        '<section id="campaign"><h2>Campaign: every invocation</h2>',
        f"{_campaign(history, summary)}</section>",
        '<section id="timeline"><h2>Timeline</h2>',
        timeline_chart(bins, history),
        _legend(
            [
                ("submitted", SUBMITTED_COLOUR),
                ("succeeded", STATE_COLOURS["succeeded"]),
                ("failed", STATE_COLOURS["failed"]),
                ("in flight (line)", IN_FLIGHT_COLOUR),
                ("throttled (marks on top)", THROTTLE_COLOUR),
            ]
        ),
        '<p class="small muted">Vertical lines: each invocation\'s start (solid) and end '
        "(dashed). Throttled answers are marked when they came (state files made before"
        " this version: only where an event recorded one); the total "
        f"({summary.throttled:,}) counts every throttled answer.</p></section>",
        f'<section id="durations"><h2>Job durations</h2>{_durations(summary)}</section>',
        f'<section id="failures"><h2>Failures</h2>{_failures(summary)}</section>',
        _groups(summary),
        '<section id="targets"><h2>Targets</h2><div class="controls">',
        '<input id="f-q" type="search" placeholder="search server ID, name, project…" size="34">',
        '<select id="f-state"></select><select id="f-project"></select>',
        '<select id="f-code"></select>',
        '<button id="prev" type="button">‹ previous</button><span id="page-info"></span>',
        '<button id="next" type="button">next ›</button>',
        '<span class="muted"><b id="shown-count">0</b> of <span id="total-count">0</span> '
        "targets</span></div>",
        '<div class="scroll"><table id="targets-table"><thead><tr id="targets-head"></tr>'
        '</thead><tbody id="targets-body"></tbody></table></div>',
        "<noscript><p>The table needs JavaScript; targets.csv beside this file has every "
        "target.</p></noscript></section>",
        f'<script type="application/json" id="targets-data">{{"columns":{rows.columns_json()},'
        '"rows":[',
    ]
    return "\n".join(sections)


ROW_SEPARATOR = ",\n"


def html_tail() -> str:
    return f"\n]}}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
