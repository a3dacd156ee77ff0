"""EcsClient's list calls against the simulator over loopback HTTP: `servers_page` (the v1
list, by page number) and `servers_changed` (Nova's, by marker and changes-since); and
the API gateway's throttling (APIGW.0308) as every call of the client meets it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from client_helpers import (
    AK,
    OTHER_PROJECT,
    PROJECT,
    SK,
    START,
    FakeClock,
    RecordingLimiter,
    server_id,
    sim_client,
    spec,
)

from orchestrator.cloud.auth import AkSkAuth
from orchestrator.cloud.client import EcsClient, ServerChanges, ServerPage
from orchestrator.cloud.retry_policy import RetrySettings, call_retrying
from orchestrator.errors import Rejected, Throttled
from orchestrator.simulator.config import ApiLimit

pytestmark = pytest.mark.timeout(30)

FLEET = tuple((PROJECT, server_id(n)) for n in range(1, 8))  # 7 in the inventory
EPOCH = datetime(2019, 1, 1, tzinfo=UTC)  # before every simulated server's last update
AT_START = datetime.fromtimestamp(START, UTC)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fleet(**config: Any) -> dict[str, Any]:
    config.setdefault("fleet", FLEET)
    config.setdefault("extra_servers", 5)  # 12 servers in PROJECT
    return config


async def every_page(client: EcsClient, limit: int, **kwargs: Any) -> list[ServerPage]:
    pages = [await client.servers_page(PROJECT, 1, limit, **kwargs)]
    while (following := pages[-1].next_page) is not None:
        pages.append(await client.servers_page(PROJECT, following, limit, **kwargs))
    return pages


async def every_change(client: EcsClient, since: datetime, limit: int, **kwargs: Any) -> list[str]:
    listed: list[str] = []
    marker = None
    while True:
        changes = await client.servers_changed(PROJECT, since, limit, marker, **kwargs)
        listed += [s.server_id for s in changes.servers]
        if changes.next_marker is None:
            return listed
        marker = changes.next_marker


def ids(result: ServerPage | ServerChanges) -> list[str]:
    return [s.server_id for s in result.servers]


async def reinstall(client: EcsClient, server: str) -> None:
    """Reinstall any server of PROJECT, the fleet's or an extra one."""
    await client.reinstall(spec(1, server_id=server))


# -- servers_page --------------------------------------------------------------------------


async def test_servers_page_reads_every_page_of_a_fleet_larger_than_a_page(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet(running_rate=0.5)) as (sim, client):
        pages = await every_page(client, 5)
        assert [(p.page, len(p.servers), p.count) for p in pages] == [
            (1, 5, 12),
            (2, 5, 12),
            (3, 2, 12),
        ]
        assert pages[-1].next_page is None
        listed = [s for p in pages for s in p.servers]
        assert len({s.server_id for s in listed}) == 12
        assert {s for _, s in FLEET} < {s.server_id for s in listed}
        # Each server read as the single read reads it.
        for view in listed:
            assert view == await client.server(PROJECT, view.server_id)
        assert client.requests == {"list": 3, "server": 12}
        stats = sim.stats()
        assert (stats["requests"]["list_v1"], stats["requests"]["list_nova"]) == (3, 0)


async def test_servers_page_past_the_last_page_and_an_empty_filter(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet()) as (_sim, client):
        past = await client.servers_page(PROJECT, 9, 5)
        assert (past.servers, past.count, past.next_page) == ((), 12, None)
        nothing = await client.servers_page(PROJECT, 1, 5, status="BUILD")
        assert (nothing.servers, nothing.count, nothing.next_page) == ((), 0, None)
        other = await client.servers_page(OTHER_PROJECT, 1, 5)
        assert (other.servers, other.count) == ((), 0)


async def test_servers_page_filters_by_status(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet(running_rate=0.5, seed=5)) as (_sim, client):
        active = [s for p in await every_page(client, 2, status="ACTIVE") for s in p.servers]
        shutoff = [s for p in await every_page(client, 2, status="SHUTOFF") for s in p.servers]
        assert {s.status for s in active} == {"ACTIVE"} and {s.status for s in shutoff} == {
            "SHUTOFF"
        }
        assert len(active) + len(shutoff) == 12 and active and shutoff


async def test_servers_page_is_not_held_still_between_reads(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet(job_seconds=(2.0, 2.0))) as (_sim, client):
        before = ids(await client.servers_page(PROJECT, 1, 50, status="SHUTOFF"))
        first = await client.servers_page(PROJECT, 1, 4, status="SHUTOFF")
        # A server of the first page is reinstalled before the second page is read.
        await reinstall(client, before[0])
        clock.advance(3)
        second = await client.servers_page(PROJECT, 2, 4, status="SHUTOFF")
        third = await client.servers_page(PROJECT, 3, 4, status="SHUTOFF")
        # It left the filter: the count fell, and the servers after it moved up a page,
        # so one server that was in the filter all along was on no page this client read.
        assert (first.count, second.count, third.count) == (12, 11, 11)
        assert third.next_page is None
        read = set(ids(first) + ids(second) + ids(third))
        assert set(before) - read == {before[4]}


