"""The two list APIs over HTTP: paging, filters, changes-since, and servers that change
state between two page reads, on a fleet larger than the inventory (extra servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sim_helpers import OTHER_PROJECT, PROJECT, START, Api, ApiFactory, FakeClock, server_id

from orchestrator.simulator.timefmt import stamp

FLEET = tuple((PROJECT, server_id(n)) for n in range(1, 8))  # 7 in the inventory


def ids(answer: Any) -> list[str]:
    assert answer.status == 200, answer.body
    return [s["id"] for s in answer.body["servers"]]


def newest_first(servers: list[dict[str, Any]]) -> bool:
    keys = [(s["created"], s["id"]) for s in servers]
    return keys == sorted(keys, reverse=True)


async def fleet_api(make_api: ApiFactory, **fields: Any) -> Api:
    fields.setdefault("fleet", FLEET)
    fields.setdefault("extra_servers", 5)
    return await make_api(**fields)


async def all_v1(api: Api, limit: int, **params: Any) -> list[list[str]]:
    """Every page of the v1 list, read one after the other until one is empty."""
    pages, page = [], 1
    while True:
        answer = await api.list_v1(offset=page, limit=limit, **params)
        if not ids(answer):
            return pages
        pages.append(ids(answer))
        page += 1


def next_marker(answer: Any) -> str | None:
    links = answer.body.get("servers_links")
    if links is None:
        return None
    (link,) = links
    assert link["rel"] == "next"
    (marker,) = parse_qs(urlsplit(link["href"]).query)["marker"]
    return str(marker)


# -- the v1 list: pages by number ----------------------------------------------------------


async def test_v1_pages_a_fleet_larger_than_a_page_to_the_last(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api)
    pages = await all_v1(api, limit=5)
    assert [len(p) for p in pages] == [5, 5, 2]  # 7 of the inventory and 5 extra
    listed = [i for p in pages for i in p]
    assert len(set(listed)) == 12
    assert {s for _, s in FLEET} < set(listed)  # the inventory's, and 5 more
    for page in (1, 2, 3, 4):
        assert (await api.list_v1(offset=page, limit=5)).body["count"] == 12
    # Past the last page: nothing, and the count still says how many there are.
    past = await api.list_v1(offset=4, limit=5)
    assert past.body == {"count": 12, "servers": []}
    # Offset 0 is the first page, as is no offset; newest first.
    first = await api.list_v1(offset=0, limit=5)
    assert ids(first) == ids(await api.list_v1(limit=5)) == pages[0]
    everything = await api.list_v1(limit=100)
    assert newest_first(everything.body["servers"])
    assert ids(everything) == listed


async def test_v1_default_page_is_25_and_at_most_1000_come_back(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api, extra_servers=1001)
    default = await api.list_v1()
    assert (default.body["count"], len(default.body["servers"])) == (1008, 25)
    capped = await api.list_v1(limit=5000)
    assert (capped.body["count"], len(capped.body["servers"])) == (1008, 1000)
    rest = await api.list_v1(limit=1000, offset=2)
    assert len(rest.body["servers"]) == 8


async def test_extra_servers_exist_but_only_in_the_fleet_s_projects(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api, extra_servers=3)
    listed = ids(await api.list_v1(limit=50))
    extra = [i for i in listed if (PROJECT, i) not in FLEET]
    assert len(extra) == 3
    # They exist for every API, not only the lists.
    answer = await api.server(extra[0])
    assert answer.status == 200 and answer.body["server"]["id"] == extra[0]
    # A project outside the fleet has no servers, extra or not.
    assert (await api.list_v1(project=OTHER_PROJECT)).body == {"count": 0, "servers": []}
    assert ids(await api.list_nova(project=OTHER_PROJECT)) == []


async def test_servers_of_the_fleet_that_do_not_exist_are_not_listed(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api, missing_rate=0.5, extra_servers=0, seed=3)
    listed = set(ids(await api.list_v1(limit=50)))
    for _, server in FLEET:
        exists = (await api.server(server)).status == 200
        assert (server in listed) is exists
    assert 0 < len(listed) < len(FLEET)


async def test_without_a_fleet_the_list_shows_the_servers_met_and_the_extras(
    make_api: ApiFactory,
) -> None:
    api = await make_api(extra_servers=2)
    assert (await api.list_v1()).body["count"] == 2
    assert (await api.server(server_id(42))).status == 200  # every UUID exists: now met
    assert server_id(42) in ids(await api.list_v1())
    assert (await api.list_v1()).body["count"] == 3


async def test_a_listed_server_is_shown_as_the_single_read_shows_it(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await fleet_api(make_api, running_rate=0.5, job_seconds=(10.0, 10.0))
    assert (await api.reinstall(server_id(2))).status == 200
    clock.advance(3)  # under way: REBUILD, task state rebuilding
    v1 = (await api.list_v1(limit=50)).body["servers"]
    nova = (await api.list_nova(limit=50)).body["servers"]
    # Nova lists a volume's id and delete_on_termination only (no boot index, no
    # device: the reference's Table 8); the rest is the v1 list's.
    volumes = "os-extended-volumes:volumes_attached"
    assert all(set(v) == {"id", "delete_on_termination"} for s in nova for v in s[volumes])
    for server in v1:
        assert all("bootIndex" in v for v in server[volumes])
    kept = ("id", "delete_on_termination")
    as_nova = [{**s, volumes: [{k: v[k] for k in kept} for v in s[volumes]]} for s in v1]
    assert as_nova == nova
    for listed in v1:
        single = (await api.server(listed["id"])).body["server"]
        assert listed == single
    rebuilding = next(s for s in v1 if s["id"] == server_id(2))
    assert (rebuilding["status"], rebuilding["OS-EXT-STS:task_state"]) == ("REBUILD", "rebuilding")
    for field in ("OS-SRV-USG:launched_at", "updated", "os-extended-volumes:volumes_attached"):
        assert field in rebuilding


async def test_v1_status_filter_and_an_empty_result(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api, running_rate=0.5, seed=5)
    everything = (await api.list_v1(limit=50)).body["servers"]
    active = await api.list_v1(limit=50, status="ACTIVE")
    shutoff = await api.list_v1(limit=50, status="SHUTOFF")
    assert {s["status"] for s in active.body["servers"]} == {"ACTIVE"}
    assert {s["status"] for s in shutoff.body["servers"]} == {"SHUTOFF"}
    assert active.body["count"] + shutoff.body["count"] == len(everything) == 12
    assert 0 < active.body["count"] < 12
    # Paging inside a filter: count is the filter's, pages its servers only.
    pages = await all_v1(api, limit=2, status="ACTIVE")
    assert [i for p in pages for i in p] == ids(active)
    # A status no server has: nothing, count 0; and an unknown word lists nothing either.
    for status in ("BUILD", "NO_SUCH_STATUS"):
        assert (await api.list_v1(status=status)).body == {"count": 0, "servers": []}


async def test_status_filters_follow_a_reinstall_as_nova_maps_them(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await fleet_api(make_api, job_seconds=(10.0, 10.0))  # all SHUTOFF
    assert (await api.reinstall(server_id(1))).status == 200
    clock.advance(1)
    # Rebuilding a stopped server: status REBUILD, vm_state stopped. A SHUTOFF filter
    # keeps it (the vm_state), a REBUILD filter finds it (the task state).
    shutoff = (await api.list_v1(limit=50, status="SHUTOFF")).body
    assert shutoff["count"] == 12
    shown = {s["id"]: s["status"] for s in shutoff["servers"]}
    assert shown[server_id(1)] == "REBUILD"
    assert ids(await api.list_v1(status="REBUILD")) == [server_id(1)]
    assert ids(await api.list_nova(status="REBUILD")) == [server_id(1)]
    assert ids(await api.list_v1(status="ACTIVE")) == []
    clock.advance(10)  # ended: ACTIVE, out of the SHUTOFF filter
    assert ids(await api.list_v1(status="ACTIVE")) == [server_id(1)]
    assert server_id(1) not in ids(await api.list_v1(limit=50, status="SHUTOFF"))
    assert ids(await api.list_v1(status="REBUILD")) == []


async def test_v1_pages_are_not_held_still_a_server_leaving_the_filter_shifts_the_rest(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await fleet_api(make_api, job_seconds=(2.0, 2.0))  # all SHUTOFF
    before = ids(await api.list_v1(limit=50, status="SHUTOFF"))
    first = await api.list_v1(offset=1, limit=4, status="SHUTOFF")
    assert ids(first) == before[:4] and first.body["count"] == 12
    # Between the two page reads, a server of page 1 is reinstalled and comes back ACTIVE.
    assert (await api.reinstall(before[0])).status == 200
    clock.advance(3)
    second = await api.list_v1(offset=2, limit=4, status="SHUTOFF")
    # Everything after it moved up one place: page 2 now starts at the sixth server,
    # and the fifth (page 1's now) is on neither page this client read.
    assert second.body["count"] == 11
    assert ids(second) == before[5:9]
    assert before[4] not in ids(first) + ids(second)


async def test_v1_refuses_bad_paging_parameters_in_the_ecs_shape(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api)
    for params in ({"offset": -1}, {"limit": "ten"}, {"limit": 0}, {"offset": "1.5"}):
        answer = await api.list_v1(**params)
        assert (answer.status, answer.code) == (400, "Ecs.0005"), params
        assert "error" in answer.body


# -- Nova's list: marker, changes-since ------------------------------------------------------


async def test_nova_pages_by_marker_with_a_next_link_while_pages_are_full(
    make_api: ApiFactory,
) -> None:
    api = await fleet_api(make_api)
    everything = ids(await api.list_v1(limit=50))
    first = await api.list_nova(limit=5)
    assert ids(first) == everything[:5]
    (link,) = first.body["servers_links"]
    href = urlsplit(link["href"])
    assert (link["rel"], href.path) == ("next", f"/v2.1/{PROJECT}/servers/detail")
    assert href.netloc == urlsplit(api.sim.url).netloc
    assert parse_qs(href.query) == {"limit": ["5"], "marker": [everything[4]]}
    second = await api.list_nova(limit=5, marker=next_marker(first))
    assert ids(second) == everything[5:10]
    last = await api.list_nova(limit=5, marker=next_marker(second))
    assert ids(last) == everything[10:]
    assert "servers_links" not in last.body  # not full: the last page


async def test_nova_a_full_last_page_still_links_to_an_empty_one(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api, extra_servers=3)  # 10 servers
    first = await api.list_nova(limit=5)
    second = await api.list_nova(limit=5, marker=next_marker(first))
    assert len(ids(second)) == 5 and next_marker(second) is not None
    third = await api.list_nova(limit=5, marker=next_marker(second))
    assert third.body == {"servers": []}
    # The same list under /v2/; the default page is 25 (here: all ten, no link).
    assert ids(await api.list_nova(version="v2")) == ids(first) + ids(second)


async def test_nova_the_next_link_keeps_the_filters(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api)
    since = "2019-01-01T00:00:00Z"
    first = await api.list_nova(limit=2, status="SHUTOFF", since=since)
    (link,) = first.body["servers_links"]
    query = parse_qs(urlsplit(link["href"]).query)
    assert query == {
        "changes-since": [since],
        "limit": ["2"],
        "marker": [ids(first)[-1]],
        "status": ["SHUTOFF"],
    }


async def test_nova_changes_since_lists_what_changed_at_or_after_it(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await fleet_api(make_api, job_seconds=(4.0, 4.0))
    since = datetime.fromtimestamp(START, UTC)
    # Nothing changed since the clock's start: every server was last updated in 2020.
    assert (await api.list_nova(since=stamp(START))).body == {"servers": []}
    clock.advance(10)
    assert (await api.reinstall(server_id(3))).status == 200
    clock.advance(1)  # rebuilding since START + 10
    changed = await api.list_nova(since=stamp(START))
    assert ids(changed) == [server_id(3)]
    (server,) = changed.body["servers"]
    assert server["updated"] == stamp(START + 10) and server["status"] == "REBUILD"
    # At the very second of the change: still listed (Nova compares >=); a second later, not.
    assert ids(await api.list_nova(since=stamp(START + 10))) == [server_id(3)]
    assert ids(await api.list_nova(since=stamp(START + 11))) == []
    # Another zone and no zone at all name the same moment.
    moment = since + timedelta(seconds=10)
    west = moment.astimezone(timezone(timedelta(hours=-5))).isoformat()  # ...T03:00:10-05:00
    east = moment.astimezone(timezone(timedelta(hours=1))).isoformat()  # ...T09:00:10+01:00
    naive = moment.replace(tzinfo=None).isoformat()
    for value in (west, east, naive):
        assert ids(await api.list_nova(since=value)) == [server_id(3)], value
    clock.advance(5)  # ended at START + 15
    assert ids(await api.list_nova(since=stamp(START + 12))) == [server_id(3)]
    assert ids(await api.list_nova(since=stamp(START + 16))) == []
    # Combined with a status filter.
    assert ids(await api.list_nova(since=stamp(START), status="ACTIVE")) == [server_id(3)]
    assert ids(await api.list_nova(since=stamp(START), status="SHUTOFF")) == []


async def test_nova_marker_paging_misses_nothing_when_servers_change_between_reads(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await fleet_api(make_api, job_seconds=(2.0, 2.0))  # all SHUTOFF
    before = ids(await api.list_v1(limit=50, status="SHUTOFF"))
    first = await api.list_nova(limit=4, status="SHUTOFF")
    assert ids(first) == before[:4]
    # The marker server itself leaves the filter between the reads: it still marks a place.
    assert (await api.reinstall(before[3])).status == 200
    assert (await api.reinstall(before[0])).status == 200
    clock.advance(3)
    second = await api.list_nova(limit=4, status="SHUTOFF", marker=next_marker(first))
    assert ids(second) == before[4:8]
    # A server that changes ahead of the marker drops out; one behind it is not re-listed.
    assert (await api.reinstall(before[9])).status == 200
    clock.advance(3)
    third = await api.list_nova(limit=4, status="SHUTOFF", marker=next_marker(second))
    assert ids(third) == [before[8], before[10], before[11]]
    assert "servers_links" not in third.body


async def test_nova_refusals_are_in_nova_s_own_shape(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api)
    unknown = await api.list_nova(marker=server_id(999))
    assert unknown.status == 400
    assert unknown.body == {
        "badRequest": {"code": 400, "message": f"marker [{server_id(999)}] not found"}
    }
    for params in ({"limit": -1}, {"limit": "x"}, {"since": "yesterday"}):
        answer = await api.list_nova(**params)
        assert answer.status == 400 and set(answer.body) == {"badRequest"}, params
    assert (await api.list_nova(limit=0)).body == {"servers": []}  # Nova: an empty page


async def test_lists_are_counted_per_api_in_the_stats(make_api: ApiFactory) -> None:
    api = await fleet_api(make_api)
    await api.list_v1()
    await api.list_v1(offset=2)
    await api.list_nova()
    await api.list_nova(version="v2")
    await api.list_nova(limit=-1)  # refused: still a request
    await api.server(server_id(1))
    stats = await api.stats()
    assert stats["requests"] == {
        "reinstall": 0,
        "job": 0,
        "server": 1,
        "list_v1": 2,
        "list_nova": 3,
    }
    assert [len(stats["request_times"][k]) for k in ("list_v1", "list_nova")] == [2, 3]
    assert stats["errors_by_code"] == {"badRequest": 1}


async def test_lists_need_credentials_and_follow_the_project_s_policy(
    make_api: ApiFactory,
) -> None:
    api = await fleet_api(make_api, token="list-t0k", denied_projects=(PROJECT,))
    assert (await api.list_v1()).status == 401
    assert (await api.list_nova()).status == 401
    headers = {"X-Auth-Token": "list-t0k"}
    refused = await api.list_v1(headers=headers)
    assert (refused.status, refused.code) == (403, "Pdp.0001")
    assert (await api.list_nova(headers=headers)).code == "Pdp.0001"
