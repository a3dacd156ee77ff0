"""Evidence that does not lean on one undocumented field, over loopback HTTP.

Each test puts the simulator in a world the real ECS may be in, with the answer that
is hardest for the orchestrator (a job queued longer than the quiet period, a busy
refusal caused by our own queued job, a second reinstall accepted rather than
refused, ...) and checks that the run is still right: no server reinstalled twice,
none reported succeeded without evidence, none failed on a field that did not move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from never_twice_helpers import Drive, assert_never_twice, run_until_not_accepted, with_mode

from orchestrator.cloud.auth import AkSkAuth
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator, SimulatorConfig, load_fleet
from orchestrator.simulator.faults import Scripted, ScriptedFaults

AK = "HPUTESTACCESSKEY0042"
SK = "the-secret-key-never-echoed-42"
StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
S = TargetState


def assert_acted_on_once(stats: dict[str, Any], inventory: Path) -> None:
    """The service acted on exactly one reinstall per server (requests it refused aside)."""
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}
    assert stats["reinstalled_after_success"] == []


def events_of(campaign: Any) -> str:
    with campaign.store() as store:
        return "\n".join(
            f"{t.server_id[:8]} {e.to_state}: {e.detail}"
            for t in store.iter_targets()
            for e in store.events(t.id)
        )


# -- a 501 Ecs.0603 to a reinstall is settled from the server, never retried ------------


async def test_a_busy_refusal_caused_by_our_own_queued_job_is_settled_not_retried(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The first reinstall is acted on but its answer lost, and its job waits in INIT
    longer than the quiet period (broken on purpose), so the doubt is settled "not
    accepted". The resume sends it again; the service refuses with 501 Ecs.0603: our
    own job is queued. Before the fix the 501 was retried for minutes, and the retry
    that landed after our job ended was a second reinstall."""
    # withStopServer: a server the first job left ACTIVE takes a second one.
    inventory = with_mode(make_inventory(1, projects=1, seed=91))
    sim = await start_sim(
        inventory, drop_rate=1.0, queue_seconds=(3.0, 3.0), job_seconds=(0.0, 0.0)
    )
    run = driven(inventory, sim)
    hasty = fast_settings(settle_delay=0.1, settle_quiet=0.3, drain_timeout=0.5)
    await run_until_not_accepted(run, hasty)

    # A retry budget that outlasts the queue: the old code kept sending until taken.
    patient = RetrySettings(attempts=100, max_delay=30.0, backoff_base=0.05, backoff_cap=0.3)
    outcome = await run.run(fast_settings(settle_quiet=5.0, retry=patient))

    stats = sim.stats()
    assert_acted_on_once(stats, inventory)
    assert stats["errors_by_code"].get("Ecs.0603") == 1, run.explain()
    [target] = run.targets()
    assert target.state is S.SUCCEEDED, run.explain()
    assert outcome.exit_code == 0
    assert "refused as busy: HTTP 501 Ecs.0603" in run.explain()


# -- jobs are kept one day; PENDING_PAYMENT; statuses not known --------------------------


class ShiftedClock:
    """This machine's wall clock, moved forward by hand: the service's clock a day on."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


async def test_a_resume_a_day_later_settles_forgotten_jobs_from_the_server(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The run stops with jobs accepted; the resume comes two days later, when the
    service has forgotten them (Common.0011): each target is settled from its server
    (the reinstall shows there), none is sent again."""
    inventory = make_inventory(3, projects=1, seed=92)
    clock = ShiftedClock()
    sim = await start_sim(inventory, clock=clock, job_seconds=(0.5, 0.8))
    run = driven(inventory, sim)
    stop = asyncio.Event()

    async def stop_once_all_accepted(runner: Runner) -> None:
        while sum(sim.stats()["reinstalls_by_server"].values()) < 3:
            await asyncio.sleep(0.02)
        stop.set()

    first = await run.run(fast_settings(drain_timeout=0), stop=stop, during=stop_once_all_accepted)
    assert first.stopped, run.explain()
    assert {t.state for t in run.targets()} <= {S.SUBMITTED, S.RUNNING}, run.explain()

    clock.shift = 2 * 86400.0  # two days on: every job ended and was forgotten
    second = await run.run(fast_settings())

    assert second.exit_code == 0, run.explain()
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert sim.stats()["errors_by_code"]["Common.0011"] == 3
    assert run.explain().count("the service no longer knows job") == 3
    assert_never_twice(sim.stats(), inventory)


