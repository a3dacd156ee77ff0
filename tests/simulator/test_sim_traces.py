"""The simulator's audit trail: CTS's trace list (v3) with its delivery delay."""

from __future__ import annotations

from typing import Any

from sim_helpers import PROJECT, SERVER, ApiFactory, FakeClock, reinstall_body

STOP = reinstall_body(mode="withStopServer")


def window(clock: FakeClock) -> str:
    now = int(clock() * 1000)
    return f"from={now - 3_600_000}&to={now + 3_600_000}"


async def traces(api: Any, query: str) -> Any:
    return await api.call("GET", f"/v3/{PROJECT}/traces?{query}")


async def test_a_reinstall_shows_in_the_trail_only_after_the_delivery_delay(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(trace_delay=60.0, running_rate=1.0)
    assert (await api.reinstall()).status == 400  # running, no withStopServer: refused
    assert (await api.reinstall(body=STOP)).status == 200
    query = f"trace_type=system&resource_id={SERVER}&{window(clock)}&limit=200"
    early = await traces(api, query)
    assert early.status == 200 and early.body["traces"] == []  # not delivered yet
    clock.advance(60.0)
    late = (await traces(api, query)).body["traces"]
    assert [(t["trace_name"], t["code"], t["resource_id"]) for t in late] == [
        ("reinstallOs", "200", SERVER),  # newest first
        ("reinstallOs", "400", SERVER),
    ]
    assert late[0]["time"] >= late[1]["time"] and late[0]["service_type"] == "ECS"
    other = f"trace_type=system&resource_id=00000000-0000-0000-0000-000000000000&{window(clock)}"
    assert (await traces(api, other)).body["traces"] == []
    assert (await api.stats())["trace_queries"] == 3


async def test_a_trace_query_is_checked_as_cts_does(make_api: ApiFactory) -> None:
    api = await make_api()
    missing = await traces(api, "resource_id=x")
    assert missing.status == 400 and "trace_type" in missing.body["error"]["message"]
    half = await traces(api, "trace_type=system&from=1700000000000")
    assert half.status == 400 and "used together" in half.body["error"]["message"]
