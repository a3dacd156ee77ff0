"""Pacing and concurrency, measured where they matter: at the simulated service."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.engine.campaign import Invocation, open_state
from orchestrator.engine.pacing import RateLimiter
from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.inventory import InventoryDefaults
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator
from orchestrator.store.sqlite import StateStore

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]


# Arrivals are stamped by the in-process simulator on the run's own event loop: on a
# loaded machine a late turn of the loop stamps two or three sends together. A bunch of
# intents released at once would be tens; the exact bound at the sender is held in
# virtual time (tests/unit/test_pacing.py, the delivery guard's tests).
ARRIVAL_SLACK = 2


def busiest_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most arrivals in any closed window [t, t + width]."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + width) - i for i, t in enumerate(ordered)), default=0
    )


def test_busiest_window_counts_closed_windows() -> None:
    assert busiest_window([]) == 0
    assert busiest_window([0.0, 1.0, 2.0]) == 2
    assert busiest_window([0.0, 0.5, 0.99, 1.01, 5.0]) == 3
    assert busiest_window([3.0, 0.0, 0.2]) == 2


@pytest.mark.slow
async def test_reinstalls_arrive_at_the_configured_rate(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(100, projects=4, seed=61)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.3))
    settings = fast_settings(rate=20.0, poll_rate=100.0, preflight=True)

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert campaign.exit_code == 0
    stats = sim.stats()
    times = sorted(stats["request_times"]["reinstall"])
    assert len(times) == 100
    assert stats["requests"]["list_v1"] >= 4  # preflight on: each project read by page
    assert busiest_window(times) <= 20 + 1 + ARRIVAL_SLACK
    achieved = (len(times) - 1) / (times[-1] - times[0])
    # Never faster than the rate (+10 %): the limit the service sees. Slower is allowed
    # more room: on a loaded 2-core CI machine a stall of a second or so in the 5 s of
    # sending only makes us slower (it failed once at the old 18/s floor). The strict
    # figure (within 2 %) is benchmarks/issue10.py pacing's.
    assert 15.0 <= achieved <= 22.0, f"{achieved:.2f} reinstalls/s"


async def test_job_and_server_queries_share_the_poll_rate(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(15, projects=2, seed=62)
    # Jobs end before the first poll: every target wants a server read and a job
    # query at once (servers read singly), far more than 10/s, so the poll limiter
    # sets the pace.
    sim = await start_sim(inventory, job_seconds=(0.1, 0.1))
    settings = fast_settings(rate=100.0, poll_rate=10.0, preflight=True, list_reads=False)

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert campaign.exit_code == 0
    stats = sim.stats()
    times = stats["request_times"]["job"] + stats["request_times"]["server"]
    assert len(times) >= 30
    assert busiest_window(times) <= 10 + 1
    span = max(times) - min(times)
    assert (len(times) - 1) / span <= 10.0 * 1.1
    # Not sent in a trickle either: the limiter, not the workers, was the bottleneck.
    assert busiest_window(times) >= 9


async def test_max_in_flight_bounds_servers_rebuilding_at_once(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(10, projects=2, seed=63)
    sim = await start_sim(inventory, job_seconds=(0.6, 0.6))
    settings = fast_settings(rate=50.0, max_in_flight=5)

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert campaign.exit_code == 0
    stats = sim.stats()
    # At 50/s the first five are sent within 0.1 s, long before a 0.6 s job ends.
    assert stats["max_concurrent_rebuilding"] == 5
    assert stats["rebuilding_now"] == 0
    assert set(stats["reinstalls_by_server"].values()) == {1}


def _hold_write_lock(state_path: Path, seconds: float) -> tuple[float, float]:
    """Another writer on the state file: the run's commits wait for it (busy_timeout),
    as they do behind a long WAL checkpoint, while the pacer keeps granting. Returns
    when the lock was held, on the simulator's clock (wall time)."""
    conn = sqlite3.connect(str(state_path), isolation_level=None, timeout=5.0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return start, end


async def _run_with_one_stall(
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
    inventory: Path,
    sim: Simulator,
    state_path: Path,
    *,
    rate: float,
    stall: float,
    after: int,
) -> tuple[Any, tuple[float, float]]:
    """Run the campaign at `rate`, the state file locked for `stall` seconds once `after`
    reinstalls have arrived: the campaign, and when the lock was held."""

    async def stall_commits_once_sending() -> tuple[float, float]:
        while sim.stats()["requests"]["reinstall"] < after:
            await asyncio.sleep(0.02)
        return await asyncio.to_thread(_hold_write_lock, state_path, stall)

    staller = asyncio.create_task(stall_commits_once_sending())
    campaign = await run_campaign(
        inventory,
        sim=sim,
        state_path=state_path,
        settings=fast_settings(rate=float(rate), poll_rate=200.0, preflight=False),
    )
    return campaign, await staller


async def test_a_stalled_intent_commit_does_not_bunch_the_reinstalls(
    tmp_path: Path,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    """Intents granted while the state file cannot commit leave together once it can;
    the send-side spacing spreads them again, so no 1-s window at the service holds
    more than rate + burst."""
    rate, burst, count, stall = 40, 1, 120, 1.2
    inventory = make_inventory(count, projects=4, seed=63)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.2))
    campaign, _ = await _run_with_one_stall(
        run_campaign,
        fast_settings,
        inventory,
        sim,
        tmp_path / "stalled.state.sqlite",
        rate=rate,
        stall=stall,
        after=20,
    )

    assert campaign.exit_code == 0
    stats = sim.stats()
    times = sorted(stats["request_times"]["reinstall"])
    assert len(times) == count and stats["reinstalls_total"] == count
    # The stall did hold the sends back (else this test proves nothing)...
    assert max(b - a for a, b in itertools.pairwise(times)) >= stall * 0.6
    # ...and what was granted meanwhile did not leave in one bunch.
    assert busiest_window(times) <= rate + burst + ARRIVAL_SLACK


