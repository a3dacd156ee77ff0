"""The Cloud-Init reinstall on the wire: path, body and user data, over loopback HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from client_helpers import (
    PROJECT,
    FakeClock,
    loopback_app,
    make_client,
    server_id,
    sim_client,
    spec,
)

from orchestrator.cloud.userdata import load_user_data
from orchestrator.errors import Rejected

pytestmark = pytest.mark.timeout(30)

SCRIPT = "#cloud-config\nruncmd:\n  - echo 'Grüße' > /etc/motd\n"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_cloud_init_target_goes_to_v2_with_its_user_data_and_a_v1_one_without(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path, json.loads(await request.read())))
        return web.json_response({"job_id": f"job{len(seen)}"})

    (tmp_path / "init.yaml").write_text(SCRIPT, encoding="utf-8")
    user_data = load_user_data(tmp_path / "init.yaml")
    async with (
        loopback_app(record) as url,
        make_client(http, url, user_data=user_data.encoded) as client,
    ):
        await client.reinstall(spec(1, cloud_init=True, byol=True))
        await client.reinstall(spec(2))

    (v2_path, v2_body), (v1_path, v1_body) = seen
    assert v2_path == f"/v2/{PROJECT}/cloudservers/{server_id(1)}/reinstallos"
    metadata = v2_body["os-reinstall"].pop("metadata")
    assert base64.b64decode(metadata.pop("user_data"), validate=True).decode() == SCRIPT
    assert metadata == {"BYOL": "true"}
    assert v2_body == {
        "os-reinstall": {
            "keyname": "KeyPair-350b",
            "userid": "7e25b1da389f4697a79df3a0e5bd494e",
            "mode": "withStopServer",
        }
    }
    assert v1_path == f"/v1/{PROJECT}/cloudservers/{server_id(2)}/reinstallos"
    assert "metadata" not in v1_body["os-reinstall"]  # v1 has no user data field


async def test_the_simulator_accepts_the_v2_body_with_and_without_user_data(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    (tmp_path / "init.sh").write_text(SCRIPT, encoding="utf-8")
    encoded = load_user_data(tmp_path / "init.sh").encoded
    async with sim_client(http, clock=FakeClock(), client_kwargs={"user_data": encoded}) as (
        sim,
        client,
    ):
        await client.reinstall(spec(1, cloud_init=True))
        await client.reinstall(spec(2))
        stats = sim.stats()
    assert stats["reinstalls_by_api"] == {"v1": 1, "v2": 1}
    assert stats["reinstalls_by_server"] == {server_id(1): 1, server_id(2): 1}

    async with sim_client(http, clock=FakeClock()) as (sim, client):
        await client.reinstall(spec(1, cloud_init=True))  # no user data: a valid v2 body
        assert sim.stats()["reinstalls_by_api"] == {"v1": 0, "v2": 1}


async def test_the_simulator_refuses_user_data_that_was_not_checked(
    http: aiohttp.ClientSession,
) -> None:
    # What load_user_data would never let through: the service's own check answers.
    too_big = base64.b64encode(b"#" * (32 * 1024 + 1)).decode()
    async with sim_client(http, clock=FakeClock(), client_kwargs={"user_data": too_big}) as (
        sim,
        client,
    ):
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(1, cloud_init=True))
        assert info.value.code == "Ecs.0005"
        assert sim.stats()["reinstalls_total"] == 0
