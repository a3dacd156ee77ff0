"""Real timing over HTTP: the queue, the withStopServer power-off, `updated`, failed rebuilds."""

from __future__ import annotations

from sim_helpers import SERVER, ApiFactory, FakeClock, reinstall_body

STOP = reinstall_body(mode="withStopServer")


async def test_queue_keeps_the_server_untouched(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(queue_seconds=(10.0, 10.0), job_seconds=(5.0, 5.0))
    before_body = (await api.server()).body["server"]
    before = await api.view()
    assert before[:3] == ("SHUTOFF", None, "stopped")
    job_id = (await api.reinstall(body=reinstall_body(keyname="new-key"))).body["job_id"]

    for step in (0.0, 5.0, 4.99):
        clock.advance(step)
        assert await api.view() == before
        assert (await api.server()).body["server"] == before_body  # key_name too
        job = (await api.job(job_id)).body
        assert (job["status"], job["end_time"]) == ("INIT", None)
        # The job names its server; no sub-job is available while it is queued.
        assert job["entities"] == {"server_id": SERVER}

    clock.advance(0.01)  # the queue ends at 08:00:10: the rebuild shows
    assert await api.view() == (
        "REBUILD",
        "rebuilding",
        "stopped",
        "2027-01-15T08:00:10Z",
        before[4],
    )
    assert (await api.server()).body["server"]["key_name"] == "new-key"
    job = (await api.job(job_id)).body
    assert job["status"] == "RUNNING"
    (sub_job,) = job["entities"]["sub_jobs"]
    assert (sub_job["status"], sub_job["begin_time"], sub_job["end_time"]) == (
        "RUNNING",
        "2027-01-15T08:00:10.000Z",
        None,
    )
    assert job["begin_time"] == "2027-01-15T08:00:00.000Z"

    clock.advance(5.0)
    assert await api.view() == (
        "ACTIVE",
        None,
        "active",
        "2027-01-15T08:00:15Z",
        "2027-01-15T08:00:15.000000",
    )
    assert (await api.job(job_id)).body["entities"]["sub_jobs"][0]["status"] == "SUCCESS"


async def test_with_stop_server_powers_off_then_rebuilds(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(
        running_rate=1.0,
        queue_seconds=(10.0, 10.0),
        power_off_seconds=(20.0, 20.0),
        stopped_seconds=(3.0, 3.0),
        job_seconds=(30.0, 30.0),
    )
    before = await api.view()
    assert before[:3] == ("ACTIVE", None, "active")
    launched = before[4]
    job_id = (await api.reinstall(body=STOP)).body["job_id"]

    # (seconds to advance, expected view, job status)
    timeline = [
        (9.0, before, "INIT"),
        (1.0, ("ACTIVE", "powering-off", "active", "2027-01-15T08:00:10Z", launched), "RUNNING"),
        (19.9, ("ACTIVE", "powering-off", "active", "2027-01-15T08:00:10Z", launched), "RUNNING"),
        (0.1, ("SHUTOFF", None, "stopped", "2027-01-15T08:00:30Z", launched), "RUNNING"),
        (2.9, ("SHUTOFF", None, "stopped", "2027-01-15T08:00:30Z", launched), "RUNNING"),
        (0.1, ("REBUILD", "rebuilding", "stopped", "2027-01-15T08:00:33Z", launched), "RUNNING"),
        (29.9, ("REBUILD", "rebuilding", "stopped", "2027-01-15T08:00:33Z", launched), "RUNNING"),
        (
            0.1,
            ("ACTIVE", None, "active", "2027-01-15T08:01:03Z", "2027-01-15T08:01:03.000000"),
            "SUCCESS",
        ),
    ]
    seen_updated = [before[3]]
    for step, view, status in timeline:
        clock.advance(step)
        assert await api.view() == view, f"at +{clock.now - 1_800_000_000.0:g} s"
        assert (await api.job(job_id)).body["status"] == status
        seen_updated.append(view[3])
    # `updated` moved at every change the server showed, and only forward.
    assert sorted(set(seen_updated)) == [
        before[3],
        "2027-01-15T08:00:10Z",
        "2027-01-15T08:00:30Z",
        "2027-01-15T08:00:33Z",
        "2027-01-15T08:01:03Z",
    ]
    job = (await api.job(job_id)).body
    assert job["end_time"] == "2027-01-15T08:01:03.000Z"
    assert job["entities"]["sub_jobs"][0]["begin_time"] == "2027-01-15T08:00:10.000Z"


async def test_stopped_server_skips_the_power_off(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(power_off_seconds=(20.0, 20.0), stopped_seconds=(3.0, 3.0))
    assert (await api.reinstall(body=STOP)).status == 200
    assert (await api.view())[:2] == ("REBUILD", "rebuilding")


async def test_failed_rebuild_keeps_launched_at_and_restores_shutoff(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_fail_rate=1.0, fail_to_error_rate=0.0, job_seconds=(4.0, 4.0))
    before = await api.view()
    key_before = (await api.server()).body["server"]["key_name"]
    job_id = (await api.reinstall(body=reinstall_body(keyname="never-installed"))).body["job_id"]
    clock.advance(4.0)
    job = (await api.job(job_id)).body
    assert job["status"] == "FAIL" and job["error_code"] in {"Ecs.0101", "Ecs.0202"}
    assert await api.view() == ("SHUTOFF", None, "stopped", "2027-01-15T08:00:04Z", before[4])
    assert (await api.server()).body["server"]["key_name"] == key_before
    assert (await api.stats())["jobs"]["FAIL"] == 1


async def test_failed_rebuild_of_a_running_server_leaves_it_stopped(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(
        running_rate=1.0,
        job_fail_rate=1.0,
        fail_to_error_rate=0.0,
        power_off_seconds=(5.0, 5.0),
        job_seconds=(4.0, 4.0),
    )
    launched = (await api.view())[4]
    assert (await api.reinstall(body=STOP)).status == 200
    clock.advance(9.0)
    assert await api.view() == ("SHUTOFF", None, "stopped", "2027-01-15T08:00:09Z", launched)


async def test_failed_rebuild_to_error(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(job_fail_rate=1.0, fail_to_error_rate=1.0, job_seconds=(4.0, 4.0))
    launched = (await api.view())[4]
    assert (await api.reinstall()).status == 200
    clock.advance(4.0)
    assert await api.view() == ("ERROR", None, "error", "2027-01-15T08:00:04Z", launched)


async def test_phase_lengths_are_drawn_per_job_within_bounds(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(seed=4, queue_seconds=(1.0, 9.0), job_seconds=(100.0, 100.0))
    servers = [f"00000000-0000-4000-8000-{n:012x}" for n in range(20)]
    for sid in servers:
        assert (await api.reinstall(sid)).status == 200
    shown_at: dict[str, float] = {}
    for _ in range(10):
        for sid in servers:
            if sid not in shown_at and (await api.view(sid))[0] == "REBUILD":
                shown_at[sid] = clock.now - 1_800_000_000.0
        clock.advance(1.0)
    assert set(shown_at) == set(servers)
    assert min(shown_at.values()) >= 1.0 and max(shown_at.values()) <= 9.0
    assert len(set(shown_at.values())) > 3  # drawn, not one fixed value
