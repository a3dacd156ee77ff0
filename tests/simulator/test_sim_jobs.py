"""GET /v1/{project_id}/jobs/{job_id} and the server lifecycle it drives, on a fake clock."""

from __future__ import annotations

import re

from sim_helpers import OTHER_PROJECT, SERVER, Api, ApiFactory, FakeClock, server_id

JOB_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_lifecycle_init_running_success(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(queue_seconds=(1.0, 1.0), job_seconds=(9.0, 9.0))
    before = (await api.server()).body["server"]
    assert before["status"] == "SHUTOFF"
    assert before["OS-EXT-STS:vm_state"] == "stopped"
    assert before["OS-EXT-STS:task_state"] is None

    job_id = (await api.reinstall()).body["job_id"]

    clock.advance(0.5)  # still queued
    job = (await api.job(job_id)).body
    assert job["status"] == "INIT"
    assert job["end_time"] is None

    clock.advance(4.5)
    job = (await api.job(job_id)).body
    assert job["status"] == "RUNNING"
    assert job["end_time"] is None
    server = (await api.server()).body["server"]
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("REBUILD", "rebuilding")
    assert server["OS-SRV-USG:launched_at"] == before["OS-SRV-USG:launched_at"]

    clock.advance(5.0)
    job = (await api.job(job_id)).body
    assert job["status"] == "SUCCESS"
    assert job["error_code"] is None and job["fail_reason"] is None
    assert job["begin_time"] == "2027-01-15T08:00:00.000Z"
    assert job["end_time"] == "2027-01-15T08:00:10.000Z"

    server = (await api.server()).body["server"]
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:vm_state"] == "active"
    assert server["OS-EXT-STS:task_state"] is None
    assert server["OS-SRV-USG:launched_at"] == "2027-01-15T08:00:10.000000"
    assert server["updated"] == "2027-01-15T08:00:10Z"

    stats = await api.stats()
    assert stats["jobs"] == {"SUCCESS": 1, "FAIL": 0, "in_progress": 0}
    assert stats["successful_reinstalls_by_server"] == {SERVER: 1}
    assert stats["requests"] == {
        "reinstall": 1,
        "job": 3,
        "server": 3,
        "list_v1": 0,
        "list_nova": 0,
    }


async def test_job_body_shape(api: Api, clock: FakeClock) -> None:
    job_id = (await api.reinstall()).body["job_id"]
    clock.advance(60)
    job = (await api.job(job_id)).body
    assert job["job_id"] == job_id
    assert job["job_type"] == "reinstallOs"
    assert JOB_TIME.fullmatch(job["begin_time"]) and JOB_TIME.fullmatch(job["end_time"])
    entities = job["entities"]
    assert entities["server_id"] == SERVER
    assert entities["sub_jobs_total"] == 1
    (sub_job,) = entities["sub_jobs"]
    assert sub_job["status"] == "SUCCESS"
    assert sub_job["entities"] == {"server_id": SERVER}
    assert re.fullmatch(r"[0-9a-f]{32}", sub_job["job_id"]) and sub_job["job_id"] != job_id


async def test_job_durations_stay_within_bounds(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(job_seconds=(2.0, 5.0))
    ids = [(await api.reinstall(server_id(n))).body["job_id"] for n in range(10)]
    clock.advance(1.99)
    assert {(await api.job(j)).body["status"] for j in ids} <= {"INIT", "RUNNING"}
    clock.advance(3.02)
    assert {(await api.job(j)).body["status"] for j in ids} == {"SUCCESS"}


async def test_failed_job_reports_error_and_server_goes_error(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_fail_rate=1.0, job_seconds=(3.0, 3.0))
    before = (await api.server()).body["server"]
    job_id = (await api.reinstall()).body["job_id"]
    clock.advance(3.0)
    job = (await api.job(job_id)).body
    assert job["status"] == "FAIL"
    assert job["error_code"] in {"Ecs.0101", "Ecs.0202"}
    assert job["fail_reason"]
    assert job["entities"]["sub_jobs"][0]["error_code"] == job["error_code"]

    server = (await api.server()).body["server"]
    assert (server["status"], server["OS-EXT-STS:vm_state"]) == ("ERROR", "error")
    assert server["OS-EXT-STS:task_state"] is None
    assert server["OS-SRV-USG:launched_at"] == before["OS-SRV-USG:launched_at"]

    stats = await api.stats()
    assert stats["jobs"]["FAIL"] == 1
    assert stats["successful_reinstalls_by_server"] == {}


async def test_stats_settle_jobs_without_other_requests(api: Api, clock: FakeClock) -> None:
    await api.reinstall()
    clock.advance(60)
    stats = await api.stats()
    assert stats["jobs"]["SUCCESS"] == 1
    assert api.sim.stats() == stats


async def test_unknown_job_is_common_0011(api: Api) -> None:
    answer = await api.job("0" * 32)
    assert (answer.status, answer.code) == (400, "Common.0011")


async def test_job_of_another_project_is_common_0011(api: Api) -> None:
    job_id = (await api.reinstall()).body["job_id"]
    answer = await api.job(job_id, project=OTHER_PROJECT)
    assert (answer.status, answer.code) == (400, "Common.0011")


async def test_outcomes_are_deterministic_per_seed(make_api: ApiFactory, clock: FakeClock) -> None:
    async def outcomes(seed: int) -> list[tuple[str, str]]:
        api = await make_api(seed=seed, job_fail_rate=0.5, job_seconds=(1.0, 1.0))
        ids = [(await api.reinstall(server_id(n))).body["job_id"] for n in range(40)]
        clock.advance(1.0)
        return [(j, (await api.job(j)).body["status"]) for j in ids]

    first = await outcomes(7)
    assert first == await outcomes(7)
    assert {status for _, status in first} == {"SUCCESS", "FAIL"}
    assert first != await outcomes(8)


async def test_a_job_awaiting_payment_stays_pending_payment(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(pending_payment_rate=1.0, job_seconds=(1.0, 1.0))
    before = (await api.server()).body["server"]
    job_id = (await api.reinstall()).body["job_id"]
    clock.advance(30 * 86400.0)  # nobody pays
    assert (await api.job(job_id)).body["status"] == "PENDING_PAYMENT"
    after = (await api.server()).body["server"]
    assert after["status"] == before["status"] and after["OS-EXT-STS:task_state"] is None
    assert after["OS-SRV-USG:launched_at"] == before["OS-SRV-USG:launched_at"]
    # The order holds the server: another reinstall is refused as busy.
    assert (await api.reinstall()).code == "Ecs.0603"


async def test_an_ended_job_is_forgotten_after_the_retention(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_seconds=(1.0, 1.0), job_retention=86400.0)
    job_id = (await api.reinstall()).body["job_id"]
    clock.advance(1.0 + 86400.0)  # ended, and kept exactly a day
    assert (await api.job(job_id)).body["status"] == "SUCCESS"
    clock.advance(1.0)
    answer = await api.job(job_id)
    assert (answer.status, answer.code) == (400, "Common.0011")
