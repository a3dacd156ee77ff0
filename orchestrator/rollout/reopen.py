"""After the window or the deadline held a run: what lets a resume send again (pure).

A resume keeps the rollout options of the state file, so a plain resume after
a passed deadline holds again at once. This module finds the options that do
let it send, checked against the same `Schedule.first_fit` the plan uses:

    kind          when                                     options added to the resume
    ------------  ---------------------------------------  -----------------------------
    deadline      the deadline ends every opening left     --deadline (and --not-before)
                                                           moved by whole days until a
                                                           job fits: the same slot later
    short_window  no opening of the daily window is as     --window from the same start,
                  long as one job                          long enough for one
    window        a later opening of the window fits       --keep-going (waits for it),
                                                           or nothing when open now

Each suggestion is verified with the schedule it makes, from `now` and with the
expected job length the run used: followed at once, it does not hold for the
same reason again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.window import Schedule, parse_window

__all__ = ["Reopen", "TimeStop", "reopen"]

# A deadline is moved by at most this many days: a job that fits in no day of a
# year fits in none, and the hint then says to widen the window instead.
MAX_DAYS = 366
QUARTER = 15  # minutes: a widened window ends on a quarter hour


class TimeStop(StrEnum):
    DEADLINE = "deadline"
    SHORT_WINDOW = "short_window"
    WINDOW = "window"


@dataclass(frozen=True, slots=True)
class Reopen:
    stop: TimeStop
    args: tuple[str, ...]  # options for `orchestrator resume`, as typed
    opens_at: datetime | None  # when the suggested schedule lets the first job go


def reopen(options: RolloutOptions, now: datetime, expected_seconds: float) -> Reopen | None:
    """What lets a resume started at `now` send again; None when the schedule already does
    (the hold was for an opening that has passed, and a plain resume goes on)."""
    schedule = options.schedule()
    if schedule.window is not None:
        daily = Schedule(schedule.not_before, None, schedule.window, schedule.zone)
        if daily.first_fit(now, expected_seconds) is None:
            return _widened(schedule, now, expected_seconds)
    fit = schedule.first_fit(now, expected_seconds)
    if fit is None:
        return _moved(schedule, now, expected_seconds)
    if schedule.window is None or fit.start <= now:
        return None
    # Closed now, open later: a resume started before it opens waits for it; one started
    # late in an opening holds again, so --keep-going, which waits in either case.
    return Reopen(TimeStop.WINDOW, ("--keep-going",), fit.start)


def _moved(schedule: Schedule, now: datetime, expected_seconds: float) -> Reopen | None:
    """The deadline (and a not-before) moved by the fewest whole days that fit a job."""
    assert schedule.deadline is not None  # only a deadline leaves no opening
    for days in range(1, MAX_DAYS + 1):
        step = timedelta(days=days)
        not_before = schedule.not_before + step if schedule.not_before else None
        moved = replace(schedule, not_before=not_before, deadline=schedule.deadline + step)
        fit = moved.first_fit(now, expected_seconds)
        if fit is not None:
            args = ("--not-before", _typed(not_before)) if not_before is not None else ()
            return Reopen(
                TimeStop.DEADLINE, (*args, "--deadline", _typed(moved.deadline)), fit.start
            )
    return None  # pragma: no cover - a daily window too short is found before


def _widened(schedule: Schedule, now: datetime, expected_seconds: float) -> Reopen:
    """The window from the same start, long enough for one job (a quarter hour to spare)."""
    assert schedule.window is not None
    start = schedule.window.start
    minutes = QUARTER * math.ceil((math.ceil(expected_seconds / 60) + QUARTER) / QUARTER)
    for extra in (0, 60):  # an hour more where a DST day is the shortest opening
        total = minutes + extra
        if total >= 24 * 60:
            return Reopen(TimeStop.SHORT_WINDOW, (), None)  # longer than a day: no window fits
        end_minutes = (start.hour * 60 + start.minute + total) % (24 * 60)
        text = f"{start:%H:%M}-{end_minutes // 60:02d}:{end_minutes % 60:02d}"
        wider = Schedule(
            schedule.not_before, None, parse_window(text, schedule.window.zone), schedule.zone
        )
        fit = wider.first_fit(now, expected_seconds)
        if fit is not None:
            return Reopen(TimeStop.SHORT_WINDOW, ("--window", text), fit.start)
    return Reopen(TimeStop.SHORT_WINDOW, (), None)  # pragma: no cover


def _typed(moment: datetime | None) -> str:
    """An instant as an option takes it, in the offset it was given in (Z for UTC)."""
    assert moment is not None
    if moment.utcoffset() == timedelta(0):
        return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"
    return moment.isoformat(timespec="seconds")
