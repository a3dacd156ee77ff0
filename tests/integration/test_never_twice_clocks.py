"""Never twice when clocks step or disagree: regression tests over loopback HTTP.

This host's wall clock is stepped with time-machine, which moves what `time.time()`
and `datetime.now()` return in this process and leaves `time.monotonic()` alone, as
NTP or a restored VM does. The simulator plays a service on another machine: its
clock is real time carried on the monotonic clock (`service_clock`), so no step here
moves it, and its `clock_offset` sets it apart from this host's on purpose.

Each test fails on the code that judged the quiet period and the service's times on
this host's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from gateway import Action, Gateway, Request
from never_twice_helpers import Drive, assert_never_twice

from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator
from orchestrator.simulator.errors import ApiFault

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
S = TargetState

_SERVICE_EPOCH = time.time() - time.monotonic()


def service_clock() -> float:
    """The service's clock: real time, unmoved by any step of this host's wall clock."""
    return _SERVICE_EPOCH + time.monotonic()


@pytest.fixture
def wall() -> Iterator[time_machine.Coordinates]:
    """This host's wall clock, to be stepped with `.shift(seconds)`."""
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        yield traveller


def when_all_sent(
    sim: Simulator, count: int, then: Callable[[], None], after: float = 0.0
) -> Callable[[Runner], Awaitable[None]]:
    """A side task for `Driven.run`: once the service has acted on `count` reinstalls
    (and `after` seconds more), call `then`."""

    async def side(runner: Runner) -> None:
        while sim.stats()["reinstalls_total"] < count:
            await asyncio.sleep(0.01)
        await asyncio.sleep(after)
        then()

    return side


async def test_a_wall_clock_stepped_forward_does_not_end_the_quiet_period(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
    wall: time_machine.Coordinates,
) -> None:
    """Answers lost after the service acted, jobs queued in INIT for 3 s, and this
    host's clock stepped 15 minutes forward right after the sends: the quiet period
    was judged over at once and the queued jobs' servers were sent more reinstalls."""
    inventory = make_inventory(3, projects=1, seed=91)
    sim = await start_sim(
        inventory,
        clock=service_clock,
        error_after_acting_rate=1.0,
        queue_seconds=(3.0, 3.0),
        job_seconds=(0.3, 0.3),
    )
    run = driven(inventory, sim)
    # The step is the point here, not the guard against a skewed clock.
    settings = fast_settings(settle_delay=0.2, settle_quiet=5.0, max_clock_skew=3600.0)

    outcome = await run.run(settings, during=when_all_sent(sim, 3, lambda: wall.shift(900)))

    assert_never_twice(sim.stats(), inventory)
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert outcome.exit_code == 0


async def test_a_wall_clock_stepped_back_does_not_stretch_the_quiet_period(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
    stack: contextlib.AsyncExitStack,
    wall: time_machine.Coordinates,
) -> None:
    """The first reinstall of each server lost before it reached the service (answered
    503 by the gateway, so nothing moves), and this host's clock stepped 15 minutes
    back: the quiet period waited for the wall clock to catch up."""
    inventory = make_inventory(2, projects=1, seed=96)
    sim = await start_sim(inventory, clock=service_clock)
    gw = await stack.enter_async_context(Gateway(sim.url))
    refused: set[str] = set()

    def refuse_each_first_reinstall(request: Request) -> Action:
        if request.kind == "reinstall" and request.ident not in refused:
            refused.add(request.ident or "")
            if len(refused) == 2:
                wall.shift(-900)
            return ApiFault("Common.0001")  # 500 after sending: the outcome is unknown
        return None

    gw.rule = refuse_each_first_reinstall
    run = driven(inventory, sim)
    run.url = gw.url
    settings = fast_settings(settle_delay=0.2, settle_quiet=2.0, max_clock_skew=3600.0)

    outcome = await run.run(settings)

    assert_never_twice(sim.stats(), inventory)
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert {t.attempts for t in run.targets()} == {2}
    assert outcome.exit_code == 0


