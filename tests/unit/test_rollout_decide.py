"""decide(): the one question the runner asks before sending, as a table of situations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.rollout import (
    Action,
    FailureLedger,
    Limit,
    Outcome,
    Reason,
    RolloutSettings,
    RolloutView,
    Schedule,
    Scope,
    TargetRef,
    WaveCounts,
    decide,
    parse_window,
)

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = parse_window("02:00-05:00", BERLIN)  # 00:00-03:00 UTC in June
START = datetime(2026, 6, 9, 22, 0, tzinfo=UTC)  # the run starts the evening before


def at(hhmm: str, day: int = 10) -> datetime:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 6, day, hours, minutes, tzinfo=UTC)


def ledger(failures: list[tuple[str, str]] = (), **limits: object) -> FailureLedger:  # type: ignore[assignment]
    led = FailureLedger(100, {"a": 50, "b": 50}, **limits)  # type: ignore[arg-type]
    for seq, (project, code) in enumerate(failures, start=1):
        led.record(Outcome(seq, seq, project, False, code))
    return led


@dataclass
class Case:
    now: datetime
    action: Action
    reason: Reason | None = None
    until: datetime | None = None
    scope: Scope | None = None
    target: TargetRef = field(default_factory=lambda: TargetRef("a", 1))
    settings: RolloutSettings = field(default_factory=RolloutSettings)
    expected: float = 600.0
    ledger: FailureLedger = field(default_factory=ledger)
    waves: Mapping[int, WaveCounts] = field(default_factory=dict)
    in_flight: Mapping[str, int] = field(default_factory=dict)
    confirmed: int = 0
    started: datetime = START


W = RolloutSettings(schedule=Schedule(window=WINDOW))
WK = replace(W, keep_going=True)
DEADLINE = RolloutSettings(schedule=Schedule(deadline=at("03:00")))

CASES: dict[str, Case] = {
    "no options: send": Case(at("12:00"), Action.SEND),
    # -- window -----------------------------------------------------------------
    "before the window: wait until it opens": Case(
        at("23:00", 9), Action.WAIT, Reason.NOT_YET_OPEN, at("00:00"), Scope.RUN, settings=W
    ),
    "inside the window: send": Case(at("01:00"), Action.SEND, settings=W),
    "cutoff: would not end before 05:00": Case(
        at("02:51"), Action.HOLD, Reason.CUTOFF, None, Scope.RUN, settings=W
    ),
    "cutoff at exactly the expected duration: send": Case(at("02:50"), Action.SEND, settings=W),
    "cutoff with --keep-going: wait for tomorrow": Case(
        at("02:51"), Action.WAIT, Reason.CUTOFF, at("00:00", 11), Scope.RUN, settings=WK
    ),
    "window closed with work left: hold": Case(
        at("04:00"), Action.HOLD, Reason.WINDOW_CLOSED, None, Scope.RUN, settings=W
    ),
    "window closed, --keep-going: wait for the next opening": Case(
        at("04:00"), Action.WAIT, Reason.WINDOW_CLOSED, at("00:00", 11), Scope.RUN, settings=WK
    ),
    "next night without --keep-going: still closed": Case(
        at("01:00", 11), Action.HOLD, Reason.WINDOW_CLOSED, None, Scope.RUN, settings=W
    ),
    "next night with --keep-going: send": Case(at("01:00", 11), Action.SEND, settings=WK),
    "resumed the next night: that night's window is this run's": Case(
        at("01:00", 11), Action.SEND, settings=W, started=at("23:00")
    ),
    "a window shorter than a job: hold, not wait forever": Case(
        at("00:00"), Action.HOLD, Reason.CUTOFF, None, Scope.RUN, settings=WK, expected=4 * 3600
    ),
    "spring-forward night: 02:00 does not exist, opens at the jump (01:00 UTC)": Case(
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        Action.WAIT,
        Reason.NOT_YET_OPEN,
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        Scope.RUN,
        settings=W,
        started=datetime(2026, 3, 28, 22, 0, tzinfo=UTC),
    ),
    "fall-back night: the cutoff counts the repeated hour (05:00 CET is 04:00 UTC)": Case(
        datetime(2026, 10, 25, 3, 50, tzinfo=UTC),
        Action.SEND,
        settings=W,
        started=datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
    ),
    # -- deadline and not-before ----------------------------------------------------
    "not before: wait": Case(
        at("12:00"),
        Action.WAIT,
        Reason.NOT_YET_OPEN,
        at("13:00"),
        Scope.RUN,
        settings=RolloutSettings(schedule=Schedule(not_before=at("13:00"))),
        started=at("12:00"),
    ),
    "deadline ahead: send": Case(at("02:00"), Action.SEND, settings=DEADLINE),
    "deadline too close for a job: hold": Case(
        at("02:55"), Action.HOLD, Reason.CUTOFF, None, Scope.RUN, settings=DEADLINE
    ),
    "deadline too close, --keep-going changes nothing": Case(
        at("02:55"),
        Action.HOLD,
        Reason.CUTOFF,
        None,
        Scope.RUN,
        settings=replace(DEADLINE, keep_going=True),
    ),
    "deadline passed: hold": Case(
        at("03:00"), Action.HOLD, Reason.WINDOW_CLOSED, None, Scope.RUN, settings=DEADLINE
    ),
    "run started after the deadline: hold": Case(
        at("04:00"),
        Action.HOLD,
        Reason.WINDOW_CLOSED,
        None,
        Scope.RUN,
        settings=DEADLINE,
        started=at("04:00"),
    ),
    # -- budgets and breaker ----------------------------------------------------------
    "run budget tripped: hold everything": Case(
        at("12:00"),
        Action.HOLD,
        Reason.RUN_BUDGET,
        None,
        Scope.RUN,
        ledger=ledger([("b", "Ecs.0605")] * 2, max_failures=Limit(count=1)),
    ),
    "run budget beats a closed window": Case(
        at("04:00"),
        Action.HOLD,
        Reason.RUN_BUDGET,
        None,
        Scope.RUN,
        settings=W,
        ledger=ledger([("b", "Ecs.0605")] * 2, max_failures=Limit(count=1)),
    ),
    "project budget tripped: hold that project": Case(
        at("12:00"),
        Action.HOLD,
        Reason.PROJECT_BUDGET,
        None,
        Scope.PROJECT,
        ledger=ledger([("a", "Ecs.0605")] * 2, max_failures_per_project=Limit(count=1)),
    ),
    "project budget tripped elsewhere: send": Case(
        at("12:00"),
        Action.SEND,
        target=TargetRef("b", 1),
        ledger=ledger([("a", "Ecs.0605")] * 2, max_failures_per_project=Limit(count=1)),
    ),
    "project paused by the breaker": Case(
        at("12:00"),
        Action.HOLD,
        Reason.PROJECT_PAUSED,
        None,
        Scope.PROJECT,
        ledger=ledger([("a", "Ecs.0114")] * 10),
    ),
    "flow control does not trip anything": Case(
        at("12:00"),
        Action.SEND,
        ledger=ledger([("a", "Common.1503")] * 20, max_failures=Limit(count=0)),
    ),
    # -- waves and canary -------------------------------------------------------------
    "wave 2 before wave 1 is final: wait for an event": Case(
        at("12:00"),
        Action.WAIT,
        Reason.WAVE_NOT_READY,
        None,
        Scope.WAVE,
        target=TargetRef("a", 2),
        waves={1: WaveCounts(total=3, final=2), 2: WaveCounts(total=10)},
    ),
    "wave 2 after wave 1: send": Case(
        at("12:00"),
        Action.SEND,
        target=TargetRef("a", 2),
        waves={1: WaveCounts(total=3, final=3, last_final_at=at("11:00"))},
    ),
    "pause between waves: wait until it ends": Case(
        at("12:00"),
        Action.WAIT,
        Reason.WAVE_PAUSE,
        at("12:10"),
        Scope.WAVE,
        target=TargetRef("a", 2),
        settings=RolloutSettings(pause_between_waves=600),
        waves={1: WaveCounts(total=3, final=3, last_final_at=at("12:00"))},
    ),
    "canary failed: hold everything": Case(
        at("12:00"),
        Action.HOLD,
        Reason.CANARY_FAILED,
        None,
        Scope.RUN,
        target=TargetRef("b", 3),
        settings=RolloutSettings(canary=True),
        waves={1: WaveCounts(total=1, final=1, failed=1)},
    ),
    "confirm waves: wait for the operator": Case(
        at("12:00"),
        Action.WAIT,
        Reason.WAVE_NOT_CONFIRMED,
        None,
        Scope.WAVE,
        target=TargetRef("a", 2),
        settings=RolloutSettings(confirm_waves=True),
        waves={1: WaveCounts(total=1, final=1)},
        confirmed=1,
    ),
    "confirmed wave: send": Case(
        at("12:00"),
        Action.SEND,
        target=TargetRef("a", 2),
        settings=RolloutSettings(confirm_waves=True),
        waves={1: WaveCounts(total=1, final=1)},
        confirmed=2,
    ),
    # -- per-project in flight ----------------------------------------------------------
    "project at its in-flight cap: wait for an event": Case(
        at("12:00"),
        Action.WAIT,
        Reason.PROJECT_IN_FLIGHT,
        None,
        Scope.PROJECT,
        settings=RolloutSettings(project_max_in_flight=5),
        in_flight={"a": 5, "b": 0},
    ),
    "other project below the cap: send": Case(
        at("12:00"),
        Action.SEND,
        target=TargetRef("b", 1),
        settings=RolloutSettings(project_max_in_flight=5),
        in_flight={"a": 5},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    view = RolloutView(
        started_at=case.started,
        expected_seconds=case.expected,
        ledger=case.ledger,
        waves=case.waves,
        project_in_flight=case.in_flight,
        confirmed_wave=case.confirmed,
    )
    decision = decide(case.now, case.target, case.settings, view)
    assert (decision.action, decision.reason, decision.until, decision.scope) == (
        case.action,
        case.reason,
        case.until,
        case.scope,
    ), decision.why
    assert decision.send is (case.action is Action.SEND)
    if case.action is not Action.SEND:
        assert decision.why  # every WAIT and HOLD says why, for the log and the report


def test_a_hold_on_a_budget_names_the_trip_and_the_ack() -> None:
    led = ledger([("a", "Ecs.0100")] * 10)
    view = RolloutView(started_at=START, expected_seconds=600.0, ledger=led)
    decision = decide(at("12:00"), TargetRef("a"), RolloutSettings(), view)
    assert decision.trip is not None and decision.trip.failures == tuple(range(1, 11))
    assert "--stop-server" in decision.why
    assert "--ack-failures" in decision.why


def test_now_in_another_zone_is_the_same_instant() -> None:
    view = RolloutView(started_at=START, expected_seconds=600.0, ledger=ledger())
    berlin_now = at("02:51").astimezone(BERLIN)
    assert decide(berlin_now, TargetRef("a"), W, view).reason is Reason.CUTOFF
    assert decide(berlin_now - timedelta(minutes=1), TargetRef("a"), W, view).send
