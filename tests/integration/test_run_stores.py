"""Whole runs on both stores (SQLite and PostgreSQL): a clean run, a resume after the
process died mid-way, a target left between intent and answer settled, and shards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.engine.campaign import Invocation, open_state
from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.engine.shard import Shard
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator, load_fleet
from orchestrator.store.records import Change, utc_now

S = TargetState
StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
pytestmark = pytest.mark.timeout(60)


async def test_a_clean_run_reinstalls_every_server_once(
    new_location: Callable[..., Any],
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
) -> None:
    inventory = make_inventory(40, projects=3, seed=11)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory)
    location = new_location()

    campaign = await run_campaign(inventory, sim=sim, location=location)

    assert campaign.exit_code == 0
    stats = sim.stats()
    assert stats["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    assert stats["reinstalls_after_success"] == 0
    with campaign.store() as store:
        assert store.counts()[S.SUCCEEDED] == 40
        run = store.run_info()
        assert run.requests["reinstall"] == 40
        assert run.state_path == location.label
        steps = [(e.from_state, e.to_state) for e in store.events(1)]
        assert steps[:2] == [("pending", "submitting"), ("submitting", "submitted")]
    assert campaign.result.report is not None and campaign.result.report.summary_json.is_file()


async def halted_run(store: Any, sim: Simulator, settings: RunSettings, after: int) -> None:
    """One life of a runner, halted at once (like a kill) once `after` were accepted."""
    store.begin_invocation({"life": 1}, None)
    async with (
        aiohttp.ClientSession() as session,
        EcsClient(session, Endpoints(sim.url), TokenAuth(sim.config.token or "")) as client,
    ):
        runner = Runner(store, client, settings)
        stop, halt = asyncio.Event(), asyncio.Event()

        async def halter() -> None:
            while len(sim.stats()["reinstalls_by_server"]) < after:
                await asyncio.sleep(0.01)
            halt.set()

        watcher = asyncio.create_task(halter())
        await asyncio.wait_for(runner.run(stop, halt), timeout=30)
        watcher.cancel()


async def test_a_resume_after_the_process_died_finishes_without_sending_twice(
    new_location: Callable[..., Any],
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
    report_dir: Path,
    tmp_path: Path,
) -> None:
    inventory = make_inventory(30, projects=2, seed=12)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory, job_seconds=(1.0, 1.5))
    location = new_location()
    inv = Invocation(
        state_path=tmp_path / "unused.sqlite",
        report_dir=report_dir,
        settings=fast_settings(),
        inventory=inventory,
        live_progress=False,
        location=location,
    )
    store = open_state(inv)
    try:
        await halted_run(store, sim, fast_settings(rate=100.0), after=10)
        mid_way = sum(n for s, n in store.counts().items() if s in (S.SUBMITTED, S.RUNNING))
    finally:
        store.close()  # the process is gone: its lock (file or session) with it
    assert mid_way >= 5

    campaign = await run_campaign(inventory, sim=sim, location=location)

    assert campaign.exit_code == 0
    assert sim.stats()["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    with campaign.store() as store:
        assert store.counts()[S.SUCCEEDED] == 30
        assert store.run_info().invocations == 2


async def test_an_intent_without_an_answer_is_settled_then_sent_once(
    new_location: Callable[..., Any],
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    report_dir: Path,
    tmp_path: Path,
    fast_settings: Callable[..., RunSettings],
) -> None:
    inventory = make_inventory(6, projects=1, seed=13)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory)
    location = new_location()
    inv = Invocation(
        state_path=tmp_path / "unused.sqlite",
        report_dir=report_dir,
        settings=fast_settings(),
        inventory=inventory,
        live_progress=False,
        location=location,
    )
    # An earlier process committed its intent for target 2 and died before sending.
    with open_state(inv) as store:
        intent = {"attempts": 1, "intent_at": utc_now()}
        assert store.apply([Change(2, S.PENDING, S.SUBMITTING, "intent", intent)]) == [True]

    campaign = await run_campaign(inventory, sim=sim, location=location)

    assert campaign.exit_code == 0
    assert sim.stats()["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    steps = [e.to_state for e in campaign.events(2)]
    assert steps[:3] == ["submitting", "in_doubt", "pending"], steps
    assert steps[-1] == "succeeded"


async def test_shards_run_one_after_the_other_cover_the_campaign_once(
    new_location: Callable[..., Any],
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    inventory = make_inventory(24, projects=2, seed=14)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory)
    location = new_location()

    first = await run_campaign(
        inventory, sim=sim, location=location, settings=fast_settings(shard=Shard(1, 2))
    )

    mine = {server for _, server in fleet if Shard(1, 2).holds(server)}
    assert 0 < len(mine) < 24
    assert first.exit_code == 0  # its own shard is complete
    assert set(sim.stats()["reinstalls_by_server"]) == mine
    with first.store() as store:
        assert store.counts()[S.PENDING] == 24 - len(mine)  # the campaign is not

    second = await run_campaign(
        inventory, sim=sim, location=location, settings=fast_settings(shard=Shard(2, 2))
    )

    assert second.exit_code == 0
    assert sim.stats()["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    with second.store() as store:
        assert store.counts()[S.SUCCEEDED] == 24


async def test_rollout_waves_budgets_and_ack_work_the_same_on_both_stores(
    new_location: Callable[..., Any],
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The rollout's state (waves fixed at the first run, decisions, trips, the ack) is
    kept by the store: a resume on either store continues the same plan."""
    from orchestrator.rollout.options import RolloutOptions
    from orchestrator.rollout.report import rollout_summary

    inventory = make_inventory(12, projects=2, seed=23)
    fleet = load_fleet(inventory)
    bad_project = fleet[0][0]
    missing = [pair for pair in fleet if pair[0] == bad_project][:2]
    sim = await start_sim(inventory, fleet=tuple(p for p in fleet if p not in missing))
    settings = fast_settings(max_in_flight=1, rate=20.0)

    # A budget trip holds the bad project; a resume sends nothing until the ack.
    budget = RolloutOptions(max_failures_per_project="1")
    location = new_location()
    first = await run_campaign(
        inventory, sim=sim, settings=settings, rollout=budget, location=location
    )
    assert first.exit_code == 3
    with first.store() as store:
        summary = rollout_summary(store)
    assert summary is not None and summary["trips"]
    sent = sum(sim.stats()["reinstalls_by_server"].values())
    again = await run_campaign(
        inventory, sim=sim, settings=settings, rollout=budget, location=location
    )
    assert again.exit_code == 3
    assert sum(sim.stats()["reinstalls_by_server"].values()) == sent
    acked = await run_campaign(
        inventory, sim=sim, settings=settings, rollout=budget, location=location,
        ack_failures=True,
    )  # fmt: skip
    assert acked.exit_code == 1  # every target final; the missing ones failed
    with acked.store() as store:
        states = {t.server_id: t.state for t in store.iter_targets()}
    assert [states[s] for _, s in missing] == [S.FAILED, S.FAILED]
    assert sum(s is S.SUCCEEDED for s in states.values()) == 10

    # Waves are fixed in the store at the first run and kept by a resume.
    waved = await run_campaign(
        inventory, sim=sim, settings=settings, rollout=RolloutOptions(waves="4,100%"),
        location=new_location("waved"),
    )  # fmt: skip
    with waved.store() as store:
        assert [t.wave for t in store.iter_targets()] == [1] * 4 + [2] * 8