async def test_a_job_pending_payment_is_reported_and_never_sent_again(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """A yearly/monthly server's reinstall waits for its order to be paid: the job says
    PENDING_PAYMENT, the server shows nothing. Noted as such, followed until the job
    timeout, then failed with a code of its own; never sent again."""
    inventory = make_inventory(2, projects=1, seed=93)
    sim = await start_sim(inventory, pending_payment_rate=1.0)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(job_timeout=1.5))

    targets = campaign.targets()
    assert {(t.state, t.error_code) for t in targets} == {
        (S.FAILED, "Orchestrator.PendingPayment")
    }, events_of(campaign)
    assert all("waits for the payment" in (t.fail_reason or "") for t in targets)
    assert events_of(campaign).count("PENDING_PAYMENT: the order of this yearly/monthly") == 2
    assert sim.stats()["reinstalls_by_server"] == {t.server_id: 1 for t in targets}
    assert campaign.exit_code == 1


# -- a frozen account and a refused key pair stop the run at once ----------------------


@pytest.mark.parametrize("status", [400, 403])
async def test_a_frozen_account_stops_the_run_with_nothing_done(
    status: int,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Ecs.0003 is the account's, not a server's: the run stops (exit 2, as refused
    credentials) with the reason, every target left as it was. Before, each target's
    read was refused in turn and the target deferred (exit 3), or failed as rejected."""
    inventory = make_inventory(6, projects=2, seed=94)
    sim = await start_sim(inventory, frozen_status=status)

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    outcome = campaign.result.outcome
    assert outcome.exit_code == 2
    assert outcome.credentials_refused
    assert "the account is refused (frozen" in (outcome.aborted or "")
    assert {t.state for t in campaign.targets()} == {S.PENDING}
    assert sim.stats()["reinstalls_by_server"] == {}


async def test_a_refused_key_pair_is_refused_once_and_the_run_stops(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """A wrong secret key: the first signed request is refused and nothing more is
    sent with the pair, so it is never locked (five failures lock it for five
    minutes, for every tool that uses it). Before, every worker sent its own request
    at the start and each was refused."""
    inventory = make_inventory(40, projects=4, seed=95)
    sim = await start_sim(inventory, token=None, ak=AK, sk=SK)

    campaign = await run_campaign(
        inventory,
        sim=sim,
        settings=fast_settings(),
        credentials=AkSkAuth(AK, "not-the-secret-key-0000000000000000"),
    )

    outcome = campaign.result.outcome
    assert outcome.exit_code == 2 and outcome.credentials_refused, outcome
    stats = sim.stats()
    assert stats["unauthorized"] == 1, stats["requests"]
    assert sum(stats["requests"].values()) == 1
    assert {t.state for t in campaign.targets()} == {S.PENDING}


# -- an API the region does not publish ------------------------------------------------


async def test_a_reinstall_api_not_published_here_stops_the_run_with_the_hint(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """OTC eu-de documents the Cloud-Init reinstall (v2), not v1: the gateway answers
    the v1 one 404 APIGW.0101. That is the endpoint's, not the servers': the run stops
    (exit 2) with what to try, and nothing is failed. Before, every target failed as if
    its server were missing."""
    inventory = make_inventory(4, projects=2, seed=96)
    sim = await start_sim(inventory, reinstall_apis=("v2",))

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings())

    outcome = campaign.result.outcome
    assert outcome.exit_code == 2 and outcome.misconfigured, outcome
    assert "404 APIGW.0101" in (outcome.aborted or "")
    assert "this API is not offered here" in (outcome.aborted or "")
    assert "try --cloud-init" in (outcome.aborted or "")
    # Nothing failed; an intent committed while the first answer came back stays
    # `submitting` (the stop cancels its worker), settled from the server by a resume.
    assert {t.state for t in campaign.targets()} <= {S.PENDING, S.SUBMITTING}, events_of(campaign)
    assert sim.stats()["reinstalls_by_server"] == {}


# -- a cloud that accepts a second reinstall and fails one or both ---------------------


async def test_a_cloud_that_accepts_a_second_reinstall_is_never_sent_one(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The service would accept a reinstall sent on top of a running one (and fail
    both), so no clean refusal protects the server: answers lost before and after the
    service acted, jobs queued and powering servers off, and still no second
    reinstall is ever sent while one may be under way."""
    inventory = with_mode(make_inventory(24, projects=2, seed=97))
    sim = await start_sim(
        inventory,
        second_reinstall="fail-both",
        running_rate=0.5,
        queue_seconds=(0.2, 1.0),
        power_off_seconds=(0.1, 0.4),
        drop_rate=0.3,
        error_after_acting_rate=0.2,
        error_rate=0.1,
    )

    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(settle_quiet=3.0))

    stats = sim.stats()
    assert stats["dropped"] and stats["errors_after_acting"], stats  # doubts were made
    assert (stats["accepted_second"], stats["overlapping_servers"]) == (0, [])
    assert_acted_on_once(stats, inventory)
    assert {t.state for t in campaign.targets()} == {S.SUCCEEDED}
    assert campaign.exit_code == 0