async def test_a_resume_on_a_host_whose_clock_is_ahead_watches_the_whole_quiet_period(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
    wall: time_machine.Coordinates,
) -> None:
    """A campaign stopped at once with its answers lost and its jobs queued, taken up
    by a host whose clock is 15 minutes ahead (the PostgreSQL takeover): the quiet
    period counted from the other host's intent time was over at once."""
    inventory = make_inventory(3, projects=1, seed=92)
    sim = await start_sim(
        inventory,
        clock=service_clock,
        error_after_acting_rate=1.0,
        queue_seconds=(4.0, 4.0),
        job_seconds=(0.3, 0.3),
    )
    run = driven(inventory, sim)
    settings = fast_settings(settle_delay=0.2, settle_quiet=6.0, max_clock_skew=3600.0)
    halt = asyncio.Event()

    first = await run.run(settings, halt=halt, during=when_all_sent(sim, 3, halt.set, 0.3))
    assert first.stopped
    assert {t.state for t in run.targets()} == {S.IN_DOUBT}, run.explain()

    wall.shift(15 * 60)
    second = await run.run(settings)

    assert_never_twice(sim.stats(), inventory)
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert second.exit_code == 0


async def test_a_host_clock_far_from_the_services_stops_the_run_before_anything_is_sent(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The service's Date headers say its clock is 10 minutes behind this host's."""
    inventory = make_inventory(3, projects=1, seed=93)
    sim = await start_sim(inventory, clock_offset=-600.0)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(preflight=False))

    assert campaign.exit_code == 2
    assert sim.stats()["reinstalls_total"] == 0
    assert {t.state for t in campaign.targets()} == {S.PENDING}
    assert {t.attempts for t in campaign.targets()} == {0}
    aborted = campaign.result.outcome.aborted or ""
    assert "ahead of the service's" in aborted and "--max-clock-skew 60" in aborted, aborted


async def test_lost_answers_are_judged_on_the_services_clock_not_this_hosts(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Without preflight (no reading before the request) and with this host's clock
    10 minutes ahead of the service's (allowed here), every answer lost after the
    service acted. Judged against the intent less a fixed 5 minutes of this host's
    clock, each relaunch looked older than the intent: "not accepted", sent again,
    four reinstalls per server."""
    inventory = make_inventory(3, projects=1, seed=94)
    # Jobs longer than a Date header's one-second resolution (a real one takes minutes),
    # ended before the first settling read.
    sim = await start_sim(
        inventory, clock_offset=-600.0, error_after_acting_rate=1.0, job_seconds=(1.5, 1.5)
    )
    settings = fast_settings(
        preflight=False, settle_delay=2.0, settle_quiet=3.0, max_clock_skew=3600.0
    )

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    assert_never_twice(sim.stats(), inventory)
    targets = campaign.targets()
    assert {t.state for t in targets} == {S.SUCCEEDED}, targets
    assert {t.attempts for t in targets} == {1}
    assert campaign.exit_code == 0


async def test_a_clock_step_while_a_job_waits_teaches_nothing_about_the_service(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
    wall: time_machine.Coordinates,
) -> None:
    """Jobs queued 2 s, and this host's clock stepped a day ahead while they wait: the
    quiet period was "raised" to two days and stored, and every later doubt of the
    campaign would have waited that long."""
    inventory = make_inventory(3, projects=1, seed=95)
    sim = await start_sim(
        inventory, clock=service_clock, queue_seconds=(2.0, 2.0), job_seconds=(0.3, 0.3)
    )
    run = driven(inventory, sim)
    settings = fast_settings(settle_quiet=1.0)

    outcome = await run.run(settings, during=when_all_sent(sim, 3, lambda: wall.shift(86_400)))

    assert outcome.exit_code == 0, run.explain()
    with run.open_readonly() as store:
        learned = store.meta_value("settle_quiet_learned")
    # Learned on the service's clock: about twice the 2 s queue, and never past the
    # ceiling (four times --settle-quiet).
    assert learned is not None and 3.5 <= float(learned) <= 4.0, learned