# -- servers_changed -----------------------------------------------------------------------


async def test_servers_changed_lists_what_changed_after_a_time_and_nothing_else(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet(job_seconds=(4.0, 4.0))) as (_sim, client):
        unchanged = await client.servers_changed(PROJECT, AT_START, 10)
        assert (unchanged.servers, unchanged.next_marker) == ((), None)
        clock.advance(30)
        await client.reinstall(spec(2))
        clock.advance(1)
        changed = await client.servers_changed(PROJECT, AT_START, 10)
        assert ids(changed) == [server_id(2)] and changed.next_marker is None
        (view,) = changed.servers
        assert (view.status, view.task_state) == ("REBUILD", "rebuilding")
        single = await client.server(PROJECT, server_id(2))
        # Nova's list names no boot index: which volume is the system disk it cannot say.
        assert single.system_volume is not None and view.system_volume is None
        assert view == replace(single, system_volume=None)
        # Within the second of the change (sent rounded down): listed; the second after: not.
        just_after = AT_START + timedelta(seconds=30, microseconds=900_000)
        assert ids(await client.servers_changed(PROJECT, just_after, 10)) == [server_id(2)]
        later = AT_START + timedelta(seconds=31)
        assert ids(await client.servers_changed(PROJECT, later, 10)) == []
        # Any zone names the same moment.
        east = (AT_START + timedelta(seconds=30)).astimezone(timezone(timedelta(hours=2)))
        assert ids(await client.servers_changed(PROJECT, east, 10)) == [server_id(2)]
        clock.advance(5)  # ended: ACTIVE
        active = await client.servers_changed(PROJECT, AT_START, 10, status="ACTIVE")
        assert ids(active) == [server_id(2)] and active.servers[0].status == "ACTIVE"
        assert ids(await client.servers_changed(PROJECT, AT_START, 10, status="SHUTOFF")) == []


async def test_servers_changed_pages_by_marker_to_the_last_page(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet()) as (_sim, client):
        everything = ids(await client.servers_page(PROJECT, 1, 50))
        assert await every_change(client, EPOCH, 5) == everything
        assert client.requests["list"] == 1 + 3
        # A page that ends the list exactly full still names a next marker; the page
        # after it is empty and names none.
        first = await client.servers_changed(PROJECT, EPOCH, 6)
        second = await client.servers_changed(PROJECT, EPOCH, 6, first.next_marker)
        assert second.next_marker == everything[-1]
        last = await client.servers_changed(PROJECT, EPOCH, 6, second.next_marker)
        assert (last.servers, last.next_marker) == ((), None)


async def test_servers_changed_misses_nothing_when_servers_change_between_pages(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet(job_seconds=(2.0, 2.0))) as (_sim, client):
        before = ids(await client.servers_page(PROJECT, 1, 50, status="SHUTOFF"))
        first = await client.servers_changed(PROJECT, EPOCH, 4, status="SHUTOFF")
        assert ids(first) == before[:4]
        for n in (0, 3):  # two servers of the first page, the marker's one among them
            await reinstall(client, before[n])
        clock.advance(3)
        second = await client.servers_changed(PROJECT, EPOCH, 4, first.next_marker, "SHUTOFF")
        assert ids(second) == before[4:8]


async def test_a_marker_the_service_does_not_know_is_refused(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, **fleet()) as (_sim, client):
        with pytest.raises(Rejected) as info:
            await client.servers_changed(PROJECT, EPOCH, 5, server_id(999))
        assert info.value.status == 400
        assert f"marker [{server_id(999)}] not found" in str(info.value)


