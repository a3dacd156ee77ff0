"""Regression tests of issue 7 (never twice, never lost), over loopback HTTP.

Each test reproduces one finding of the issue against the simulator with the
timing a real ECS may have (jobs queued in INIT, a withStopServer power-off
phase, answers lost after the service acted) and fails on the code before the
fix (bbdba76); the finding's number is in each test's docstring.

Tests that need to act in the middle of a run (a stop, a slow state file) drive
`Runner` directly on a real state file and a real client, as `campaign.execute`
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from client_helpers import free_port
from gateway import LOSE, Action, Gateway, Request
from hostile_server import HostileServer
from never_twice_helpers import (
    Drive,
    Driven,
    assert_never_twice,
    run_until_not_accepted,
    with_mode,
)

import orchestrator.engine.submitting as submitting_module
from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.reachability import Reachability
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.runner import Runner, RunSettings
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator, load_fleet
from orchestrator.simulator.errors import ApiFault
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]
S = TargetState


# -- 1: a reinstall acted on but answered 5xx is never sent twice ------------------------


async def test_5xx_after_acting_while_the_job_is_queued_is_not_sent_again(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 1 (queued): before the fix the doubt was settled "not accepted" after
    settle_delay while the job sat in INIT, and the reinstall was sent again.
    Finding 3 (second half): the success clears the error of the lost answer."""
    inventory = make_inventory(4, projects=2, seed=71)
    sim = await start_sim(
        inventory, error_after_acting_rate=1.0, queue_seconds=(1.5, 2.0), job_seconds=(0.2, 0.4)
    )

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(settle_delay=0.2, settle_quiet=3.0)
    )

    assert_never_twice(sim.stats(), inventory)
    assert sim.stats()["errors_after_acting"] == 4
    targets = campaign.targets()
    assert {t.state for t in targets} == {S.SUCCEEDED}, targets
    assert all(t.error_code is None and t.fail_reason is None for t in targets)
    assert campaign.exit_code == 0


