"""POST /v1/{project_id}/cloudservers/{server_id}/reinstallos: acceptance and every refusal."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sim_helpers import PROJECT, SERVER, Api, ApiFactory, FakeClock, reinstall_body, server_id

JOB_ID = re.compile(r"[0-9a-f]{32}")


async def test_accepts_and_starts_rebuilding(api: Api) -> None:
    answer = await api.reinstall()
    assert answer.status == 200
    assert set(answer.body) == {"job_id"}
    assert JOB_ID.fullmatch(answer.body["job_id"])

    server = (await api.server()).body["server"]
    assert server["status"] == "REBUILD"
    assert server["OS-EXT-STS:task_state"] == "rebuilding"
    assert server["key_name"] == "KeyPair-350b"

    stats = await api.stats()
    assert stats["reinstalls_by_server"] == {SERVER: 1}
    assert stats["requests"]["reinstall"] == 1
    assert stats["jobs"]["in_progress"] == 1


async def test_job_ids_are_unique_lowercase_hex(api: Api) -> None:
    ids = [(await api.reinstall(server_id(n))).body["job_id"] for n in range(30)]
    assert all(JOB_ID.fullmatch(job_id) for job_id in ids)
    assert len(set(ids)) == len(ids)


async def test_optional_fields_are_accepted(api: Api) -> None:
    body = reinstall_body(mode="withStopServer", metadata={"BYOL": "true"})
    assert (await api.reinstall(body=body)).status == 200


@pytest.mark.parametrize(
    ("data", "code", "names"),
    [
        (b"", "Common.0002", None),
        (b"   ", "Common.0002", None),
        (b"{not json", "Ecs.0005", "JSON"),
        (b"\xff\xfe", "Ecs.0005", "JSON"),
        (b"[1, 2]", "Ecs.0005", "object"),
        (b"{}", "Ecs.0005", "os-reinstall"),
        (b'{"os-reinstall": "x"}', "Ecs.0005", "os-reinstall"),
        (b'{"os-reinstall": {"userid": "u"}}', "Ecs.0005", "keyname"),
        (b'{"os-reinstall": {"keyname": 7, "userid": "u"}}', "Ecs.0005", "keyname"),
        (b'{"os-reinstall": {"keyname": "k"}}', "Ecs.0005", "userid"),
        (b'{"os-reinstall": {"keyname": "k", "userid": null}}', "Ecs.0005", "userid"),
    ],
)
async def test_invalid_bodies_are_refused(
    api: Api, data: bytes, code: str, names: str | None
) -> None:
    answer = await api.reinstall(data=data)
    assert answer.status == 400
    assert answer.code == code
    assert answer.body["error"]["details"] == []
    if names:
        assert names in answer.body["error"]["message"]
    assert (await api.stats())["reinstalls_by_server"] == {}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "withoutStopServer"}, "mode"),
        ({"mode": None}, "mode"),
        ({"mode": "withstopserver"}, "mode"),
        ({"metadata": "BYOL"}, "metadata"),
        ({"metadata": {"BYOL": True}}, "BYOL"),
    ],
)
async def test_invalid_optional_fields_are_named(
    api: Api, spec: dict[str, Any], field: str
) -> None:
    answer = await api.reinstall(body=reinstall_body(**spec))
    assert (answer.status, answer.code) == (400, "Ecs.0005")
    assert field in answer.body["error"]["message"]


async def test_unknown_and_malformed_servers_are_404(api: Api) -> None:
    for server in ("not-a-uuid", SERVER.upper(), SERVER[:-1]):
        answer = await api.reinstall(server)
        assert (answer.status, answer.code) == (404, "Ecs.0114")


async def test_body_is_checked_before_existence(api: Api) -> None:
    answer = await api.reinstall("not-a-uuid", data=b"")
    assert answer.code == "Common.0002"


async def test_missing_servers(make_api: ApiFactory) -> None:
    api = await make_api(missing_rate=1.0)
    answer = await api.reinstall()
    assert (answer.status, answer.code) == (404, "Ecs.0114")
    assert (await api.server()).status == 404


async def test_locked_servers(make_api: ApiFactory) -> None:
    api = await make_api(locked_rate=1.0)
    answer = await api.reinstall()
    assert (answer.status, answer.code) == (400, "Ecs.0605")
    assert (await api.server()).body["server"]["locked"] is True


async def test_servers_without_system_disk(make_api: ApiFactory) -> None:
    api = await make_api(no_disk_rate=1.0)
    answer = await api.reinstall()
    assert (answer.status, answer.code) == (400, "Ecs.0105")
    server = (await api.server()).body["server"]
    assert server["os-extended-volumes:volumes_attached"] == []


async def test_locked_is_checked_before_no_disk(make_api: ApiFactory) -> None:
    api = await make_api(locked_rate=1.0, no_disk_rate=1.0)
    assert (await api.reinstall()).code == "Ecs.0605"


async def test_running_servers_need_with_stop_server(make_api: ApiFactory) -> None:
    api = await make_api(running_rate=1.0)
    assert (await api.server()).body["server"]["status"] == "ACTIVE"
    refused = await api.reinstall()
    assert (refused.status, refused.code) == (400, "Ecs.0100")
    assert "withStopServer" in refused.body["error"]["message"]
    accepted = await api.reinstall(body=reinstall_body(mode="withStopServer"))
    assert accepted.status == 200


async def test_second_reinstall_while_rebuilding_is_refused(api: Api) -> None:
    assert (await api.reinstall()).status == 200
    again = await api.reinstall(body=reinstall_body(mode="withStopServer"))
    assert (again.status, again.code) == (400, "Ecs.0100")
    assert "in progress" in again.body["error"]["message"]
    stats = await api.stats()
    assert stats["rejected_while_rebuilding"] == 1
    assert stats["reinstalls_by_server"] == {SERVER: 1}


async def test_keypairs_restrict_key_names(make_api: ApiFactory) -> None:
    api = await make_api(keypairs=("KeyPair-350b", "other"))
    unknown = await api.reinstall(body=reinstall_body(keyname="nope"))
    assert (unknown.status, unknown.code) == (400, "Ecs.0314")
    assert (await api.reinstall(body=reinstall_body(keyname="other"))).status == 200


async def test_fleet_restricts_servers_to_listed_pairs(make_api: ApiFactory) -> None:
    api = await make_api(fleet=((PROJECT, SERVER), (PROJECT, "legacy-id-7")))
    assert (await api.reinstall()).status == 200
    # Listed IDs exist even when not canonical UUIDs: the fleet is the truth.
    assert (await api.reinstall("legacy-id-7")).status == 200
    assert (await api.reinstall(server_id(1))).code == "Ecs.0114"
    assert (await api.reinstall(project="ffff" * 8)).code == "Ecs.0114"
    assert (await api.server(server_id(1))).status == 404


async def test_fleet_with_missing_rate_hides_listed_servers(make_api: ApiFactory) -> None:
    api = await make_api(fleet=((PROJECT, SERVER),), missing_rate=1.0)
    assert (await api.reinstall()).code == "Ecs.0114"


async def test_reinstall_after_success_is_counted(api: Api, clock: FakeClock) -> None:
    assert (await api.reinstall()).status == 200
    clock.advance(60)
    # Succeeded: ACTIVE now, so a further reinstall needs withStopServer.
    assert (await api.reinstall()).code == "Ecs.0100"
    assert (await api.reinstall(body=reinstall_body(mode="withStopServer"))).status == 200
    stats = await api.stats()
    assert stats["reinstalls_after_success"] == 1
    assert stats["reinstalls_by_server"] == {SERVER: 2}
    assert stats["successful_reinstalls_by_server"] == {SERVER: 1}


async def test_failed_server_can_be_reinstalled_again(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(job_fail_rate=1.0)
    assert (await api.reinstall()).status == 200
    clock.advance(60)
    assert (await api.server()).body["server"]["status"] == "ERROR"
    assert (await api.reinstall()).status == 200
    assert (await api.stats())["reinstalls_after_success"] == 0
