"""How a run reads servers, over HTTP against the simulator: a project by pages where
that is cheaper, a few servers of a large project singly, a lone server without a
list call; servers in flight followed by the project's changes; a server the pages
do not show read singly before anything is concluded; lists that fail replaced by
single reads. Every path ends with each server reinstalled exactly once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.rows import SPILL_AT
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator, load_fleet

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
S = TargetState


def methods(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The cost model's choice for each project, as the run logged it."""
    return [
        r.getMessage().split(": ", 2)[2]
        for r in caplog.records
        if r.name == "orchestrator.reads" and "to do" in r.getMessage()
    ]


def assert_each_once(sim: Simulator, fleet: list[tuple[str, str]]) -> None:
    stats = sim.stats()
    assert stats["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    assert stats["reinstalls_after_success"] == 0


# In memory, and moved to disk at the eleventh row: the same evidence either way.
@pytest.mark.parametrize("rows_in_memory", [SPILL_AT, 10], ids=["in-memory", "on-disk"])
async def test_a_project_in_the_inventory_is_read_by_pages_and_followed_by_its_changes(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    rows_in_memory: int,
) -> None:
    caplog.set_level(logging.INFO, "orchestrator.reads")
    inventory = make_inventory(40, projects=1)
    fleet = load_fleet(inventory)
    # 1,040 servers: two pages, fewer calls than forty single reads.
    sim = await start_sim(inventory, extra_servers=1000, job_seconds=(0.4, 0.8))

    settings = fast_settings(max_in_flight=40, rows_in_memory=rows_in_memory)
    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert campaign.exit_code == 0
    assert_each_once(sim, fleet)
    requests = sim.stats()["requests"]
    assert requests["list_v1"] == 2
    assert requests["list_nova"] >= 1  # followed by the project's changes
    # A reading from the lists replaced nearly every single read and job query.
    assert requests["server"] + requests["job"] < 40, requests
    assert methods(caplog) == ["pages (1040 servers, 40 to do: read in 2 page call(s))"]
    on_disk = [r for r in caplog.records if "kept on disk" in r.getMessage()]
    assert len(on_disk) == (rows_in_memory < 1040)
    succeeded = {t.server_id: t for t in campaign.targets()}
    assert all(t.state is S.SUCCEEDED and t.launched_at_before for t in succeeded.values())


async def test_a_few_servers_of_a_large_project_are_read_one_by_one(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "orchestrator.reads")
    inventory = make_inventory(3, projects=1)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory, extra_servers=5000)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    assert campaign.exit_code == 0
    assert_each_once(sim, fleet)
    requests = sim.stats()["requests"]
    # One page told the project's size; paging the rest would cost 5 calls for 3 servers.
    assert requests["list_v1"] == 1
    assert requests["server"] >= 3  # each read singly before its reinstall
    assert methods(caplog) == ["singles (5003 servers, 3 to do: paging would cost 6 calls)"]


async def test_a_lone_server_costs_no_list_call(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(1, projects=1)
    sim = await start_sim(inventory, extra_servers=50)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    assert campaign.exit_code == 0
    requests = sim.stats()["requests"]
    assert requests["list_v1"] == requests["list_nova"] == 0
    assert requests["server"] >= 1


async def test_a_server_the_pages_do_not_show_is_read_singly_before_it_is_failed(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(12, projects=1)
    fleet = load_fleet(inventory)
    _, gone = fleet[5]
    sim = await start_sim(inventory, fleet=[pair for pair in fleet if pair[1] != gone])

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    assert campaign.exit_code == 1
    stats = sim.stats()
    assert gone not in stats["reinstalls_by_server"]
    assert set(stats["reinstalls_by_server"].values()) == {1}
    [target] = [t for t in campaign.targets() if t.server_id == gone]
    assert target.state is S.FAILED and target.error_code == "Ecs.0114"
    assert "does not exist" in (campaign.events(target.id)[-1].detail or "")
    # Its absence from the page was not taken as proof: the server itself was asked.
    assert stats["requests"]["server"] >= 1


async def test_lists_that_fail_are_replaced_by_single_reads_and_job_queries(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(10, projects=1)
    fleet = load_fleet(inventory)
    # The Nova list is not offered here (404 APIGW.0101): the project's pages were read,
    # but no tick can vouch for them once they are old.
    sim = await start_sim(inventory, job_seconds=(0.3, 0.6), unoffered=("list_nova",))

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    assert campaign.exit_code == 0
    assert_each_once(sim, fleet)
    requests = sim.stats()["requests"]
    assert requests["list_nova"] >= 1
    assert requests["server"] + requests["job"] >= 10  # each followed by its own reads


async def test_lists_and_single_reads_each_keep_to_the_poll_rate(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(30, projects=3)
    sim = await start_sim(inventory, job_seconds=(0.2, 0.4))

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(rate=100.0, poll_rate=8.0, first_poll=0.05)
    )

    assert campaign.exit_code == 0
    # Single reads and job queries share one limiter; the list calls have their own at
    # the same rate (the gateway limits each API on its own), so a tick never waits
    # behind the reads it spares.
    for kinds in (("server", "job"), ("list_v1", "list_nova")):
        times = sorted(t for kind in kinds for t in sim.stats()["request_times"][kind])
        assert times, kinds
        busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
        assert busiest <= 8 + 1, kinds