async def test_5xx_after_acting_while_the_server_powers_off_is_not_sent_again(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 1 (withStopServer): ACTIVE with task state powering-off, then SHUTOFF, is
    the service at work; before the fix it was settled "not accepted" and resent."""
    inventory = with_mode(make_inventory(4, projects=2, seed=72))
    sim = await start_sim(
        inventory,
        running_rate=1.0,
        error_after_acting_rate=1.0,
        power_off_seconds=(1.0, 1.2),
        stopped_seconds=(0.5, 0.8),
        job_seconds=(0.2, 0.4),
    )

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(settle_delay=0.2, settle_quiet=3.0)
    )

    assert_never_twice(sim.stats(), inventory)
    targets = campaign.targets()
    assert {t.state for t in targets} == {S.SUCCEEDED}, targets
    assert all(t.error_code is None for t in targets)


# -- 2: a graceful stop, then two resumes: nothing reinstalled twice --------------------


async def test_stop_with_queued_jobs_then_two_resumes_never_reinstall_twice(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 2: the drain settled "not accepted" too early, the first resume deferred
    the target as busy "not by this run", and the second resume sent a second
    reinstall to a server already reinstalled."""
    inventory = make_inventory(4, projects=2, seed=73)
    sim = await start_sim(inventory, drop_rate=1.0, queue_seconds=(1.5, 2.0))
    run = driven(inventory, sim)
    settings = fast_settings(settle_delay=0.2, settle_quiet=3.0, drain_timeout=0.5)

    stop = asyncio.Event()

    async def stop_once_all_sent(runner: Runner) -> None:
        while sim.stats()["dropped"] < 4:
            await asyncio.sleep(0.02)
        stop.set()

    first = await run.run(settings, stop=stop, during=stop_once_all_sent)
    assert first.stopped and not first.complete
    assert {t.state for t in run.targets()} == {S.IN_DOUBT}, run.explain()

    second = await run.run(settings)  # the jobs are still queued or rebuilding
    third = await run.run(settings)

    assert second.complete and third.complete, run.explain()
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert_never_twice(sim.stats(), inventory)


async def test_a_resume_after_an_attempt_that_was_acted_on_late_does_not_send_again(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 2: the pre-send check ignored the target's earlier attempts. An attempt
    settled "not accepted" (here with a quiet period shorter than the queue: the
    assumption broken on purpose) that the service acted on after all must not be
    sent again by the resume: the server's launched_at moved since the first attempt."""
    inventory = make_inventory(1, projects=1, seed=83)
    sim = await start_sim(inventory, drop_rate=1.0, queue_seconds=(1.0, 1.0))
    run = driven(inventory, sim)
    hasty = fast_settings(settle_delay=0.1, settle_quiet=0.3, drain_timeout=0.5)
    await run_until_not_accepted(run, hasty)
    deadline = time.monotonic() + 10
    while sim.stats()["jobs"].get("SUCCESS", 0) < 1:  # the "not accepted" job ran after all
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    outcome = await run.run(fast_settings(settle_quiet=3.0))

    [target] = run.targets()
    assert target.state is S.SUCCEEDED, run.explain()
    assert outcome.exit_code == 0
    assert "an earlier attempt shows on the server" in run.explain()
    assert_never_twice(sim.stats(), inventory)


# -- 3: a rebuild that fails, followed from the server, is never a success ---------------


async def test_a_failed_rebuild_followed_by_server_is_failed_not_succeeded(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 3: no job id (the answer was a 5xx), the job FAILs, the server goes back
    to SHUTOFF with launched_at unchanged; before the fix that was "succeeded"."""
    inventory = make_inventory(3, projects=1, seed=74)
    sim = await start_sim(
        inventory,
        error_after_acting_rate=1.0,
        job_fail_rate=1.0,
        fail_to_error_rate=0.0,
        job_seconds=(0.5, 0.8),
    )

    campaign = await run_campaign(
        inventory, sim=sim, settings=fast_settings(settle_delay=0.2, settle_quiet=3.0)
    )

    targets = campaign.targets()
    assert sim.stats()["jobs"]["FAIL"] == 3
    assert [t.state for t in targets] == [S.FAILED] * 3, targets
    assert {t.error_code for t in targets} == {"Orchestrator.NotVerified"}
    assert all("shows no reinstall" in (t.fail_reason or "") for t in targets)
    assert campaign.exit_code == 1
    assert_never_twice(sim.stats(), inventory)


async def test_a_doubt_with_a_job_id_found_rebuilding_is_decided_by_the_jobs_fail(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
    stack: contextlib.AsyncExitStack,
) -> None:
    """Finding 3 (second half): a target in doubt that has a job id (its job queries
    kept failing) and is found rebuilding lost the job id and was followed from the
    server, so the job's FAIL was never read. Kept, the job's end decides: failed
    with the job's own code, never succeeded."""
    inventory = make_inventory(1, projects=1, seed=84)
    # The job FAILs after 3 s of REBUILD; the server goes back to SHUTOFF, launched_at
    # unchanged (followed from the server, that is Orchestrator.NotVerified instead).
    sim = await start_sim(
        inventory, job_fail_rate=1.0, fail_to_error_rate=0.0, job_seconds=(3.0, 3.0)
    )
    gw = await stack.enter_async_context(Gateway(sim.url))

    def rebuild_reads() -> list[float]:
        return [c.at for c in gw.calls if c.request.kind == "server" and c.status == "REBUILD"]

    def job_api_down_until_rebuild_seen(request: Request) -> Action:
        # The preflight read shows SHUTOFF, so the first REBUILD read is the settlement's.
        if request.kind == "job" and not rebuild_reads():
            return ApiFault("APIGW.0203")  # 503: the job API is down for now
        return None

    gw.rule = job_api_down_until_rebuild_seen
    campaign = await run_campaign(
        inventory,
        endpoint=gw.url,
        credentials=TokenAuth(sim.config.token or ""),
        settings=fast_settings(query_failures_to_settle=2, settle_quiet=3.0, job_timeout=10.0),
    )

    [target] = campaign.targets()
    details = [e.detail for e in campaign.events(target.id)]
    # In doubt that way: its job queries failed, the job id was known.
    assert gw.count("job", fate="APIGW.0203") >= 2, details
    assert any(d.startswith("job query kept failing") for d in details), details
    assert any("settled: following, server is rebuilding" in d for d in details), details
    # The job was asked after the server was seen rebuilding, and its FAIL was read.
    stats = sim.stats()
    assert max(stats["request_times"]["job"], default=0.0) > min(rebuild_reads())
    fails = [c.answer for c in gw.calls if c.request.kind == "job" and c.status == "FAIL"]
    assert fails, details
    job = fails[-1]
    assert job is not None and target.job_id == job["job_id"]
    assert target.state is S.FAILED, details
    assert (target.error_code, target.fail_reason) == (job["error_code"], job["fail_reason"])
    assert not any(e.to_state == S.SUCCEEDED.value for e in campaign.events(target.id))
    assert campaign.exit_code == 1
    assert stats["jobs"]["FAIL"] == 1
    assert_never_twice(stats, inventory)


async def test_a_forgotten_job_of_a_failed_rebuild_is_followed_from_the_server(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
    stack: contextlib.AsyncExitStack,
) -> None:
    """A job the service no longer knows (Common.0011) cannot decide anything: settled
    with its job id kept, the target went back to the job, which was forgotten again,
    in doubt again, ... until --job-timeout. Followed from the server instead, a
    rebuild that ends without a relaunch fails at once (never resent, never succeeded)."""
    inventory = make_inventory(1, projects=1, seed=85)
    # The rebuild FAILs after 2 s: the server goes back to SHUTOFF, launched_at unchanged.
    sim = await start_sim(
        inventory, job_fail_rate=1.0, fail_to_error_rate=0.0, job_seconds=(2.0, 2.0)
    )
    gw = await stack.enter_async_context(Gateway(sim.url))
    gw.rule = lambda request: ApiFault("Common.0011") if request.kind == "job" else None
    campaign = await run_campaign(
        inventory,
        endpoint=gw.url,
        credentials=TokenAuth(sim.config.token or ""),
        settings=fast_settings(settle_quiet=3.0, job_timeout=20.0),
    )

    [target] = campaign.targets()
    details = [e.detail for e in campaign.events(target.id)]
    assert any("no longer knows job" in d for d in details), details
    assert target.state is S.FAILED, details
    assert target.error_code == "Orchestrator.NotVerified", details
    # Not by --job-timeout: once forgotten, the job is not asked about in a loop.
    assert gw.count("job", fate="Common.0011") <= 3, details
    assert not any(e.to_state == S.SUCCEEDED.value for e in campaign.events(target.id))
    stats = sim.stats()
    assert stats["jobs"]["FAIL"] == 1
    assert_never_twice(stats, inventory)


# -- 4: the resend cap holds across a resume ------------------------------------------------


async def test_the_resend_cap_is_stored_and_holds_across_a_resume(
    make_inventory: Callable[..., Path],
    stack: contextlib.AsyncExitStack,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 4: the count of "not accepted" settlements restarted at each resume, so
    a target the service never acts on was sent again without end."""
    inventory = make_inventory(1, projects=1, seed=75)
    # Every answer lost, nothing ever done: each attempt is settled "not accepted".
    api = await stack.enter_async_context(HostileServer(reinstall="drop", act=False))
    run = driven(inventory, api)
    settings = fast_settings(settle_delay=0.1, settle_quiet=0.5, max_resends=1, drain_timeout=0)
    await run_until_not_accepted(run, settings)
    sent_before = api.count("reinstall")
    assert sent_before == 1

    outcome = await run.run(settings)

    [target] = run.targets()
    assert target.state is S.FAILED, run.explain()
    assert target.error_code == "Orchestrator.NotAccepted"
    assert target.not_accepted == 2
    assert outcome.exit_code == 1
    # The resume sent once more (a cap of 1 resend in all), not max_resends + 1 afresh.
    assert api.count("reinstall") == 2


async def test_targets_deferred_after_recovery_past_the_first_feed_page_are_not_fed_again(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    fast_settings: Callable[..., RunSettings],
    stack: contextlib.AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Finding 4: feed paging re-read targets deferred after recovery. Two targets on
    the third page of the feed are in doubt at the resume; settled "not accepted",
    resent once (the cap) and refused past the retry budget, they are deferred; the
    feed, reaching their page later in the run, sent them again."""
    monkeypatch.setattr(submitting_module, "FEED_PAGE", 2)
    inventory = make_inventory(6, projects=1, seed=85)
    sim = await start_sim(inventory, job_seconds=(0.1, 0.2))
    gw = await stack.enter_async_context(Gateway(sim.url))
    run = Driven(tmp_path, inventory, gw.url, sim.config.token or "")
    retry = RetrySettings(attempts=4, max_delay=1.0, backoff_base=0.02, backoff_cap=0.2)
    # Two in flight at most: the two recovered targets hold both slots, so the feed
    # reads its pages only as they leave, and reaches the third after they were deferred.
    common: dict[str, Any] = {"max_in_flight": 2, "max_resends": 1, "settle_quiet": 0.5}
    settings = fast_settings(retry=retry, **common)

    # Run 1, on the third page only: both reinstalls are lost on the way (the
    # simulator never sees them) and the run stops while they are in doubt.
    store = run.open()
    targets = sorted(store.iter_targets(), key=lambda t: t.id)
    early, late = targets[:4], targets[4:]
    late_ids = {t.id for t in late}
    store.limit_feed(late_ids)
    gw.rule = lambda request: LOSE if request.kind == "reinstall" else None
    stop = asyncio.Event()

    async def stop_once_in_doubt(runner: Runner) -> None:
        while {t.state for t in run.targets() if t.id in late_ids} != {S.IN_DOUBT}:
            await asyncio.sleep(0.02)
        stop.set()

    first = await run.run(
        fast_settings(settle_delay=5.0, drain_timeout=0, **common),
        store=store,
        stop=stop,
        during=stop_once_in_doubt,
    )
    assert first.stopped and gw.count("reinstall", fate="lost") == 2, run.explain()
    states = {t.id: t.state for t in run.targets()}
    assert [states[t.id] for t in targets] == [S.PENDING] * 4 + [S.IN_DOUBT] * 2

    # Run 2 (the resume): the service throttles the late two, before acting. (Not a
    # 501 Ecs.0603: that one is settled from the server, never retried.)
    throttled = ApiFault("Common.1503")
    late_servers = {t.server_id for t in late}
    gw.rule = lambda r: throttled if r.kind == "reinstall" and r.ident in late_servers else None
    sent_before = {s: gw.count("reinstall", s) for s in late_servers}

    second = await run.run(settings)

    after = {t.id: t for t in run.targets()}
    assert [after[t.id].state for t in early] == [S.SUCCEEDED] * 4, run.explain()
    for t in late:  # deferred, not lost: pending for the next invocation
        assert after[t.id].state is S.PENDING, run.explain()
        assert after[t.id].not_accepted == 1
        assert after[t.id].attempts == 1 + 1  # the lost send, and the one resend allowed
    assert second.deferred == 2
    # One resend each in this run (one intent: attempts above), tried within its retry
    # budget; before the fix the feed sent each a second time when it read the third
    # page, a second budget later.
    sent = {s: gw.count("reinstall", s) - sent_before[s] for s in late_servers}
    assert all(n >= 1 for n in sent.values()), sent
    for s in late_servers:
        times = [c.at for c in gw.calls if c.request.kind == "reinstall" and c.request.ident == s]
        resent = times[sent_before[s] :]
        assert resent[-1] - resent[0] <= retry.max_delay + retry.backoff_cap + 0.5, resent
    assert sim.stats()["reinstalls_by_server"] == {t.server_id: 1 for t in early}

    # Run 3: the service takes them now; each is reinstalled once.
    gw.rule = lambda request: None
    third = await run.run(settings)

    assert third.exit_code == 0, run.explain()
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}
    assert {s: gw.count("reinstall", s) - sent_before[s] - sent[s] for s in late_servers} == {
        s: 1 for s in late_servers
    }
    assert_never_twice(sim.stats(), inventory)


# -- 5: a target requeued while the last feed page is read is still sent ---------------------


async def test_a_target_requeued_while_the_last_page_is_read_is_still_sent(
    make_inventory: Callable[..., Path],
    stack: contextlib.AsyncExitStack,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 5: every submit worker was inside the read of the last, empty feed page
    when the target went back to pending; none looked at the requeued list again
    and the run hung."""
    inventory = make_inventory(1, projects=1, seed=76)
    api = await stack.enter_async_context(HostileServer(reinstall="drop", act=False))
    run = driven(inventory, api)
    settings = fast_settings(settle_delay=0.1, settle_quiet=0.5, max_resends=1)
    requeued = asyncio.Event()

    async def slow_last_page(runner: Runner) -> None:
        # The empty page comes back only once the target was requeued meanwhile.
        writer = runner._run.writer  # the race is between its calls
        call = writer.call

        async def slowed(fn: Callable[..., Any], *args: Any) -> Any:
            result = await call(fn, *args)
            if getattr(fn, "__name__", "") == "pending_after" and not result:
                await asyncio.wait_for(requeued.wait(), 10)
                await asyncio.sleep(0.1)  # let the requeue's wake-up go by
            return result

        writer.call = slowed  # type: ignore[method-assign]
        while not any(t.not_accepted for t in run.targets()):
            await asyncio.sleep(0.02)
        requeued.set()
        await asyncio.Event().wait()

    # Installed before the first page is read: the runner is built, then run.
    outcome = await run.run(settings, during=slow_last_page)

    [target] = run.targets()
    assert requeued.is_set()
    assert target.state is S.FAILED and target.error_code == "Orchestrator.NotAccepted"
    assert target.attempts == 2, run.explain()
    assert api.count("reinstall") == 2
    assert outcome.complete


# -- 9: a stop during the intent commit stops the send ---------------------------------------


class SlowIntentStore(StateStore):
    """Commits of an intent take a while, and say when they begin."""

    intent_started = threading.Event()

    def apply(
        self, changes: Sequence[Change], counters: Mapping[str, int] | None = None
    ) -> list[bool]:
        if any(c.new is S.SUBMITTING for c in changes):
            type(self).intent_started.set()
            time.sleep(0.5)
        return super().apply(changes, counters)


async def test_a_stop_during_the_intent_commit_sends_nothing(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 9: the stop was checked before the intent commit only, so a stop that
    arrived during it let the reinstall out."""
    inventory = make_inventory(1, projects=1, seed=77)
    sim = await start_sim(inventory)
    run = driven(inventory, sim)
    SlowIntentStore.intent_started = threading.Event()
    stop = asyncio.Event()

    async def stop_during_commit(runner: Runner) -> None:
        while not SlowIntentStore.intent_started.is_set():
            await asyncio.sleep(0.01)
        stop.set()

    outcome = await run.run(
        fast_settings(), store=run.open(SlowIntentStore), stop=stop, during=stop_during_commit
    )

    assert outcome.stopped
    [target] = run.targets()
    assert target.state is S.PENDING, run.explain()
    assert target.attempts == 0  # no request left: the attempt is not counted
    assert sum(sim.stats()["reinstall_requests_by_api"].values()) == 0
    assert sim.stats()["reinstalls_total"] == 0


# -- 10: a bare 404 is a wrong endpoint, not a missing server --------------------------------


async def test_a_bare_404_stops_the_run_and_a_resume_with_the_right_endpoint_finishes(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
) -> None:
    """Finding 10: every target got a 404 without the ECS error body (a wrong path
    prefix) and was failed for good as Ecs.0114; a resume retried nothing."""
    inventory = make_inventory(3, projects=1, seed=78)
    sim = await start_sim(inventory)
    wrong = sim.url + "/wrong-prefix"

    first = await run_campaign(inventory, endpoint=wrong, credentials=TokenAuth("x"))

    assert first.exit_code == 2
    assert first.result.outcome.aborted is not None
    assert "404" in first.result.outcome.aborted
    assert "/wrong-prefix" in first.result.outcome.aborted
    assert {t.state for t in first.targets()} == {S.PENDING}
    assert sim.stats()["reinstalls_total"] == 0

    second = await run_campaign(inventory, sim=sim, state_path=first.state_path)

    assert second.exit_code == 0
    assert {t.state for t in second.targets()} == {S.SUCCEEDED}
    assert_never_twice(sim.stats(), inventory)


# -- 11: an endpoint that cannot be reached stops the run early ---------------------------------


async def test_nothing_listening_stops_the_run_early_with_exit_2(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 11: each target was retried and deferred one by one, for minutes."""
    inventory = make_inventory(30, projects=2, seed=79)
    sim = await start_sim(inventory)
    run = driven(inventory, sim)
    began = time.monotonic()

    outcome = await run.run(
        fast_settings(),
        url=f"http://127.0.0.1:{free_port()}",
        reachability=Reachability(threshold=5, min_seconds=0.2),
    )

    assert time.monotonic() - began < 10
    assert outcome.exit_code == 2 and outcome.misconfigured
    assert outcome.aborted is not None and "cannot reach" in outcome.aborted
    assert {t.state for t in run.targets()} == {S.PENDING}
    assert sim.stats()["reinstalls_total"] == 0


async def test_an_endpoint_lost_after_answering_stops_the_run_with_exit_3(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    """Finding 11: reached, then lost: a resume later may finish it (exit 3, not 2)."""
    inventory = make_inventory(20, projects=2, seed=80)
    sim = await start_sim(inventory, queue_seconds=(5.0, 5.0))
    run = driven(inventory, sim)

    async def lose_the_endpoint(runner: Runner) -> None:
        while sim.stats()["reinstalls_total"] < 3:
            await asyncio.sleep(0.02)
        await sim.stop()

    outcome = await run.run(
        fast_settings(rate=5.0),
        reachability=Reachability(threshold=5, min_seconds=0.2),
        during=lose_the_endpoint,
    )

    assert outcome.exit_code == 3, outcome
    assert not outcome.misconfigured
    assert outcome.aborted is not None and "cannot reach" in outcome.aborted


# -- the quiet period is learned ---------------------------------------------------------------


async def test_the_quiet_period_is_raised_when_a_job_starts_later_than_it(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inventory = make_inventory(2, projects=1, seed=81)
    sim = await start_sim(inventory, queue_seconds=(1.5, 1.5), job_seconds=(0.2, 0.3))

    caplog.set_level("WARNING", logger="orchestrator.run")
    campaign = await run_campaign(inventory, sim=sim, settings=fast_settings(settle_quiet=1.0))

    assert campaign.exit_code == 0
    raised = [r.getMessage() for r in caplog.records if "quiet period is raised" in r.message]
    assert raised, [r.getMessage() for r in caplog.records]
    with campaign.store() as store:
        learned = store.meta_value("settle_quiet_learned")
    assert learned is not None and float(learned) >= 3.0  # at least 2 x 1.5 s


# -- --skip-reinstalled-since ------------------------------------------------------------------


async def test_skip_reinstalled_since_skips_servers_relaunched_after_the_time(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., RunSettings],
) -> None:
    inventory = make_inventory(4, projects=1, seed=82)
    sim = await start_sim(inventory)
    fleet = load_fleet(inventory)
    first_two = make_inventory(4, projects=1, seed=82, name="first-two.csv")
    lines = first_two.read_text(encoding="utf-8").splitlines()
    first_two.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    since = datetime.now(UTC)
    time.sleep(0.01)
    done = await run_campaign(first_two, sim=sim)
    assert done.exit_code == 0

    again = await run_campaign(
        inventory, sim=sim, settings=fast_settings(skip_reinstalled_since=since)
    )

    states = {t.server_id: t.state for t in again.targets()}
    assert [states[s] for _, s in fleet] == [S.SKIPPED, S.SKIPPED, S.SUCCEEDED, S.SUCCEEDED]
    assert again.exit_code == 0
    assert_never_twice(sim.stats(), inventory)