# -- what the client sends -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.servers_page(PROJECT, 0, 5), "page"),
        (lambda c: c.servers_page(PROJECT, 1, 0), "limit"),
        (lambda c: c.servers_page(PROJECT, 1, 1001), "limit"),
        (lambda c: c.servers_page(PROJECT, 1, 5, status="active"), "status"),
        (lambda c: c.servers_page(PROJECT, 1, 5, status="FOO"), "status"),
        (lambda c: c.servers_changed(PROJECT, datetime(2027, 1, 1), 5), "timezone"),
        (lambda c: c.servers_changed(PROJECT, EPOCH, 5, "a&b=c"), "marker"),
        (lambda c: c.servers_changed(PROJECT, EPOCH, 5, status="NOPE"), "status"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(
    http: aiohttp.ClientSession, clock: FakeClock, call: Any, message: str
) -> None:
    async with sim_client(http, clock=clock, **fleet()) as (sim, client):
        with pytest.raises(ValueError, match=message):
            await call(client)
        assert sum(sim.stats()["requests"].values()) == 0 and not client.requests


async def test_list_calls_are_paced_by_their_own_limiter(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The gateway limits each API on its own: a list call never waits behind the job
    queries and single reads it spares."""
    log: list[str] = []
    limiters = {
        "list_limiter": RecordingLimiter(log),
        "poll_limiter": RecordingLimiter([]),
        "submit_limiter": RecordingLimiter([]),
    }
    async with sim_client(http, clock=clock, client_kwargs=limiters, **fleet()) as (_s, client):
        await client.servers_page(PROJECT, 1, 5)
        await client.servers_changed(PROJECT, EPOCH, 5)
        assert log == ["acquired", "spaced"] * 2
        assert limiters["poll_limiter"].log == []
        assert limiters["submit_limiter"].log == []
        assert client.requests == {"list": 2}


async def test_the_query_is_signed_with_ak_sk(http: aiohttp.ClientSession) -> None:
    creds = AkSkAuth(AK, SK)
    async with sim_client(http, ak=AK, sk=SK, credentials=creds, **fleet()) as (sim, client):
        page = await client.servers_page(PROJECT, 2, 5, status="SHUTOFF")
        changes = await client.servers_changed(PROJECT, EPOCH, 3, page.servers[0].server_id)
        assert len(page.servers) == 5 and len(changes.servers) == 3
        assert sim.stats()["unauthorized"] == 0


# -- the gateway's throttling --------------------------------------------------------------


async def test_every_call_reads_the_gateway_s_throttling_without_retry_after(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    limit = {"api_limit": ApiLimit(per_second=1)}
    async with sim_client(http, clock=clock, **fleet(**limit)) as (sim, client):
        job_id = await client.reinstall(spec(1))
        calls = {
            "reinstall": lambda: client.reinstall(spec(2)),
            "job": lambda: client.job(PROJECT, job_id),
            "server": lambda: client.server(PROJECT, server_id(1)),
            "list_v1": lambda: client.servers_page(PROJECT, 1, 5),
            "list_nova": lambda: client.servers_changed(PROJECT, EPOCH, 5),
        }
        for kind, call in calls.items():
            if kind != "reinstall":
                await call()  # the window's one call
            with pytest.raises(Throttled) as info:
                await call()
            error = info.value
            assert (error.status, error.code, error.retry_after) == (429, "APIGW.0308", None), kind
            assert "limit:1,time:1 second" in str(error)
        assert client.throttled == 5
        stats = sim.stats()
        assert stats["gateway_throttled_by_kind"] == dict.fromkeys(calls, 1)
        assert stats["reinstalls_total"] == 1  # the throttled reinstall was not acted on


async def test_the_retry_policy_s_backoff_waits_out_a_per_second_window(
    http: aiohttp.ClientSession,
) -> None:
    # The wall clock: the gateway's window moves on by itself while the policy backs off.
    settings = RetrySettings(attempts=3, max_delay=10.0, backoff_base=0.1, backoff_cap=0.3)
    async with sim_client(http, **fleet(api_limit=ApiLimit(per_second=1))) as (sim, client):
        await asyncio.sleep(1.0 - time.time() % 1.0)  # early in a clock second
        assert (await client.servers_page(PROJECT, 1, 5)).count == 12
        page = await call_retrying(settings, lambda: client.servers_page(PROJECT, 1, 5))
        assert page.count == 12
        stats = sim.stats()
        throttled = stats["gateway_throttled_by_kind"]["list_v1"]
        # Refused (more often than the 3 attempts: throttling does not use them up)
        # until the next clock second, then served.
        assert client.throttled == throttled >= 1
        assert stats["requests"]["list_v1"] == 2 + throttled
        times = stats["request_times"]["list_v1"]
        assert int(times[-1]) == int(times[0]) + 1
        assert all(int(t) == int(times[0]) for t in times[1:-1])


async def test_a_per_minute_window_throttles_until_the_minute_ends(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    limit = {"api_limit": ApiLimit(per_second=5, per_minute=2)}
    async with sim_client(http, clock=clock, **fleet(**limit)) as (_sim, client):
        await client.servers_changed(PROJECT, EPOCH, 5)
        clock.advance(20)
        await client.servers_changed(PROJECT, EPOCH, 5)
        clock.advance(20)
        with pytest.raises(Throttled) as info:
            await client.servers_changed(PROJECT, EPOCH, 5)
        assert (info.value.code, info.value.retry_after) == ("APIGW.0308", None)
        assert "limit:2,time:1 minute" in str(info.value)
        clock.advance(20)  # a new minute
        assert len((await client.servers_changed(PROJECT, EPOCH, 5)).servers) == 5
