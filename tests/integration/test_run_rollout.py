"""Rollout control over loopback HTTP: windows, the cutoff, waves, canary, budgets, caps, pacing.

Each test runs the campaign in-process against the simulator and reads what
happened from the state file (intent and finish times, waves, the rollout
records) and from the simulator's own counters. Timings are seconds: windows
open a couple of seconds ahead, jobs take well under two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.model import Target, TargetState
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.report import rollout_summary
from orchestrator.simulator import Simulator, load_fleet
from orchestrator.store.sqlite import StateStore

S = TargetState


def at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def kinds(state: Path) -> list[str]:
    with StateStore.open(state, readonly=True) as store:
        return [r.kind for r in store.rollout_records()]


def reinstalls(sim: Simulator) -> dict[str, int]:
    stats: dict[str, int] = sim.stats()["reinstalls_by_server"]
    return stats


async def test_nothing_is_sent_before_the_window_opens(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
) -> None:
    inventory = make_inventory(6, projects=2)
    sim = await start_sim(inventory)
    opens = datetime.now(UTC) + timedelta(seconds=2)
    campaign = await run_campaign(inventory, sim=sim, rollout=RolloutOptions(not_before=iso(opens)))
    assert campaign.exit_code == 0
    targets = campaign.targets()
    assert all(t.state is S.SUCCEEDED for t in targets)
    # Not a single intent (the moment before a request leaves) before the opening.
    assert min(at(t.intent_at) for t in targets) >= opens
    assert "wait:not_yet_open" in kinds(campaign.state_path)


async def test_deadline_mid_run_sends_only_what_can_finish_and_leaves_the_rest(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(24, projects=2)
    sim = await start_sim(inventory, job_seconds=(0.8, 1.0))
    expected = 1.5
    deadline = datetime.now(UTC) + timedelta(seconds=3)
    campaign = await run_campaign(
        inventory,
        sim=sim,
        settings=fast_settings(max_in_flight=3),
        rollout=RolloutOptions(deadline=iso(deadline), expected_job_seconds=expected),
    )
    assert campaign.exit_code == 3
    targets = campaign.targets()
    sent = [t for t in targets if t.intent_at is not None]
    left = [t for t in targets if t.state is S.PENDING]
    assert sent and left
    # The duration-aware cutoff: nothing sent that was expected to end after the deadline.
    assert all(at(t.intent_at) + timedelta(seconds=expected) <= deadline for t in sent)
    # Exactly the servers sent were touched at the simulator; the rest stayed pending.
    assert set(reinstalls(sim)) == {t.server_id for t in sent}
    assert all(t.state is S.SUCCEEDED for t in sent)  # accepted jobs followed to the end
    summary = rollout_summary(campaign.store())
    assert summary is not None
    assert summary["left_pending"].startswith(f"{len(left)} target(s) left pending")
    assert "would not end before" in summary["left_pending"]
    report = json.loads(campaign.result.report.summary_json.read_text())
    assert report["rollout"]["left_pending"] == summary["left_pending"]


async def test_a_failing_canary_stops_everything_else(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
) -> None:
    inventory = make_inventory(12, projects=2)
    fleet = load_fleet(inventory)
    # The second canary does not exist at the service: Ecs.0114, a failure.
    sim = await start_sim(inventory, fleet=tuple(fleet[:1] + fleet[2:]))
    campaign = await run_campaign(
        inventory, sim=sim, rollout=RolloutOptions(canary=3, waves="100%")
    )
    assert campaign.exit_code == 3
    targets = campaign.targets()
    canaries = {t.server_id for t in targets if t.wave == 1}
    assert len(canaries) == 3
    touched = set(reinstalls(sim))
    assert touched <= canaries  # nothing beyond the canary was sent
    assert all(t.state is S.PENDING for t in targets if t.wave == 2)
    assert campaign.result.outcome.held is not None
    assert "canary failed" in campaign.result.outcome.held


async def test_waves_run_in_order_and_each_waits_for_the_previous_to_be_final(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
) -> None:
    inventory = make_inventory(14, projects=3)
    sim = await start_sim(inventory)
    campaign = await run_campaign(inventory, sim=sim, rollout=RolloutOptions(waves="2,25%"))
    assert campaign.exit_code == 0
    targets = campaign.targets()
    assert [t.wave for t in targets] == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    assert_waves_in_order(targets)


def assert_waves_in_order(targets: list[Target]) -> None:
    """No target of wave k+1 had its intent before every target of wave k was final."""
    by_wave: dict[int, list[Target]] = {}
    for t in targets:
        assert t.wave is not None
        by_wave.setdefault(t.wave, []).append(t)
    for wave in sorted(by_wave)[1:]:
        before = [t for t in by_wave[wave - 1] if t.finished_at]
        now = [t for t in by_wave[wave] if t.intent_at]
        if before and now:
            assert max(at(t.finished_at) for t in before) <= min(at(t.intent_at) for t in now)


async def test_a_project_budget_trips_for_one_project_while_the_other_finishes(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(20, projects=2)
    fleet = load_fleet(inventory)
    bad_project = fleet[0][0]
    missing = [pair for pair in fleet if pair[0] == bad_project][:3]
    sim = await start_sim(inventory, fleet=tuple(p for p in fleet if p not in missing))
    options = RolloutOptions(max_failures_per_project="1")
    settings = fast_settings(max_in_flight=1, rate=20.0)
    first = await run_campaign(inventory, sim=sim, settings=settings, rollout=options)
    assert first.exit_code == 3
    targets = first.targets()
    bad = [t for t in targets if t.project_id == bad_project]
    good = [t for t in targets if t.project_id != bad_project]
    assert all(t.state is S.SUCCEEDED for t in good)
    failed = [t for t in bad if t.state is S.FAILED]
    assert len(failed) == 2  # the budget is 1: the second failure trips it
    assert any(t.state is S.PENDING for t in bad)
    summary = rollout_summary(first.store())
    assert summary is not None
    assert summary["trips"] == [
        f"--max-failures-per-project 1 exceeded in project {bad_project}: 2 failures"
    ]

    # A resume (the up arrow) sends nothing while the trip stands ...
    sent_before = sum(reinstalls(sim).values())
    again = await run_campaign(inventory, sim=sim, settings=settings, rollout=options)
    assert again.exit_code == 3
    assert sum(reinstalls(sim).values()) == sent_before
    assert [t.state for t in again.targets()] == [t.state for t in targets]
    assert "hold:project_budget" in kinds(again.state_path)

    # ... until the operator acknowledges it: earlier failures stop counting.
    acked = await run_campaign(
        inventory, sim=sim, settings=settings, rollout=options, ack_failures=True
    )
    final = acked.targets()
    assert "ack_failures" in kinds(acked.state_path)
    assert sum(reinstalls(sim).values()) > sent_before
    # One more missing server after the ack: within the budget of 1, so the rest went.
    assert acked.exit_code == 1
    assert sum(1 for t in final if t.state is S.FAILED) == 3
    assert all(t.is_final for t in final)


async def test_project_max_in_flight_holds_at_the_service(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(24, projects=2)
    sim = await start_sim(inventory, job_seconds=(0.4, 0.6))
    campaign = await run_campaign(
        inventory,
        sim=sim,
        settings=fast_settings(max_in_flight=20, rate=100.0),
        rollout=RolloutOptions(project_max_in_flight=2),
    )
    assert campaign.exit_code == 0
    per_project = sim.stats()["max_concurrent_by_project"]
    assert len(per_project) == 2
    assert max(per_project.values()) == 2, per_project  # reached, never exceeded


async def test_adaptive_pacing_settles_under_the_rate_limit_and_is_reported(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(30, projects=1)
    sim = await start_sim(inventory, rate_limit=10.0, job_seconds=(1.5, 2.0))
    # Thirty jobs under way, each polled every 0.1-0.2 s (servers read singly): far more
    # job queries than the service's 10 per second allow, and --poll-rate 100 would
    # let them all go.
    settings = fast_settings(
        max_in_flight=30, poll_rate=100.0, first_poll=0.1, poll_cap=0.2, list_reads=False
    )
    campaign = await run_campaign(inventory, sim=sim, settings=settings)
    assert campaign.exit_code == 0
    summary = rollout_summary(campaign.store())
    assert summary is not None
    rates = summary["adaptive_rates"]
    assert set(rates) == {"reinstall eu-de", "server eu-de", "job eu-de"}, rates
    job = rates["job eu-de"]
    assert job["cuts"] >= 1, rates
    assert job["rate"] < job["ceiling"], rates
    stats = sim.stats()
    total = sum(stats["requests"].values())
    assert stats["throttled"] / total <= 0.2, (stats["throttled"], total)
    md = campaign.result.report.report_md.read_text()
    assert "Pacing settled: job eu-de at" in md


async def test_jobs_that_run_past_the_deadline_are_followed_and_the_overrun_reported(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(12, projects=2)
    # Jobs take about a second, but the operator expects 0.2 s: the last ones sent
    # before the cutoff end after the deadline. They are followed, not abandoned.
    sim = await start_sim(inventory, job_seconds=(0.9, 1.0))
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    campaign = await run_campaign(
        inventory,
        sim=sim,
        settings=fast_settings(max_in_flight=2),
        rollout=RolloutOptions(deadline=iso(deadline), expected_job_seconds=0.2),
    )
    sent = [t for t in campaign.targets() if t.intent_at is not None]
    assert sent and all(t.state is S.SUCCEEDED for t in sent)
    assert max(at(t.finished_at) for t in sent) > deadline
    summary = rollout_summary(campaign.store())
    assert summary is not None
    assert summary["overran"] is not None
    over = float(summary["overran"].split(" ran ")[1].split(" s ")[0])
    assert over > 0
    assert "Overran: accepted jobs ran" in campaign.result.report.report_md.read_text()
