"""The two worlds the documentation allows for `OS-SRV-USG:launched_at`, over loopback HTTP.

The reference promises only that a reinstall replaces the system disk (a new volume ID
at boot index 0). Whether launched_at moves is not documented, so the simulator plays
both undocumented extremes: it never moves (every reinstall would fail as not verified
if launched_at were the evidence), and it moves on any start (a server merely started
again would look reinstalled). In each, every rule (verification, settlement of a
doubt, following by the lists) must decide by the disk, say so, and never send twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from never_twice_helpers import Drive, assert_never_twice, run_until_not_accepted, with_mode

from orchestrator.engine.runner import RunSettings
from orchestrator.engine.settle import parse_time
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
S = TargetState
READS = pytest.mark.parametrize("list_reads", [True, False], ids=["lists", "singles"])


def story(campaign: Any) -> str:
    with campaign.store() as store:
        return "\n".join(
            f"{t.server_id[:8]} {e.to_state}: {e.detail}"
            for t in store.iter_targets()
            for e in store.events(t.id)
        )


@READS
async def test_launched_at_never_moving_every_reinstall_is_verified_by_its_disk(
    list_reads: bool,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """launched_at stays put on a reinstall: each SUCCESS is verified by the replaced
    system disk, whether the server is read by its project's lists (Nova's rows name
    no boot index) or singly. Before, every target failed as Orchestrator.NotVerified."""
    inventory = with_mode(make_inventory(6, projects=1, seed=281))
    sim = await start_sim(inventory, launched_at_on_reinstall=False, running_rate=0.5)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(list_reads=list_reads))

    targets = campaign.targets()
    assert {t.state for t in targets} == {S.SUCCEEDED}, story(campaign)
    assert all(t.volume_before and t.first_volume == t.volume_before for t in targets)
    text = story(campaign)
    assert text.count("system disk replaced: volume") == 6, text
    assert "launched_at unchanged" in text  # the other evidence, named as it stood
    assert campaign.exit_code == 0
    assert_never_twice(sim.stats(), inventory)


async def test_launched_at_never_moving_a_lost_answer_is_settled_by_the_disk(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Every reinstall acted on, its answer lost: settled from the server, where only
    the disk shows the reinstall. Never sent again."""
    inventory = make_inventory(4, projects=1, seed=282)
    sim = await start_sim(inventory, launched_at_on_reinstall=False, drop_rate=1.0)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    assert {t.state for t in campaign.targets()} == {S.SUCCEEDED}, story(campaign)
    assert story(campaign).count("system disk replaced") >= 4
    assert sim.stats()["reinstalls_by_server"] == {t.server_id: 1 for t in campaign.targets()}


