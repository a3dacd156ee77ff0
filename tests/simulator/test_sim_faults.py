"""Injected faults: server errors, busy, dropped answers, throttling, latency."""

from __future__ import annotations

import time

import aiohttp
import pytest
from sim_helpers import SERVER, ApiFactory, FakeClock, reinstall_body, server_id


async def test_error_rate_answers_5xx_without_acting(make_api: ApiFactory) -> None:
    api = await make_api(error_rate=1.0)
    answers = [await api.reinstall(server_id(n)) for n in range(20)]
    assert {a.status for a in answers} == {500, 503}
    for answer in answers:
        expected = "Common.0001" if answer.status == 500 else "APIGW.0203"
        assert answer.code == expected
        assert answer.body["error"]["message"]
    assert (await api.server()).status in {500, 503}
    assert (await api.job("0" * 32)).status in {500, 503}
    stats = await api.stats()
    assert stats["reinstalls_by_server"] == {}
    assert stats["jobs"]["in_progress"] == 0
    assert stats["errors_injected"] == 22


async def test_busy_rate_answers_501_without_acting(make_api: ApiFactory) -> None:
    api = await make_api(busy_rate=1.0)
    answer = await api.reinstall()
    assert (answer.status, answer.code) == (501, "Ecs.0603")
    assert (await api.server()).code == "Ecs.0603"
    assert (await api.job("0" * 32)).code == "Ecs.0603"
    stats = await api.stats()
    assert stats["busy"] == 3
    assert stats["reinstalls_by_server"] == {}


async def test_errors_come_before_body_checks(make_api: ApiFactory) -> None:
    api = await make_api(busy_rate=1.0)
    assert (await api.reinstall(data=b"")).code == "Ecs.0603"


async def test_drop_applies_the_reinstall_but_closes_the_connection(make_api: ApiFactory) -> None:
    api = await make_api(drop_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.reinstall()
    server = (await api.server()).body["server"]
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("REBUILD", "rebuilding")
    stats = await api.stats()
    assert stats["dropped"] == 1
    assert stats["reinstalls_by_server"] == {SERVER: 1}
    assert stats["jobs"]["in_progress"] == 1


async def test_drop_spares_refused_reinstalls_and_reads(make_api: ApiFactory) -> None:
    api = await make_api(drop_rate=1.0, locked_rate=1.0)
    assert (await api.reinstall()).code == "Ecs.0605"
    assert (await api.server()).status == 200
    assert (await api.stats())["dropped"] == 0


async def test_rate_limit_429_with_retry_after(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(rate_limit=2.0)
    assert (await api.server()).status == 200
    assert (await api.server()).status == 200
    throttled = await api.server()
    assert (throttled.status, throttled.code) == (429, "Common.1503")
    assert throttled.headers["Retry-After"] == "1"
    # Buckets are per API: the job API still has its burst.
    assert (await api.job("0" * 32)).code == "Common.0011"
    clock.advance(0.5)  # one token back at 2/s
    assert (await api.server()).status == 200
    assert (await api.server()).status == 429
    assert (await api.stats())["throttled"] == 2


async def test_rate_limit_retry_after_is_whole_seconds(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit=0.25)
    assert (await api.reinstall()).status == 200
    throttled = await api.reinstall(server_id(1))
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "4"


async def test_rate_limit_202_style_carries_common_0024_and_no_job(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit=1.0, throttle_style="202")
    assert (await api.reinstall()).status == 200
    throttled = await api.reinstall(server_id(1))
    assert throttled.status == 202
    assert throttled.code == "Common.0024"
    assert "job_id" not in throttled.body
    assert "Retry-After" not in throttled.headers
    stats = await api.stats()
    assert stats["throttled"] == 1
    assert stats["reinstalls_by_server"] == {SERVER: 1}


async def test_auth_comes_before_rate_limit(make_api: ApiFactory) -> None:
    api = await make_api(rate_limit=1.0, token="t0k")
    for _ in range(3):
        assert (await api.server()).status == 401
    assert (await api.server(headers={"X-Auth-Token": "t0k"})).status == 200


async def test_latency_delays_answers(make_api: ApiFactory) -> None:
    api = await make_api(latency_ms=150)
    started = time.monotonic()
    answer = await api.reinstall(body=reinstall_body())
    elapsed = time.monotonic() - started
    assert answer.status == 200
    assert elapsed >= 0.14
    # The stats route is not an API route: no latency there.
    started = time.monotonic()
    await api.stats()
    assert time.monotonic() - started < 0.14
