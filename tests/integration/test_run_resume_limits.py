"""Resuming with a lower --max-in-flight: targets already mid-way count against the
limit, so no new reinstall starts until the servers being rebuilt fall below it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.engine.campaign import Invocation, open_state
from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator
from orchestrator.store.sqlite import StateStore

JOB = 1.5  # every simulated reinstall takes exactly this long


async def run_once(
    store: StateStore, sim: Simulator, settings: RunSettings, *, halt_when_submitted: int = 0
) -> None:
    """One invocation of the runner; optionally halted once that many were accepted."""
    async with (
        aiohttp.ClientSession() as session,
        EcsClient(session, Endpoints(sim.url), TokenAuth(sim.config.token or "")) as client,
    ):
        runner = Runner(store, client, settings)
        stop, halt = asyncio.Event(), asyncio.Event()

        async def halter() -> None:
            while len(sim.stats()["reinstalls_by_server"]) < halt_when_submitted:
                await asyncio.sleep(0.01)
            halt.set()  # like a second SIGINT: stop at once, jobs left mid-way

        watcher = asyncio.create_task(halter()) if halt_when_submitted else None
        await asyncio.wait_for(runner.run(stop, halt), timeout=60)
        if watcher is not None:
            watcher.cancel()


def most_at_once(starts: list[float], since: float) -> int:
    """The most reinstalls running at the service when one that arrived after `since` began."""
    return max(
        sum(1 for other in starts if other <= start < other + JOB)
        for start in starts
        if start >= since
    )


async def test_resumed_targets_count_against_a_lower_max_in_flight(
    tmp_path: Path,
    report_dir: Path,
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(12)
    sim = await start_sim(inventory, job_seconds=(JOB, JOB))
    inv = Invocation(
        state_path=tmp_path / "limits.sqlite",
        report_dir=report_dir,
        settings=fast_settings(),
        inventory=inventory,
        live_progress=False,
    )
    store = open_state(inv)
    try:
        await run_once(
            store, sim, fast_settings(max_in_flight=8, rate=100.0), halt_when_submitted=8
        )
        mid_way = sum(
            n
            for state, n in store.counts().items()
            if state in (TargetState.SUBMITTING, TargetState.SUBMITTED, TargetState.RUNNING)
        )
        assert mid_way >= 6, store.counts()
        resumed_at = sim.config.clock()

        await run_once(store, sim, fast_settings(max_in_flight=3, rate=100.0))
        counts = store.counts()
    finally:
        store.close()

    assert counts[TargetState.SUCCEEDED] == 12
    stats = sim.stats()
    assert set(stats["reinstalls_by_server"].values()) == {1}
    starts = sorted(stats["request_times"]["reinstall"])
    assert len(starts) == 12
    # New reinstalls after the resume began only once fewer than 3 were rebuilding.
    assert any(start >= resumed_at for start in starts)
    assert most_at_once(starts, resumed_at) <= 3
