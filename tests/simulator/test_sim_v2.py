"""POST /v2/{project_id}/cloudservers/{server_id}/reinstallos (Cloud-Init) and the
verification cases: a job that says SUCCESS while the server did not come back."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sim_helpers import SERVER, Api, ApiFactory, FakeClock, reinstall_body, server_id

SCRIPT = b"#!/bin/bash\necho user_test > /home/user.txt\n"
CMK = "83cdb52d-9ebf-4469-9cfa-e7b5b80da846"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def v2_body(**metadata: Any) -> dict[str, Any]:
    return reinstall_body(metadata=metadata) if metadata else reinstall_body()


async def test_v2_accepts_user_data_and_shares_the_job_machinery(
    api: Api, clock: FakeClock
) -> None:
    answer = await api.reinstall_v2(body=v2_body(user_data=b64(SCRIPT), BYOL="true"))
    assert answer.status == 200 and set(answer.body) == {"job_id"}
    assert (await api.view())[:2] == ("REBUILD", "rebuilding")
    clock.advance(60)
    job = (await api.job(answer.body["job_id"])).body
    assert job["status"] == "SUCCESS"
    assert (await api.view())[0] == "ACTIVE"
    assert (await api.reinstall(server_id(1))).status == 200  # and one through v1
    stats = await api.stats()
    assert stats["reinstalls_by_api"] == {"v1": 1, "v2": 1}
    assert stats["reinstall_requests_by_api"] == {"v1": 1, "v2": 1}
    assert stats["reinstalls_by_server"] == {SERVER: 1, server_id(1): 1}


async def test_v2_documented_shapes_on_a_running_server(make_api: ApiFactory) -> None:
    api = await make_api(running_rate=1.0)
    stop = reinstall_body(mode="withStopServer")
    encrypted = reinstall_body(
        mode="withStopServer", metadata={"__system__encrypted": "1", "__system__cmkid": CMK}
    )
    assert (await api.reinstall_v2(server_id(0), body=stop)).status == 200
    assert (await api.reinstall_v2(server_id(1), body=encrypted)).status == 200
    # Without withStopServer a running server is refused (the page: stopped servers only).
    refused = await api.reinstall_v2(server_id(2), body=reinstall_body())
    assert (refused.status, refused.code) == (400, "Ecs.0100")
    assert (await api.stats())["reinstalls_by_api"] == {"v1": 0, "v2": 2}


async def test_user_data_of_exactly_32_kb_is_accepted(api: Api) -> None:
    body = v2_body(user_data=b64(b"#" * 32 * 1024))
    assert (await api.reinstall_v2(body=body)).status == 200


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        (v2_body(user_data=b64(b"#" * (32 * 1024 + 1))), "Ecs.0005", "32768 bytes"),
        (v2_body(user_data="not base64!"), "Ecs.0005", "base64"),
        (v2_body(user_data=b64(SCRIPT)[:-2]), "Ecs.0005", "base64"),  # bad padding
        (v2_body(user_data=b64(SCRIPT).replace("I", "I\n")), "Ecs.0005", "base64"),
        (v2_body(user_data="ünïcode"), "Ecs.0005", "base64"),
        (v2_body(user_data=""), "Ecs.0005", "empty"),
        (v2_body(user_data=b64(b"\x89PNG\r\n\x1a\n\xff\xfe")), "Ecs.0005", "text"),
        (v2_body(user_data=7), "Ecs.0005", "user_data"),
        (v2_body(other="x"), "Ecs.0005", "'other'"),
        (reinstall_body(adminpass="Secret-Pa55"), "Ecs.0005", "'adminpass'"),
        (reinstall_body(mode="withoutStopServer"), "Ecs.0005", "mode"),
        (reinstall_body(metadata=[]), "Ecs.0005", "metadata"),
        ({"os-reinstall": {"userid": "u-1"}}, "Ecs.0005", "keyname"),
        ({"os-reinstall": {"keyname": "k", "userid": ""}}, "Ecs.0005", "userid"),
        (v2_body(__system__encrypted="yes"), "Ecs.0912", "__system__encrypted"),
        (v2_body(__system__cmkid=CMK), "Ecs.0912", "__system__encrypted"),
        (v2_body(__system__encrypted="1"), "Ecs.0912", "__system__cmkid"),
        (v2_body(__system__encrypted="1", __system__cmkid="k"), "Ecs.0912", "__system__cmkid"),
        ({}, "Ecs.0005", "os-reinstall"),
    ],
)
async def test_v2_validation_names_the_field_and_acts_on_nothing(
    api: Api, body: dict[str, Any], code: str, names: str
) -> None:
    answer = await api.reinstall_v2(body=body)
    assert (answer.status, answer.code) == (400, code)
    assert names in answer.body["error"]["message"]
    text = json.dumps(answer.body)
    for secret in ("Secret-Pa55", b64(SCRIPT)[:20], "user_test"):
        assert secret not in text
    stats = await api.stats()
    assert stats["reinstalls_by_server"] == {}
    assert stats["reinstall_requests_by_api"] == {"v1": 0, "v2": 1}


async def test_v2_empty_body_and_unknown_server(api: Api) -> None:
    assert (await api.reinstall_v2(data=b"")).code == "Common.0002"
    assert (await api.reinstall_v2("not-a-uuid")).code == "Ecs.0114"


async def test_v2_overlap_and_refusals_are_shared_with_v1(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(keypairs=("KeyPair-350b",), queue_seconds=(10.0, 10.0))
    unknown_key = await api.reinstall_v2(body=reinstall_body(keyname="nope"))
    assert unknown_key.code == "Ecs.0314"
    assert (await api.reinstall_v2()).status == 200
    assert (await api.reinstall()).code == "Ecs.0603"  # v1 while the v2 job is queued
    stats = await api.stats()
    assert stats["overlapping_servers"] == [SERVER]
    assert stats["reinstalls_by_api"] == {"v1": 0, "v2": 1}


async def test_success_but_error(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(success_but_error_rate=1.0, job_seconds=(5.0, 5.0))
    before = await api.view()
    job_id = (await api.reinstall()).body["job_id"]
    clock.advance(5.0)
    job = (await api.job(job_id)).body
    assert (job["status"], job["error_code"]) == ("SUCCESS", None)
    status, task_state, vm_state, _, launched = await api.view()
    assert (status, task_state, vm_state) == ("ERROR", None, "error")
    assert launched != before[4]  # rebuilt, but did not come back
    stats = await api.stats()
    assert (stats["success_but_error"], stats["success_but_stale"]) == ([SERVER], [])
    assert stats["successful_reinstalls_by_server"] == {SERVER: 1}


async def test_success_but_stale(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(success_but_stale_rate=1.0, job_seconds=(5.0, 5.0))
    before = await api.view()
    job_id = (await api.reinstall_v2()).body["job_id"]
    clock.advance(5.0)
    assert (await api.job(job_id)).body["status"] == "SUCCESS"
    assert await api.view() == ("ACTIVE", None, "active", "2027-01-15T08:00:05Z", before[4])
    stats = await api.stats()
    assert (stats["success_but_error"], stats["success_but_stale"]) == ([], [SERVER])


async def test_verification_cases_follow_the_seed(make_api: ApiFactory, clock: FakeClock) -> None:
    async def outcome(seed: int) -> tuple[list[str], list[str]]:
        api = await make_api(
            seed=seed,
            success_but_error_rate=0.3,
            success_but_stale_rate=0.3,
            job_seconds=(1.0, 1.0),
        )
        for n in range(30):
            assert (await api.reinstall(server_id(n))).status == 200
        clock.advance(1.0)
        stats = await api.stats()
        return stats["success_but_error"], stats["success_but_stale"]

    first = await outcome(5)
    assert first == await outcome(5)
    assert first[0] and first[1] and not set(first[0]) & set(first[1])
