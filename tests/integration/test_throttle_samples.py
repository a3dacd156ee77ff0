"""Throttled answers over time: kept with their time in the state file, drawn in the
report's timeline when they came (the counters table holds only totals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.report.timeline import THROTTLED, build_timeline
from orchestrator.simulator import Simulator


async def test_every_throttled_answer_is_in_the_timeline_at_its_time(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(40, projects=2, seed=5)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.2), rate_limit=15.0)
    # Every server read and job asked singly: calls, and throttling, all along the run
    # (read by the lists, the run's few reads leave the throttling at its start).
    settings = fast_settings(rate=60.0, poll_rate=120.0, list_reads=False)

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert campaign.exit_code == 0
    with campaign.store() as store:
        total = store.run_info().throttled
        samples = list(store.samples_iter("throttled"))
        timeline = build_timeline(store.events_iter(), samples)
        event_only = build_timeline(store.events_iter())
    assert total > 0, "the simulator's rate limit should have throttled some answers"
    assert sum(n for _, n in samples) == total
    assert sum(row[THROTTLED] for row in timeline.counts.values()) == total
    # Spread over the run, not one lump at its end.
    assert len([row for row in timeline.counts.values() if row[THROTTLED]]) > 1
    # Without samples, only throttling an event mentions is drawn (older state files).
    assert sum(row[THROTTLED] for row in event_only.counts.values()) < total
