"""What the simulator records for measuring clients: request arrival times, rebuild concurrency."""

from __future__ import annotations

from sim_helpers import SERVER, START, Api, ApiFactory, FakeClock, server_id

from orchestrator.simulator.stats import REQUEST_TIMES_KEPT, Stats


async def test_request_times_are_arrival_clock_readings_by_kind(api: Api, clock: FakeClock) -> None:
    answer = await api.reinstall()
    assert answer.status == 200
    clock.advance(1.5)
    await api.job(answer.body["job_id"])
    clock.advance(0.25)
    await api.server()
    await api.server()
    stats = await api.stats()
    assert stats["request_times"] == {
        "reinstall": [START],
        "job": [START + 1.5],
        "server": [START + 1.75, START + 1.75],
        "list_v1": [],
        "list_nova": [],
    }
    for kind, times in stats["request_times"].items():
        assert len(times) == stats["requests"][kind]


async def test_refused_requests_are_still_arrivals(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(rate_limit=1.0, token="t0k-1234")
    # No token: 401; with it, the first passes and the second is throttled.
    assert (await api.server()).status == 401
    headers = {"X-Auth-Token": "t0k-1234"}
    assert (await api.server(headers=headers)).status == 200
    assert (await api.server(headers=headers)).status == 429
    stats = await api.stats()
    assert (stats["unauthorized"], stats["throttled"]) == (1, 1)
    assert stats["request_times"]["server"] == [START] * 3
    assert stats["request_times"]["reinstall"] == []


async def test_arrival_is_taken_before_the_configured_latency(make_api: ApiFactory) -> None:
    ticks = iter(range(100))
    api = await make_api(latency_ms=1.0, clock=lambda: float(next(ticks)))
    await api.server()
    # Read once at arrival (0), once in the gate after the latency (1), once for the stats.
    assert api.sim.stats()["request_times"]["server"] == [0.0]


def test_request_times_keep_only_the_latest() -> None:
    stats = Stats()
    for n in range(REQUEST_TIMES_KEPT + 5):
        stats.arrived("job", float(n))
    times = stats.as_dict(jobs_in_progress=0)["request_times"]["job"]
    assert len(times) == REQUEST_TIMES_KEPT
    assert (times[0], times[-1]) == (5.0, float(REQUEST_TIMES_KEPT + 4))
    assert stats.requests["job"] == REQUEST_TIMES_KEPT + 5  # the counter is not bounded


async def test_max_concurrent_rebuilding_and_rebuilding_now(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_seconds=(10.0, 10.0))
    for n in range(3):
        assert (await api.reinstall(server_id(n))).status == 200
    stats = await api.stats()
    assert (stats["max_concurrent_rebuilding"], stats["rebuilding_now"]) == (3, 3)

    clock.advance(10.0)  # the three jobs end; a later accept must not count them
    for n in range(3, 5):
        assert (await api.reinstall(server_id(n))).status == 200
    stats = await api.stats()
    assert (stats["max_concurrent_rebuilding"], stats["rebuilding_now"]) == (3, 2)

    clock.advance(10.0)
    stats = await api.stats()
    assert (stats["max_concurrent_rebuilding"], stats["rebuilding_now"]) == (3, 0)
    assert api.sim.stats() == stats


async def test_refused_reinstalls_do_not_count_as_rebuilding(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_seconds=(10.0, 10.0))
    assert (await api.reinstall()).status == 200
    again = await api.reinstall()
    assert (again.status, again.code) == (400, "Ecs.0100")
    stats = await api.stats()
    assert stats["rejected_while_rebuilding"] == 1
    assert (stats["max_concurrent_rebuilding"], stats["rebuilding_now"]) == (1, 1)
    assert stats["reinstalls_by_server"] == {SERVER: 1}
