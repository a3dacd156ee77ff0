"""The campaign of a state file: every invocation (run or resume), how it ended, how long.

A campaign is often interrupted: killed, stopped with Ctrl-C, resumed twice.
The report must describe all of it, not only the latest invocation, and a
re-run with nothing left to do must not turn the campaign's duration into 0 s.

Two durations are given, and the report says which is which:
    active_s   the sum of each invocation's own duration (time spent working)
    span_s     first start to last end (wall-clock time, pauses included)

An invocation killed before it could record its end (SIGKILL, power loss) is
measured to its last recorded event, the best lower bound the state file holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.model import InvocationInfo
from orchestrator.report.times import parse_timestamp

# How an invocation ended, in words, by the outcome the campaign recorded.
OUTCOME_WORDS: Mapping[str, str] = {
    "complete": "completed: every target final",
    "stopped": "stopped (signal), resumable",
    "deferred": "ended with work deferred, resumable",
    "aborted": "aborted (state file, credentials or internal error)",
    "interrupted": "interrupted before the run began",
}


@dataclass(frozen=True, slots=True)
class InvocationSpan:
    """One invocation as the report shows it."""

    number: int
    started_at: str | None
    ended_at: str | None  # recorded end, or the last activity of a killed one
    end_recorded: bool
    outcome: str  # recorded outcome, or "killed" / "running or killed"
    how: str  # the outcome in words
    duration_s: float | None
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class History:
    invocations: tuple[InvocationSpan, ...]
    active_s: float  # sum of the invocations' durations
    first_started_at: str | None
    last_ended_at: str | None
    span_s: float | None  # first start to last end


def build_history(
    invocations: Sequence[InvocationInfo],
    last_activity: Mapping[int, str] | None = None,
    *,
    safe: Any = None,
) -> History:
    """The campaign from the runs table and, per invocation number, its last event time.

    `safe` filters options (the report passes its secret-dropping function).
    """
    last_activity = last_activity or {}
    spans: list[InvocationSpan] = []
    for index, inv in enumerate(invocations):
        is_latest = index == len(invocations) - 1
        end = inv.ended_at
        recorded = end is not None
        if recorded:
            outcome = inv.outcome or "ended"
            how = OUTCOME_WORDS.get(outcome, outcome)
        else:
            end = last_activity.get(inv.number)
            outcome = "running or killed" if is_latest else "killed"
            how = (
                "no end recorded: still running, or killed"
                if is_latest
                else "killed: no end recorded; resumed by the next invocation"
            )
            if end is not None:
                how += f" (last activity {end})"
        start_at, end_at = parse_timestamp(inv.started_at), parse_timestamp(end)
        duration = (
            max((end_at - start_at).total_seconds(), 0.0)
            if start_at is not None and end_at is not None
            else None
        )
        spans.append(
            InvocationSpan(
                number=inv.number,
                started_at=inv.started_at,
                ended_at=end,
                end_recorded=recorded,
                outcome=outcome,
                how=how,
                duration_s=round(duration, 3) if duration is not None else None,
                options=safe(inv.options) if safe is not None else dict(inv.options),
            )
        )
    starts = [s.started_at for s in spans if parse_timestamp(s.started_at) is not None]
    ends = [s.ended_at for s in spans if parse_timestamp(s.ended_at) is not None]
    first = min(starts, key=lambda v: parse_timestamp(v) or datetime.max) if starts else None
    last = max(ends, key=lambda v: parse_timestamp(v) or datetime.min) if ends else None
    first_at, last_at = parse_timestamp(first), parse_timestamp(last)
    span = (
        round(max((last_at - first_at).total_seconds(), 0.0), 3)
        if first_at is not None and last_at is not None
        else None
    )
    return History(
        invocations=tuple(spans),
        active_s=round(sum(s.duration_s or 0.0 for s in spans), 3),
        first_started_at=first,
        last_ended_at=last,
        span_s=span,
    )


def history_to_dict(history: History) -> dict[str, Any]:
    return {
        "active_s": history.active_s,
        "first_started_at": history.first_started_at,
        "last_ended_at": history.last_ended_at,
        "span_s": history.span_s,
        "invocations": [
            {
                "number": s.number,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "end_recorded": s.end_recorded,
                "outcome": s.outcome,
                "duration_s": s.duration_s,
                "options": dict(s.options),
            }
            for s in history.invocations
        ],
    }
