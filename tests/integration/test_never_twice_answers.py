"""A job id the service returned is never lost, even when it cannot be recorded.

The state store fails right after the answer came (a full disk, a PostgreSQL session
that ended): the run keeps the job id, tries again to record it, lists it when it
cannot, and a resume given it (`--known-job`) follows the job. Without that, the
resume settles the target from its server alone, and a job still queued there shows
nothing: after the quiet period the server was sent a second reinstall.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import pytest
from never_twice_helpers import Drive, assert_never_twice

from orchestrator.engine.known_jobs import KnownJob, apply_known_jobs, known_jobs, parse_option
from orchestrator.engine.runner import RunSettings
from orchestrator.errors import StateError, UsageError
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

StartSim = Callable[..., Awaitable[Simulator]]
S = TargetState
FULL_DISK = "could not write state changes: the disk is full; nothing already recorded is lost"


class AnswersCannotBeRecorded(StateStore):
    """The disk fills up right after the service answers: every commit that would
    record a job id fails, as it does on a full disk; `recover` empties it again."""

    full = True

    def apply(
        self, changes: Sequence[Change], counters: Mapping[str, int] | None = None
    ) -> list[bool]:
        if self.full and any(c.new is S.SUBMITTED for c in changes):
            raise StateError(FULL_DISK)
        return super().apply(changes, counters)


async def test_an_answer_that_cannot_be_recorded_is_listed_and_followed_after_a_resume(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inventory = make_inventory(2, projects=1, seed=97)
    # Queued long enough that the resume finds the jobs still in INIT, servers untouched.
    sim = await start_sim(inventory, queue_seconds=(4.0, 4.0), job_seconds=(0.3, 0.3))
    run = driven(inventory, sim)
    settings = fast_settings(settle_quiet=1.0, drain_timeout=0.5)
    caplog.set_level(logging.INFO, logger="orchestrator.run")

    first = await run.run(settings, store=run.open(AnswersCannotBeRecorded))

    assert first.aborted is not None and "disk is full" in first.aborted
    assert first.exit_code == 3
    jobs = {a.target.server_id: a.job_id for a in first.unrecorded}
    assert set(jobs) == {t.server_id for t in run.targets()}
    # In the log before the commit was tried, and again when it failed.
    for server_id, job_id in jobs.items():
        lines = [r.getMessage() for r in caplog.records if job_id in r.getMessage()]
        assert any("accepted as job" in line and server_id in line for line in lines), lines
        assert any("could not be recorded" in line for line in lines), lines
    assert {t.state for t in run.targets()} == {S.SUBMITTING}

    store = run.open()
    given = [KnownJob(None, server_id, job_id, "--known-job") for server_id, job_id in jobs.items()]
    assert apply_known_jobs(store, given) == 2
    second = await run.run(settings, store=store)

    assert second.exit_code == 0, run.explain()
    assert {t.state for t in run.targets()} == {S.SUCCEEDED}, run.explain()
    assert {t.server_id: t.job_id for t in run.targets()} == jobs
    assert_never_twice(sim.stats(), inventory)


async def test_an_answer_recorded_once_the_store_recovers_needs_nothing_given(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    driven: Drive,
    fast_settings: Callable[..., RunSettings],
) -> None:
    inventory = make_inventory(1, projects=1, seed=98)
    sim = await start_sim(inventory, queue_seconds=(2.0, 2.0), job_seconds=(0.3, 0.3))
    run = driven(inventory, sim)
    settings = fast_settings(settle_quiet=1.0, drain_timeout=2.0)
    store = run.open(AnswersCannotBeRecorded)

    async def free_space_later(runner: object) -> None:
        while sim.stats()["reinstalls_total"] < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        AnswersCannotBeRecorded.full = False  # someone freed the disk

    try:
        first = await run.run(settings, store=store, during=free_space_later)
    finally:
        AnswersCannotBeRecorded.full = True

    assert first.unrecorded == []
    [target] = run.targets()
    assert target.state is S.SUBMITTED and target.job_id is not None, run.explain()
    second = await run.run(settings)
    assert second.exit_code == 0, run.explain()
    assert_never_twice(sim.stats(), inventory)


def test_known_jobs_are_checked_before_any_is_applied(tmp_path: Path) -> None:
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("project_id,server_id,job_id\np1,s-1,j-1\np1,s/2,j-2\n")
    with pytest.raises(UsageError) as info:
        known_jobs(["s-9=j-9"], csv_file)
    assert f"{csv_file}:3" in str(info.value) and "server_id" in str(info.value)
    for bad in ["s1", "s1=", "=j1", "p/s/x=j", "s1=j 1", "s1=j\x1b"]:
        with pytest.raises(UsageError, match="--known-job"):
            parse_option(bad)
    assert parse_option("p-1/s-1=j-1") == KnownJob("p-1", "s-1", "j-1", "--known-job")