@pytest.mark.parametrize(
    ("world", "state", "says"),
    [
        ("fail-second", S.SUCCEEDED, "settled: accepted and finished (system disk replaced"),
        ("fail-both", S.FAILED, "settled: server is in ERROR after an uncertain reinstall"),
    ],
)
async def test_a_second_reinstall_accepted_and_failed_is_settled_from_the_server(
    world: str,
    state: TargetState,
    says: str,
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The first reinstall is acted on, its answer lost, and its job queued longer than
    the quiet period (broken on purpose), so it is settled "not accepted" and sent
    again while still queued. This cloud accepts the second and fails its job (and,
    "fail-both", the first too). The FAIL does not say which reinstall ran: the server
    is settled, and the outcome is what it shows (reinstalled by the first request, or
    in ERROR), never sent a third time. Before, the second job's FAIL was taken as the
    outcome: a server reinstalled by the first was reported failed."""
    inventory = make_inventory(1, projects=1, seed=98)
    faults = ScriptedFaults(SimulatorConfig())
    faults.script("reinstall", Scripted.DROP)
    sim = await start_sim(
        inventory,
        faults=faults,
        second_reinstall=world,
        queue_seconds=(2.0, 2.0),
        job_seconds=(0.1, 0.1),
    )
    run = driven(inventory, sim)
    hasty = fast_settings(settle_delay=0.1, settle_quiet=0.3, drain_timeout=0.5)
    await run_until_not_accepted(run, hasty)

    await run.run(fast_settings(settle_quiet=5.0))

    [target] = run.targets()
    assert target.state is state, run.explain()
    assert says in run.explain(), run.explain()
    assert "settled from the server, never sent again" in run.explain()
    stats = sim.stats()
    assert stats["accepted_second"] == 1  # the broken quiet period's doing, once
    assert stats["reinstalls_by_server"] == {target.server_id: 2}
    assert stats["successful_reinstalls_by_server"] == (
        {target.server_id: 1} if world == "fail-second" else {}
    )


# -- the audit trail (CTS) before a resend ---------------------------------------------


async def test_the_audit_trail_stops_a_resend_of_a_reinstall_queued_past_the_quiet_period(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """The answer is lost and the job waits in INIT longer than the quiet period: the
    server shows nothing, so the doubt would be settled "not accepted" and sent again.
    The audit trail records reinstallOs since the intent (delivered after 0.5 s, read
    after the 1 s delay): the server is followed instead, and reinstalled once."""
    inventory = make_inventory(2, projects=1, seed=99)
    sim = await start_sim(
        inventory, drop_rate=1.0, queue_seconds=(3.0, 3.0), job_seconds=(0.1, 0.1), trace_delay=0.5
    )
    settings = fast_settings(
        settle_delay=0.1, settle_quiet=0.3, audit_trail="cts", audit_trail_delay=1.0
    )

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    stats = sim.stats()
    assert (stats["overlapping_servers"], stats["accepted_second"]) == ([], 0), events_of(campaign)
    assert_acted_on_once(stats, inventory)
    assert {t.state for t in campaign.targets()} == {S.SUCCEEDED}, events_of(campaign)
    assert events_of(campaign).count("the audit trail (CTS) records reinstallOs at") == 2
    assert all(t.not_accepted == 0 for t in campaign.targets())
    assert stats["trace_queries"] >= 2


async def test_no_trace_is_evidence_of_absence_only_after_the_delivery_delay(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """A reinstall refused before the service saw it (a 500 the client cannot tell from
    a lost answer), so no trace will ever come: the resend waits until the trail's
    delivery delay has passed since the intent, then goes, and says why."""
    inventory = make_inventory(1, projects=1, seed=100)
    faults = ScriptedFaults(SimulatorConfig())
    faults.script("reinstall", Scripted.ERROR)
    sim = await start_sim(inventory, faults=faults, trace_delay=0.2)
    settings = fast_settings(
        settle_delay=0.1, settle_quiet=0.3, audit_trail="cts", audit_trail_delay=2.0
    )
    started = time.monotonic()

    campaign = await run_campaign(inventory, sim=sim, settings=settings)

    [target] = campaign.targets()
    assert target.state is S.SUCCEEDED and target.not_accepted == 1, events_of(campaign)
    text = events_of(campaign)
    assert "the audit trail (CTS) records no reinstall received since the intent" in text
    assert "(delivery delay 2 s)" in text
    assert time.monotonic() - started >= 2.0  # not sent again before the delay
    assert sim.stats()["reinstalls_by_server"] == {target.server_id: 1}
