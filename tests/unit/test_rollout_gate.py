"""RolloutGate and RolloutOptions: what the runner's calls do with the pure decision.

The gate is driven with a fixed clock and real targets; the runs themselves
are in tests/integration/test_run_rollout.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.errors import UsageError
from orchestrator.model import Target, TargetSpec, TargetState
from orchestrator.rollout import FailureLedger, WaveCounts
from orchestrator.rollout.decide import Action, Reason
from orchestrator.rollout.gate import DURATIONS_KEPT, RolloutGate
from orchestrator.rollout.options import RolloutOptions

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def target(n: int, project: str = "p1", wave: int = 1, **fields: object) -> Target:
    spec = TargetSpec(project, f"srv-{n}", "key", "root", n)
    return replace(Target(n, spec, TargetState.PENDING, wave=wave), **fields)


def gate(options: RolloutOptions, waves: dict[int, int], **kwargs: object) -> RolloutGate:
    run, project, consecutive = options.budgets()
    ledger = FailureLedger(
        sum(waves.values()),
        {"p1": sum(waves.values()), "p2": sum(waves.values())},
        max_failures=run,
        max_failures_per_project=project,
        max_consecutive=consecutive,
    )
    return RolloutGate(
        options.settings(),
        ledger,
        {w: WaveCounts(total=n) for w, n in waves.items()},
        fallback_seconds=options.expected_job_seconds,
        started_at=NOW,
        now=kwargs.pop("now", lambda: NOW),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_project_at_its_cap_is_parked_and_unparked_when_it_has_room() -> None:
    g = gate(RolloutOptions(project_max_in_flight=1), {1: 4})
    running = {1: target(1, "p1")}
    waiting = target(2, "p1")
    decision = g.decide(waiting, running)
    assert decision.reason is Reason.PROJECT_IN_FLIGHT
    assert g.keep(waiting, decision) is False  # parked, not put back at the head
    assert g.decide(target(3, "p2"), running).send  # the other project goes meanwhile
    assert g.unpark(running) is None
    assert g.unpark({}) == waiting


def test_a_failed_canary_holds_the_run_and_stops_sends_waiting_for_the_pacer() -> None:
    g = gate(RolloutOptions(canary=2), {1: 2, 2: 5})
    sent = target(2, wave=1)
    assert g.decide(target(1, wave=1), {}).send
    assert g.decide(sent, {}).send
    g.record_final(target(1, wave=1, state=TargetState.FAILED, error_code="Ecs.0100"))
    assert not g.still_allowed(sent)  # decided before the failure: not sent after it
    decision = g.decide(target(3, wave=2), {})
    assert decision.action is Action.HOLD and decision.reason is Reason.CANARY_FAILED
    assert "add --stop-server" in decision.why  # the likely cause, named
    assert g.held is decision
    g.finish(left_pending=6)
    records = g.take_records()
    assert [r.kind for r in records] == ["wave_started", "hold:canary_failed", "left_pending"]
    assert records[-1].detail.startswith("6 target(s) left pending: canary failed")


def test_the_breaker_trips_once_and_is_recorded_with_its_hint() -> None:
    g = gate(RolloutOptions(max_consecutive_failures=3), {1: 10})
    for n in range(1, 4):
        g.record_final(target(n, state=TargetState.FAILED, error_code="Ecs.0114"))
    trips = [r for r in g.take_records() if r.kind.startswith("trip:")]
    assert len(trips) == 1
    assert trips[0].project_id == "p1"
    assert "is the project ID right?" in trips[0].detail
    assert not g.still_allowed(target(4, "p1"))
    assert g.still_allowed(target(5, "p2"))


def test_waiting_for_the_window_returns_at_its_time_not_before() -> None:
    opens = NOW + timedelta(seconds=0.2)
    g = gate(RolloutOptions(not_before=opens.isoformat()), {1: 1})
    decision = g.decide(target(1), {})
    assert decision.reason is Reason.NOT_YET_OPEN and decision.until == opens
    assert g.keep(target(1), decision) is True

    async def waited() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await g.wait(target(1), decision, asyncio.Event())
        return loop.time() - start

    assert 0.15 <= asyncio.run(waited()) < 2.0


def test_a_declined_wave_holds_the_run() -> None:
    asked: list[int] = []

    async def confirm(wave: int, size: int) -> bool:
        asked.append(wave)
        return wave == 1

    g = gate(RolloutOptions(confirm_waves=True, waves="1"), {1: 1, 2: 1}, confirm=confirm)
    first = g.decide(target(1, wave=1), {})
    assert first.reason is Reason.WAVE_NOT_CONFIRMED
    asyncio.run(g.wait(target(1, wave=1), first, asyncio.Event()))
    assert g.decide(target(1, wave=1), {}).send
    g.record_final(target(1, wave=1, state=TargetState.SUCCEEDED))
    second = g.decide(target(2, wave=2), {})
    asyncio.run(g.wait(target(2, wave=2), second, asyncio.Event()))
    assert asked == [1, 2]
    assert g.held is not None and "wave 2 was not confirmed" in g.held.why


def test_options_resume_from_the_state_file_unless_given() -> None:
    saved = RolloutOptions(window="02:00-05:00", tz="Europe/Berlin", max_failures="2%")
    resumed = RolloutOptions.from_dicts({"max_failures": "5"}, saved.to_dict())
    assert (resumed.window, resumed.tz, resumed.max_failures) == (
        "02:00-05:00",
        "Europe/Berlin",
        "5",
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"waves": "5,10"}, "--waves 5,10 (the plan has 1,5%)"),
        ({"canary": 3}, "--canary 3 (the plan has none)"),
    ],
)
def test_the_fixed_plan_refuses_other_waves(given: dict[str, object], message: str) -> None:
    plan = {"waves": "1,5%", "canary": None}
    assert RolloutOptions(waves="1,5%").with_plan(plan).waves == "1,5%"
    assert RolloutOptions().with_plan(plan).waves == "1,5%"  # not given: the plan's
    with pytest.raises(UsageError, match="fixed in the state file") as caught:
        RolloutOptions(**given).with_plan(plan)  # type: ignore[arg-type]
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RolloutOptions(keep_going=True), "needs --window"),
        (RolloutOptions(tz="Europe/Berlin"), "--tz is the zone of --window"),
        (RolloutOptions(expected_job_seconds=0), "--expected-job-seconds: 0"),
        (RolloutOptions(project_max_in_flight=0), "--project-max-in-flight: 0"),
        (
            RolloutOptions(not_before="2026-12-01T05:00Z", deadline="2026-12-01T04:00Z"),
            "is not after --not-before",
        ),
    ],
)
def test_bad_options_are_usage_errors(options: RolloutOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options.check()


def test_a_wave_that_cannot_finish_in_this_run_holds_instead_of_waiting_forever() -> None:
    clock = [NOW]
    g = gate(RolloutOptions(waves="2"), {1: 2, 2: 1}, now=lambda: clock[0])
    g.record_final(target(1, wave=1, state=TargetState.SUCCEEDED))
    # Target 2 of wave 1 was deferred (server busy): pending, not under way, not queued.
    later = target(3, wave=2)
    assert g.decide(later, {}).reason is Reason.WAVE_NOT_READY
    clock[0] += timedelta(seconds=10)
    # Something still under way in wave 1: keep waiting.
    assert g.decide(later, {2: target(2, wave=1)}).action is Action.WAIT
    decision = g.decide(later, {})
    assert decision.action is Action.HOLD
    assert "deferred in this run" in decision.why
    assert g.held is decision


def test_the_expected_duration_is_the_p90_of_the_latest_jobs_only() -> None:
    # 1,000 old hour-long jobs, then the latest 2,000 at 60 s: a million-target run
    # keeps (and sorts) only the latest 2,000.
    old, recent = [3600.0] * 1000, [60.0] * DURATIONS_KEPT
    g = gate(RolloutOptions(), {1: 10}, durations=old + recent)
    assert DURATIONS_KEPT == 2000
    assert g.expected.seconds == 60.0
    assert "2000 finished jobs" in g.expected.source