async def test_no_intent_is_committed_ahead_of_its_send_slot(
    tmp_path: Path,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    """A reinstall's token is granted when its send slot is near, not ahead of it, so
    few intents are committed and unsent at any moment (each one a target in doubt
    after a kill): while the state file cannot commit for 0.35 s, only the one or two
    committed just before it (the send side's slack) arrive; the stall's time is lost
    to the rate, and the bound holds."""
    rate, burst, count, stall = 40, 1, 120, 0.35
    inventory = make_inventory(count, projects=4, seed=65)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.2))
    campaign, (start, end) = await _run_with_one_stall(
        run_campaign,
        fast_settings,
        inventory,
        sim,
        tmp_path / "short.state.sqlite",
        rate=rate,
        stall=stall,
        after=40,
    )

    assert campaign.exit_code == 0
    stats = sim.stats()
    times = sorted(stats["request_times"]["reinstall"])
    assert len(times) == count and set(stats["reinstalls_by_server"].values()) == {1}
    during = [t for t in times if start <= t <= end]
    # 14 send slots in the stall: intents committed half a second ahead would fill
    # most of them; committed when their slot is near, only the slack's are used.
    assert len(during) <= 4, (len(during), end - start)
    assert busiest_window(times) <= rate + burst + ARRIVAL_SLACK


@pytest.mark.parametrize("drain", [10.0, 0.0])
async def test_a_stop_while_intents_wait_for_their_send_slot_sends_none_of_them(
    drain: float,
    tmp_path: Path,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    fast_settings: Callable[..., Any],
) -> None:
    """The rule for a stop that comes while a committed intent waits for its send slot:
    it is not sent, and goes back to pending with the attempt not counted (as a stop
    that comes while its intent is committed). Driven on a real state file: a stall of
    the state file bunches the intents, the stop comes while they are being spread.
    The stop puts them back at once, and the run waits for that even with
    --drain-timeout 0."""
    rate, count = 40.0, 120
    inventory = make_inventory(count, projects=4, seed=64)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.2))
    inv = Invocation(
        state_path=tmp_path / "stopped.state.sqlite",
        report_dir=tmp_path / "reports",
        settings=RunSettings(),
        inventory=inventory,
        defaults=InventoryDefaults(),
        endpoint=sim.url,
        live_progress=False,
    )
    store = open_state(inv)
    store.begin_invocation({"test": True}, str(inventory))
    stop = asyncio.Event()

    async def stall_then_stop() -> None:
        while sim.stats()["requests"]["reinstall"] < 10:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(_hold_write_lock, inv.state_path, 0.8)
        await asyncio.sleep(0.15)  # the ~32 intents held by the stall are being spread
        stop.set()

    try:
        async with (
            aiohttp.ClientSession() as session,
            EcsClient(
                session,
                Endpoints(endpoint=sim.url),
                TokenAuth(sim.config.token or ""),
                submit_limiter=RateLimiter(rate),
            ) as client,
        ):
            settings = fast_settings(rate=rate, preflight=False, drain_timeout=drain)
            runner = Runner(store, client, settings)
            side = asyncio.create_task(stall_then_stop())
            await asyncio.wait_for(runner.run(stop), 30.0)
            await side
    finally:
        store.end_invocation("test")
        store.close()

    sent = sim.stats()["reinstalls_by_server"]
    with StateStore.open(inv.state_path, readonly=True) as done:
        targets = list(done.iter_targets())
        unsent = [
            t
            for t in targets
            if [(e.to_state, e.detail) for e in done.events(t.id)][-2:]
            == [
                ("submitting", "intent to send a reinstall"),
                ("pending", "stopped before the request left; not sent"),
            ]
        ]
    # Most of the bunch was still waiting for its slot when the stop came...
    assert len(unsent) >= 10, [t.state for t in targets]
    # ...and none of it reached the service, nor counts as an attempt.
    assert all(t.server_id not in sent and t.attempts == 0 for t in unsent)
    assert all(t.state is TargetState.PENDING for t in unsent)
    # Everything else that was sent was sent once; nothing was left in doubt.
    assert all(n == 1 for n in sent.values())
    assert not [t for t in targets if t.state in (TargetState.SUBMITTING, TargetState.IN_DOUBT)]
