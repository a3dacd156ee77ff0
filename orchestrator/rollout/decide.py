"""The one question the runner asks before sending a target: may it go now?

    decide(now, target, settings, view) -> Decision

A pure function of its inputs: the clock, the target's project and wave, the
rollout options, and the counts the runner keeps (per-wave progress, the
failure ledger, per-project in-flight). The checks run from the widest to the
narrowest, so the reason given is the one that matters most:

    check                        action  scope    reason
    ---------------------------  ------  -------  -----------------------------
    run failure budget tripped   HOLD    run      RUN_BUDGET
    canary failed                HOLD    run      CANARY_FAILED
    before the first opening     WAIT    run      NOT_YET_OPEN (until it opens)
    opening closed / none left   HOLD    run      WINDOW_CLOSED (WAIT with --keep-going)
    job would not end in time    HOLD    run      CUTOFF (WAIT with --keep-going)
    project budget tripped       HOLD    project  PROJECT_BUDGET
    project paused by breaker    HOLD    project  PROJECT_PAUSED
    earlier wave not final       WAIT    wave     WAVE_NOT_READY (until an event)
    --pause-between-waves        WAIT    wave     WAVE_PAUSE (until a time)
    --confirm-waves              WAIT    wave     WAVE_NOT_CONFIRMED (ask, then retry)
    --project-max-in-flight      WAIT    project  PROJECT_IN_FLIGHT (until an event)
    otherwise                    SEND

WAIT with `until` None means "until something becomes final" (the runner
asks again then); HOLD means "not in this run": stop sending in that scope,
follow what was accepted, and exit 3 if work is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from orchestrator.durations import seconds_text
from orchestrator.rollout.budget import FailureLedger, Trip, TripKind
from orchestrator.rollout.duration import may_start
from orchestrator.rollout.waves import WaveCounts, wave_gate
from orchestrator.rollout.window import Schedule

__all__ = [
    "Action",
    "Decision",
    "Reason",
    "RolloutSettings",
    "RolloutView",
    "Scope",
    "TargetRef",
    "decide",
]


class Action(StrEnum):
    SEND = "send"  # send it now
    WAIT = "wait"  # not yet: ask again at `until`, or when something becomes final
    HOLD = "hold"  # not in this run (in `scope`): follow what runs, then exit 3


class Scope(StrEnum):
    RUN = "run"  # nothing is sent
    PROJECT = "project"  # nothing of this project is sent
    WAVE = "wave"  # nothing of this wave is sent


class Reason(StrEnum):
    RUN_BUDGET = "run_budget"
    CANARY_FAILED = "canary_failed"
    NOT_YET_OPEN = "not_yet_open"
    WINDOW_CLOSED = "window_closed"
    CUTOFF = "cutoff"
    PROJECT_BUDGET = "project_budget"
    PROJECT_PAUSED = "project_paused"
    WAVE_NOT_READY = "wave_not_ready"
    WAVE_PAUSE = "wave_pause"
    WAVE_NOT_CONFIRMED = "wave_not_confirmed"
    PROJECT_IN_FLIGHT = "project_in_flight"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason | None = None
    why: str = ""  # one line for the log, the live view and the report
    until: datetime | None = None  # for WAIT: when to ask again (None: at the next event)
    scope: Scope | None = None
    trip: Trip | None = None  # the budget or breaker behind a HOLD, if any

    @property
    def send(self) -> bool:
        return self.action is Action.SEND


SEND = Decision(Action.SEND)


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """The rollout options, fixed for a run."""

    schedule: Schedule = field(default_factory=Schedule)
    keep_going: bool = False  # --keep-going: sleep until the next opening instead of exiting
    canary: bool = False  # wave 1 is a --canary wave
    pause_between_waves: float = 0.0  # seconds
    confirm_waves: bool = False
    project_max_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class TargetRef:
    project_id: str
    wave: int = 1


@dataclass(frozen=True, slots=True)
class RolloutView:
    """The counts the runner keeps, as of `now`."""

    started_at: datetime  # when this run started: the first opening at or after it is "ours"
    expected_seconds: float  # see duration.expected_job_seconds
    ledger: FailureLedger
    waves: Mapping[int, WaveCounts] = field(default_factory=dict)
    project_in_flight: Mapping[str, int] = field(default_factory=dict)
    confirmed_wave: int = 0  # the highest wave the operator confirmed (--confirm-waves)


def decide(
    now: datetime, target: TargetRef, settings: RolloutSettings, view: RolloutView
) -> Decision:
    """May `target` be sent at `now`? See the module docstring for the order of checks."""
    now = now.astimezone(UTC)
    trip = view.ledger.run_trip
    if trip is not None:
        return Decision(
            Action.HOLD,
            Reason.RUN_BUDGET,
            f"{trip.message}; resume with --ack-failures to go on",
            scope=Scope.RUN,
            trip=trip,
        )
    gate = wave_gate(
        target.wave,
        view.waves,
        now,
        pause_seconds=settings.pause_between_waves,
        canary=settings.canary,
    )
    if gate.canary_failed:
        return Decision(
            Action.HOLD, Reason.CANARY_FAILED, f"canary failed: {gate.why}", scope=Scope.RUN
        )
    timing = _timing(now, settings, view)
    if timing is not None:
        return timing
    trip = view.ledger.project_trip(target.project_id)
    if trip is not None:
        reason = (
            Reason.PROJECT_PAUSED if trip.kind is TripKind.CONSECUTIVE else Reason.PROJECT_BUDGET
        )
        return Decision(
            Action.HOLD,
            reason,
            f"{trip.message}; resume with --ack-failures to go on",
            scope=Scope.PROJECT,
            trip=trip,
        )
    if not gate.open:
        reason = Reason.WAVE_PAUSE if gate.until is not None else Reason.WAVE_NOT_READY
        return Decision(Action.WAIT, reason, gate.why, until=gate.until, scope=Scope.WAVE)
    if settings.confirm_waves and target.wave > view.confirmed_wave:
        return Decision(
            Action.WAIT,
            Reason.WAVE_NOT_CONFIRMED,
            f"wave {target.wave} waits for confirmation (--confirm-waves)",
            scope=Scope.WAVE,
        )
    cap = settings.project_max_in_flight
    if cap is not None and view.project_in_flight.get(target.project_id, 0) >= cap:
        return Decision(
            Action.WAIT,
            Reason.PROJECT_IN_FLIGHT,
            f"project {target.project_id} has {cap} in flight (--project-max-in-flight)",
            scope=Scope.PROJECT,
        )
    return SEND


def _timing(now: datetime, settings: RolloutSettings, view: RolloutView) -> Decision | None:
    """The window, deadline and cutoff checks; None when they allow sending."""
    schedule = settings.schedule
    first = schedule.opening(view.started_at)
    if first is None:
        return _closed(Reason.WINDOW_CLOSED, "the deadline has passed; nothing more is sent")
    if now < first.start:
        return Decision(
            Action.WAIT,
            Reason.NOT_YET_OPEN,
            f"waiting for the window to open at {first.start.isoformat()}",
            until=first.start,
            scope=Scope.RUN,
        )
    current = schedule.opening(now)
    if current is None:
        return _closed(Reason.WINDOW_CLOSED, "the deadline has passed; nothing more is sent")
    if current.start != first.start and not settings.keep_going:
        # This run's opening has closed; a later one belongs to a later run.
        assert first.end is not None
        return _closed(
            Reason.WINDOW_CLOSED,
            f"the window closed at {first.end.isoformat()}; the rest stays pending",
        )
    if not current.contains(now):
        return _later(settings, current.start, Reason.WINDOW_CLOSED, "the window is closed")
    if not may_start(now, view.expected_seconds, current.end):
        assert current.end is not None
        why = (
            f"a reinstall started now would not end before {current.end.isoformat()} "
            f"(expected {seconds_text(view.expected_seconds)})"
        )
        following = schedule.opening(current.end)
        if following is None:
            return _closed(Reason.CUTOFF, why)
        if following.end is not None and following.end - following.start < timedelta(
            seconds=view.expected_seconds
        ):
            return _closed(Reason.CUTOFF, f"{why}; the next opening is shorter than that")
        return _later(settings, following.start, Reason.CUTOFF, why)
    return None


def _later(settings: RolloutSettings, opens: datetime, reason: Reason, why: str) -> Decision:
    if settings.keep_going:
        return Decision(
            Action.WAIT,
            reason,
            f"{why}; --keep-going: next opening at {opens.isoformat()}",
            until=opens,
            scope=Scope.RUN,
        )
    return _closed(reason, f"{why}; the rest stays pending")


def _closed(reason: Reason, why: str) -> Decision:
    return Decision(Action.HOLD, reason, why, scope=Scope.RUN)
