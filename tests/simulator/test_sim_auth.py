"""Token and AK/SK authentication, and that credentials never leak."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sim_helpers import OTHER_PROJECT, PROJECT, SERVER, Api, ApiFactory, FakeClock, reinstall_body

from orchestrator.cloud import signing
from orchestrator.simulator import SimulatorConfig, verify_signature

VECTORS = Path("/work/shared/reference/aksk-test-vectors.json")
AK = "HPUTESTACCESSKEY0001"
SK = "test-secret-key-never-echoed-0123456789"
TOKEN = "t0k-secret-token-value"


def signed_headers(
    api,
    clock,
    method: str,
    path: str,
    body: bytes,
    *,
    sk: str = SK,
    project: str = PROJECT,
    date: float | None = None,
) -> dict[str, str]:
    """Headers of a request signed like the SDK does: Host, X-Sdk-Date, X-Project-Id."""
    when = datetime.fromtimestamp(clock.now if date is None else date, UTC)
    headers = {
        "Host": f"127.0.0.1:{api.sim.port}",
        "X-Sdk-Date": signing.sdk_date(when),
        "X-Project-Id": project,
        "Content-Type": "application/json",
    }
    headers["Authorization"] = signing.authorization(AK, sk, method, path, [], headers, body)
    return headers


async def test_auth_is_off_without_credentials(api: Api) -> None:
    assert (await api.server()).status == 200


async def test_token_good_bad_missing(make_api: ApiFactory) -> None:
    api = await make_api(token=TOKEN)
    assert (await api.server(headers={"X-Auth-Token": TOKEN})).status == 200
    for headers in ({"X-Auth-Token": "wrong"}, {}):
        for answer in (
            await api.server(headers=headers),
            await api.reinstall(headers=headers),
            await api.job("0" * 32, headers=headers),
        ):
            assert (answer.status, answer.code) == (401, "Common.0013")
            assert TOKEN not in json.dumps(answer.body)
    stats = await api.stats()
    assert stats["unauthorized"] == 6
    assert stats["reinstalls_by_server"] == {}


async def test_stats_route_needs_no_auth(make_api: ApiFactory) -> None:
    api = await make_api(token=TOKEN)
    assert (await api.stats())["requests"]["server"] == 0


async def test_aksk_signed_requests_pass(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}/reinstallos"
    body = json.dumps(reinstall_body()).encode()
    answer = await api.reinstall(data=body, headers=signed_headers(api, clock, "POST", path, body))
    assert answer.status == 200
    job_path = f"/v1/{PROJECT}/jobs/{answer.body['job_id']}"
    headers = signed_headers(api, clock, "GET", job_path, b"")
    assert (await api.job(answer.body["job_id"], headers=headers)).status == 200
    server_path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    headers = signed_headers(api, clock, "GET", server_path, b"")
    assert (await api.server(headers=headers)).status == 200


async def test_token_and_aksk_together(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(token=TOKEN, ak=AK, sk=SK)
    assert (await api.server(headers={"X-Auth-Token": TOKEN})).status == 200
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    assert (await api.server(headers=signed_headers(api, clock, "GET", path, b""))).status == 200
    assert (await api.server()).status == 401


async def test_wrong_secret_key_fails(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    answer = await api.server(headers=signed_headers(api, clock, "GET", path, b"", sk="other"))
    assert (answer.status, answer.code) == (401, "APIGW.0301")
    assert "signature" in answer.body["error"]["message"]
    assert SK not in json.dumps(answer.body)


async def test_tampered_body_fails(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}/reinstallos"
    body = json.dumps(reinstall_body()).encode()
    headers = signed_headers(api, clock, "POST", path, body)
    answer = await api.reinstall(data=body.replace(b"u-1", b"u-2"), headers=headers)
    assert (answer.status, answer.code) == (401, "APIGW.0301")


async def test_wrong_project_header_fails(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    headers = signed_headers(api, clock, "GET", path, b"", project=OTHER_PROJECT)
    answer = await api.server(headers=headers)
    assert (answer.status, answer.code) == (401, "APIGW.0301")
    assert "X-Project-Id" in answer.body["error"]["message"]


@pytest.mark.parametrize("offset", [-20 * 60, 20 * 60])
async def test_stale_date_fails_with_its_own_message(
    make_api: ApiFactory, clock: FakeClock, offset: int
) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    headers = signed_headers(api, clock, "GET", path, b"", date=clock.now + offset)
    answer = await api.server(headers=headers)
    assert (answer.status, answer.code) == (401, "APIGW.0301")
    assert "15 minutes" in answer.body["error"]["message"]


async def test_date_within_fifteen_minutes_passes(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    headers = signed_headers(api, clock, "GET", path, b"", date=clock.now - 14 * 60)
    assert (await api.server(headers=headers)).status == 200


async def test_missing_and_foreign_authorization_fail(make_api: ApiFactory) -> None:
    api = await make_api(ak=AK, sk=SK)
    assert (await api.server()).code == "APIGW.0301"
    answer = await api.server(headers={"Authorization": "Bearer abc"})
    assert (answer.status, answer.code) == (401, "APIGW.0301")


def test_reference_vectors_verify_with_the_simulators_check() -> None:
    data = json.loads(VECTORS.read_text())
    for vector in data["vectors"]:
        headers = {
            **vector["headers_in"],
            "Host": vector["host"],
            "Authorization": vector["authorization"],
        }
        query = [tuple(pair) for pair in vector["query"]]
        args = (vector["method"], vector["path"], query, headers)
        assert verify_signature(
            data["access_key"], data["secret_key"], *args, vector["body"].encode()
        )
        assert not verify_signature(data["access_key"], "wrong", *args, vector["body"].encode())
        assert not verify_signature(data["access_key"], data["secret_key"], *args, b"tampered")


def test_secrets_stay_out_of_repr() -> None:
    config = SimulatorConfig(token=TOKEN, ak=AK, sk=SK)
    text = repr(config)
    assert TOKEN not in text and SK not in text
    assert "seed=0" in text


async def test_five_failed_signatures_lock_the_key_pair(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """The gateway locks a key pair after five failed signatures, for five minutes: a
    good signature is refused too until then."""
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"

    def good() -> dict[str, str]:
        return signed_headers(api, clock, "GET", path, b"")

    for _ in range(4):
        bad = signed_headers(api, clock, "GET", path, b"", sk="other")
        assert (await api.server(headers=bad)).code == "APIGW.0301"
    assert (await api.server(headers=good())).status == 200  # four: not locked; count reset
    for _ in range(5):
        bad = signed_headers(api, clock, "GET", path, b"", sk="other")
        assert (await api.server(headers=bad)).code == "APIGW.0301"
    locked = await api.server(headers=good())
    assert (locked.status, locked.code) == (401, "APIGW.0301")
    assert "locked" in locked.body["error"]["message"]
    clock.advance(299.0)
    assert (await api.server(headers=good())).status == 401
    clock.advance(1.0)
    assert (await api.server(headers=good())).status == 200


@pytest.mark.parametrize("status", [400, 403])
async def test_a_frozen_account_is_answered_ecs_0003(make_api: ApiFactory, status: int) -> None:
    api = await make_api(frozen_status=status)
    for answer in (await api.server(), await api.reinstall(), await api.job("0" * 32)):
        assert (answer.status, answer.code) == (status, "Ecs.0003")
    assert (await api.stats())["reinstalls_by_server"] == {}
