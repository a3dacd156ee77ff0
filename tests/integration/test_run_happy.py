"""A clean run: every server reinstalled exactly once, state, report and events agree."""

from __future__ import annotations

import csv
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.model import TargetState
from orchestrator.simulator import Simulator, load_fleet

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]


async def test_happy_path_reinstalls_every_server_once(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    report_dir: Path,
) -> None:
    inventory = make_inventory(60, projects=4)
    fleet = load_fleet(inventory)
    sim = await start_sim(inventory)

    campaign = await run_campaign(inventory, sim=sim)

    outcome = campaign.result.outcome
    assert outcome.exit_code == 0
    assert (outcome.complete, outcome.stopped, outcome.aborted, outcome.deferred) == (
        True,
        False,
        None,
        0,
    )
    with campaign.store() as store:
        counts = store.counts()
        targets = list(store.iter_targets())
    assert counts == {s: (60 if s is TargetState.SUCCEEDED else 0) for s in TargetState}
    assert outcome.counts == counts
    assert all(t.attempts == 1 and t.job_id and t.finished_at for t in targets)
    assert all(t.error_code is None and t.fail_reason is None for t in targets)

    stats = sim.stats()
    assert stats["reinstalls_by_server"] == {server: 1 for _, server in fleet}
    assert stats["successful_reinstalls_by_server"] == {server: 1 for _, server in fleet}
    assert stats["reinstalls_after_success"] == 0
    assert stats["rejected_while_rebuilding"] == 0
    assert stats["jobs"] == {"SUCCESS": 60, "FAIL": 0, "in_progress": 0}
    # Each project's servers are read in one page before sending, then followed by the
    # project's changes: fewer reads in all than targets (one before and one after
    # each, read singly, would be 120).
    assert stats["requests"]["list_v1"] == 4
    assert stats["requests"]["reinstall"] == 60
    assert sum(stats["requests"].values()) - 60 < 60, stats["requests"]

    # The report: one folder named after the run, three files, counts as in the state.
    paths = campaign.result.report
    assert paths is not None
    assert paths.directory == report_dir / campaign.result.run_id
    for path in (paths.summary_json, paths.targets_csv, paths.report_md):
        assert path.is_file() and path.stat().st_size > 0
    summary = json.loads(paths.summary_json.read_text())
    assert summary["total"] == 60
    assert summary["complete"] is True
    assert summary["counts"] == {s.value: counts[s] for s in TargetState}
    assert summary["failures_by_error_code"] == {}
    assert summary["requests"]["reinstall"] == 60
    with paths.targets_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["project_id"], r["server_id"]) for r in rows] == list(fleet)
    assert {r["state"] for r in rows} == {"succeeded"}
    assert {r["job_id"] for r in rows} == {t.job_id for t in targets}


async def test_events_tell_each_targets_story(
    make_inventory: Callable[..., Path], start_sim: StartSim, run_campaign: RunCampaign
) -> None:
    inventory = make_inventory(8, projects=2, seed=7)
    sim = await start_sim(inventory, job_seconds=(0.8, 1.0))

    campaign = await run_campaign(inventory, sim=sim)

    assert campaign.exit_code == 0
    saw_running = False
    for target in campaign.targets():
        events = campaign.events(target.id)
        steps = [(e.from_state, e.to_state) for e in events]
        head = [("pending", "submitting"), ("submitting", "submitted")]
        assert steps[:2] == head, steps
        rest = steps[2:]
        if rest == [("submitted", "running"), ("running", "succeeded")]:
            saw_running = True
        else:
            assert rest == [("submitted", "succeeded")], steps
        assert all(e.invocation == 1 for e in events)
        assert target.job_id is not None and target.job_id in events[1].detail
    # Jobs of 0.8 s polled after 0.2 s are seen RUNNING before they end.
    assert saw_running


async def test_a_second_invocation_sends_nothing_again(
    make_inventory: Callable[..., Path], start_sim: StartSim, run_campaign: RunCampaign
) -> None:
    inventory = make_inventory(20, projects=2, seed=3)
    sim = await start_sim(inventory)
    first = await run_campaign(inventory, sim=sim)
    assert first.exit_code == 0
    before = sim.stats()["requests"]

    again = await run_campaign(inventory, sim=sim, state_path=first.state_path)

    assert again.exit_code == 0
    assert again.result.run_id == first.result.run_id
    assert sim.stats()["requests"] == before
    assert sim.stats()["reinstalls_after_success"] == 0
    with again.store() as store:
        assert store.run_info().invocations == 2
