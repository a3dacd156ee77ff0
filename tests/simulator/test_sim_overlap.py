"""Counters a chaos test asserts on: overlapping attempts, reinstalls after a success,
and the answers that go wrong after the service acted (5xx, slow)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sim_helpers import PROJECT, SERVER, ApiFactory, FakeClock, reinstall_body, server_id

STOP = reinstall_body(mode="withStopServer")


@pytest.mark.parametrize(
    ("advance", "shown", "code"),
    [
        (5.0, ("ACTIVE", None), "Ecs.0603"),  # queued: looks untouched, held by the job
        (15.0, ("ACTIVE", "powering-off"), "Ecs.0100"),
        (31.0, ("SHUTOFF", None), "Ecs.0603"),  # stopped between power-off and rebuild
        (40.0, ("REBUILD", "rebuilding"), "Ecs.0100"),
    ],
)
async def test_overlapping_attempt_is_refused_and_counted_in_every_phase(
    make_api: ApiFactory,
    clock: FakeClock,
    advance: float,
    shown: tuple[str, str | None],
    code: str,
) -> None:
    api = await make_api(
        running_rate=1.0,
        queue_seconds=(10.0, 10.0),
        power_off_seconds=(20.0, 20.0),
        stopped_seconds=(3.0, 3.0),
        job_seconds=(30.0, 30.0),
    )
    assert (await api.reinstall(body=STOP)).status == 200
    clock.advance(advance)
    assert (await api.view())[:2] == shown
    again = await api.reinstall(body=STOP)
    assert (again.code, again.status) == (code, 501 if code == "Ecs.0603" else 400)
    stats = await api.stats()
    assert stats["overlapping_attempts"] == 1
    assert stats["overlapping_servers"] == [SERVER]
    assert stats["overlapping_by_server"] == {SERVER: 1}
    assert stats["reinstalls_by_server"] == {SERVER: 1}
    assert stats["rejected_while_rebuilding"] == (1 if shown[0] == "REBUILD" else 0)


async def test_no_overlap_once_the_job_ended(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(job_fail_rate=1.0, job_seconds=(5.0, 5.0))
    assert (await api.reinstall()).status == 200
    clock.advance(5.0)  # FAIL: the server may be reinstalled again
    assert (await api.reinstall()).status == 200
    stats = await api.stats()
    assert (stats["overlapping_attempts"], stats["overlapping_servers"]) == (0, [])
    assert stats["reinstalled_after_success"] == []


async def test_overlap_counts_even_when_a_fault_answers_first(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(rate_limit=1.0, queue_seconds=(60.0, 60.0))
    assert (await api.reinstall()).status == 200
    throttled = await api.reinstall()  # the bucket is empty: 429 before any check
    assert throttled.status == 429
    stats = await api.stats()
    assert stats["overlapping_attempts"] == 1
    assert stats["reinstalls_by_server"] == {SERVER: 1}


async def test_reinstalled_after_success_names_the_servers(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_seconds=(5.0, 5.0))
    for n in range(3):
        assert (await api.reinstall(server_id(n))).status == 200
    clock.advance(5.0)
    # All succeeded (ACTIVE now); reinstalling two of them again is what a correct run never does.
    for n in (2, 0):
        assert (await api.reinstall(server_id(n), body=STOP)).status == 200
    stats = await api.stats()
    assert stats["reinstalls_after_success"] == 2
    assert stats["reinstalled_after_success"] == sorted([server_id(0), server_id(2)])
    assert stats["overlapping_attempts"] == 0


async def test_error_after_acting_creates_the_job(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(error_after_acting_rate=1.0, queue_seconds=(10.0, 10.0))
    answers = [await api.reinstall(server_id(n)) for n in range(6)]
    assert {a.status for a in answers} <= {500, 503}
    assert all(a.code in {"Common.0001", "APIGW.0203"} for a in answers)
    assert all("job_id" not in a.body for a in answers)
    stats = await api.stats()
    assert stats["errors_after_acting"] == 6
    assert stats["reinstalls_total"] == 6
    assert stats["jobs"]["in_progress"] == 6
    # Still queued: nothing shows on the server yet, though the job exists.
    assert (await api.view(server_id(0)))[:2] == ("SHUTOFF", None)
    clock.advance(10.0)
    assert (await api.view(server_id(0)))[:2] == ("REBUILD", "rebuilding")
    # A resend is an overlapping attempt, refused.
    assert (await api.reinstall(server_id(0))).code == "Ecs.0100"
    assert (await api.stats())["overlapping_servers"] == [server_id(0)]


async def test_slow_answer_acts_before_answering(
    make_api: ApiFactory, session: aiohttp.ClientSession
) -> None:
    api = await make_api(slow_answer_rate=1.0, slow_answer_seconds=0.6)
    url = f"{api.sim.url}/v1/{PROJECT}/cloudservers/{SERVER}/reinstallos"
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            url, json=reinstall_body(), timeout=aiohttp.ClientTimeout(total=0.2)
        ):
            pass
    assert time.monotonic() - started < 0.5
    # The client gave up, but the service had already acted.
    assert (await api.view())[:2] == ("REBUILD", "rebuilding")
    stats = await api.stats()
    assert (stats["slow_answers"], stats["reinstalls_by_server"]) == (1, {SERVER: 1})


async def test_slow_answer_still_carries_the_job(make_api: ApiFactory) -> None:
    api = await make_api(slow_answer_rate=1.0, slow_answer_seconds=0.2)
    started = time.monotonic()
    answer = await api.reinstall()
    assert time.monotonic() - started >= 0.19
    assert answer.status == 200
    job = await api.job(answer.body["job_id"])
    assert job.status == 200


async def test_after_acting_faults_are_deterministic_per_seed(make_api: ApiFactory) -> None:
    async def statuses(seed: int) -> list[int]:
        api = await make_api(seed=seed, error_after_acting_rate=0.5)
        return [(await api.reinstall(server_id(n))).status for n in range(30)]

    first = await statuses(3)
    assert first == await statuses(3)
    assert 200 in first and set(first) - {200}


def _system_disk(body: dict[str, object]) -> object:
    volumes = body["server"]["os-extended-volumes:volumes_attached"]  # type: ignore[index]
    return [v["id"] for v in volumes if v["bootIndex"] == "0"]


@pytest.mark.parametrize(
    ("world", "first_ends", "server_ends"),
    [("fail-second", "SUCCESS", "ACTIVE"), ("fail-both", "FAIL", "ERROR")],
)
async def test_a_second_reinstall_accepted_while_one_runs_gets_a_job_that_fails(
    make_api: ApiFactory, clock: FakeClock, world: str, first_ends: str, server_ends: str
) -> None:
    """A cloud that does not refuse: the second reinstall is answered with a job id,
    its job FAILs without touching the server; "fail-both" fails the first one too."""
    api = await make_api(second_reinstall=world, queue_seconds=(10.0, 10.0), job_seconds=(5, 5))
    disk_before = _system_disk((await api.server()).body)
    first = await api.reinstall()
    assert first.status == 200
    clock.advance(2.0)
    second = await api.reinstall()
    assert second.status == 200 and second.body["job_id"] != first.body["job_id"]
    clock.advance(20.0)
    one, two = [await api.job(a.body["job_id"]) for a in (first, second)]
    assert (one.body["status"], two.body["status"]) == (first_ends, "FAIL")
    assert two.body["error_code"] == "Ecs.0603"
    assert (await api.view())[0] == server_ends
    replaced = _system_disk((await api.server()).body) != disk_before
    assert replaced is (first_ends == "SUCCESS")
    stats = await api.stats()
    assert (stats["accepted_second"], stats["overlapping_servers"]) == (1, [SERVER])
    assert stats["reinstalls_by_server"] == {SERVER: 2}
    assert stats["successful_reinstalls_by_server"] == (
        {SERVER: 1} if first_ends == "SUCCESS" else {}
    )