@READS
async def test_launched_at_moving_on_any_start_a_stale_success_is_not_verified(
    list_reads: bool,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The job says SUCCESS, the old system disk is still there, and the server was
    started (launched_at moved, as any start moves it in this world). Not a reinstall:
    failed as not verified, naming the disk. Before, it was succeeded on launched_at."""
    inventory = make_inventory(4, projects=1, seed=283)
    sim = await start_sim(inventory, launched_at_on_start=True, success_but_stale_rate=1.0)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(list_reads=list_reads))

    targets = campaign.targets()
    assert {(t.state, t.error_code) for t in targets} == {(S.FAILED, "Orchestrator.NotVerified")}, (
        story(campaign)
    )
    for target in targets:
        reason = target.fail_reason or ""
        assert "system disk not replaced" in reason, reason
        assert "a start moves launched_at too" in reason, reason
    assert campaign.exit_code == 1
    assert_never_twice(sim.stats(), inventory)


async def test_launched_at_moving_on_any_start_a_failed_job_that_restarted_is_not_success(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Running servers, the job fails and the service starts the server again (so
    launched_at moves), and the answer to each reinstall was lost: the doubt is
    settled from the server, which shows the same disk. Failed, never succeeded on
    launched_at alone, and never sent again. Before, each was succeeded."""
    inventory = with_mode(make_inventory(3, projects=1, seed=284))
    sim = await start_sim(
        inventory,
        launched_at_on_start=True,
        running_rate=1.0,
        job_fail_rate=1.0,
        fail_to_error_rate=0.0,
        fail_restarts=True,
        drop_rate=1.0,
    )

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    targets = campaign.targets()
    assert {t.state for t in targets} == {S.FAILED}, story(campaign)
    assert all("system disk not replaced" in (t.fail_reason or "") for t in targets)
    stats = sim.stats()
    assert stats["jobs"]["FAIL"] == 3
    assert stats["reinstalls_by_server"] == {t.server_id: 1 for t in targets}


async def test_launched_at_never_moving_a_replaced_disk_stops_a_resend(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The first reinstall is acted on, its answer lost, and its job queued longer
    than the quiet period (broken on purpose), so the doubt is settled "not accepted"
    and the run stops there. The job then runs: the disk is replaced, launched_at stays.
    The resume's check before sending sees the replaced disk, settles, never resends.
    On launched_at alone the resume sent a second reinstall."""
    inventory = with_mode(make_inventory(1, projects=1, seed=285))
    sim = await start_sim(
        inventory,
        launched_at_on_reinstall=False,
        drop_rate=1.0,
        queue_seconds=(1.5, 1.5),
        job_seconds=(0.1, 0.1),
    )
    run = driven(inventory, sim)
    hasty = fast_settings(settle_delay=0.1, settle_quiet=0.3, drain_timeout=0.5)
    await run_until_not_accepted(run, hasty)
    while not sim.stats()["jobs"].get("SUCCESS"):
        await asyncio.sleep(0.05)  # the queued job runs now: the disk is replaced

    outcome = await run.run(fast_settings())

    [target] = run.targets()
    assert target.state is S.SUCCEEDED, run.explain()
    assert "an earlier attempt shows on the server (system disk's volume" in run.explain()
    assert outcome.exit_code == 0
    assert_never_twice(sim.stats(), inventory)


# -- verification's time budget: minutes to come back, SHUTOFF kept -----------------------


async def test_a_server_that_takes_a_while_to_come_back_is_verified_within_the_budget(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The job says SUCCESS while the server still boots (SHUTOFF, powering-on) for
    3 s, many poll intervals here (minutes on a real cloud). Read again within
    --verify-within, it is succeeded once back. Before, 4 reads about 1 s apart failed
    each as Orchestrator.NotVerified."""
    inventory = with_mode(make_inventory(4, projects=1, seed=286))
    sim = await start_sim(inventory, running_rate=0.5, come_back_seconds=(3.0, 3.0))

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(verify_within=15.0, list_reads=False)
    )

    targets = campaign.targets()
    assert {t.state for t in targets} == {S.SUCCEEDED}, story(campaign)
    for target in targets:  # verified after the boot, not before (one clock here)
        ended, verified = parse_time(target.job_end_at), parse_time(target.finished_at)
        assert ended is not None and verified is not None
        assert (verified - ended).total_seconds() >= 2.5, (target.job_end_at, target.finished_at)
    assert_never_twice(sim.stats(), inventory)


async def test_a_server_still_booting_past_the_budget_fails_naming_the_budget(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Booting for longer than --verify-within: failed as not verified, saying how long
    it was read; never sent again."""
    inventory = make_inventory(2, projects=1, seed=287)
    sim = await start_sim(inventory, come_back_seconds=(30.0, 30.0))

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(verify_within=1.5, list_reads=False)
    )

    for target in campaign.targets():
        assert (target.state, target.error_code) == (S.FAILED, "Orchestrator.NotVerified")
        reason = target.fail_reason or ""
        assert "powering-on" in reason and "not back within --verify-within 2 s" in reason
    assert_never_twice(sim.stats(), inventory)


async def test_a_stopped_server_left_shutoff_by_its_reinstall_is_a_normal_end(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """A cloud that keeps a stopped server stopped after its reinstall, and never moves
    launched_at: SHUTOFF as before, on a new system disk, is succeeded at once."""
    inventory = make_inventory(3, projects=1, seed=288)
    sim = await start_sim(inventory, keep_power_state=True, launched_at_on_reinstall=False)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(list_reads=False))

    assert {t.state for t in campaign.targets()} == {S.SUCCEEDED}, story(campaign)
    assert story(campaign).count("server back (status SHUTOFF") == 3
    assert_never_twice(sim.stats(), inventory)
