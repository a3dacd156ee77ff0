"""The simulator's IAM: Keystone's answers, project-scoped tokens, expiry, per-project deny."""

from __future__ import annotations

from typing import Any

from sim_helpers import OTHER_PROJECT, PROJECT, SERVER, ApiFactory, FakeClock

USERS = (("alice", "pw-1", "Dom"),)
FLEET = ((PROJECT, SERVER), (OTHER_PROJECT, SERVER))


def token_request(project: str | None, password: str = "pw-1") -> dict[str, Any]:
    user = {"name": "alice", "password": password, "domain": {"name": "Dom"}}
    scope: dict[str, Any] = {"project": {"id": project}} if project else {"domain": {"name": "Dom"}}
    return {
        "auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}
    }


async def test_a_token_is_scoped_to_its_project_and_lists_the_catalog(
    make_api: ApiFactory,
) -> None:
    api = await make_api(users=USERS, fleet=FLEET)
    answer = await api.call("POST", "/v3/auth/tokens", body=token_request(PROJECT))
    assert answer.status == 201
    token = answer.headers["X-Subject-Token"]
    assert token.startswith("MIIsim")
    body = answer.body["token"]
    assert body["project"]["id"] == PROJECT and body["expires_at"].endswith("Z")
    (ecs,) = [s for s in body["catalog"] if s["type"] == "ecs"]
    assert {e["region_id"]: e["url"] for e in ecs["endpoints"]}["eu-de"] == (
        f"{api.sim.url}/v1/{PROJECT}"
    )
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    ok = await api.call("GET", path, headers={"X-Auth-Token": token})
    assert ok.status == 200
    other = await api.call(
        "GET", f"/v1/{OTHER_PROJECT}/cloudservers/{SERVER}", headers={"X-Auth-Token": token}
    )
    assert (other.status, other.code) == (401, "Common.0013")
    assert api.sim.stats()["tokens_issued"] == {PROJECT: 1}


async def test_keystone_answers_a_wrong_password_and_an_unknown_project_alike(
    make_api: ApiFactory,
) -> None:
    api = await make_api(users=USERS, fleet=FLEET)
    wrong = await api.call("POST", "/v3/auth/tokens", body=token_request(PROJECT, "nope"))
    unknown = await api.call("POST", "/v3/auth/tokens", body=token_request("ab" * 16))
    for answer in (wrong, unknown):
        assert answer.status == 401 and answer.body["error"]["code"] == 401
        assert answer.body["error"]["title"] == "Unauthorized"
        assert "X-Subject-Token" not in answer.headers
    assert "nope" not in str(wrong.body)
    domain = await api.call("POST", "/v3/auth/tokens", body=token_request(None))
    assert domain.status == 201 and domain.body["token"]["catalog"] == []
    malformed = await api.call("POST", "/v3/auth/tokens", data=b"{}")
    assert malformed.status == 400
    assert api.sim.stats()["token_refusals"] == 3


async def test_an_expired_token_is_refused(make_api: ApiFactory, clock: FakeClock) -> None:
    api = await make_api(users=USERS, fleet=FLEET, token_ttl=60.0)
    token = (await api.call("POST", "/v3/auth/tokens", body=token_request(PROJECT))).headers[
        "X-Subject-Token"
    ]
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    clock.advance(59.0)
    assert (await api.call("GET", path, headers={"X-Auth-Token": token})).status == 200
    clock.advance(1.0)
    expired = await api.call("GET", path, headers={"X-Auth-Token": token})
    assert (expired.status, expired.code) == (401, "APIGW.0307")


async def test_a_denied_project_answers_403_pdp_0001(make_api: ApiFactory) -> None:
    api = await make_api(users=USERS, fleet=FLEET, denied_projects=(OTHER_PROJECT,))
    token = (await api.call("POST", "/v3/auth/tokens", body=token_request(OTHER_PROJECT))).headers[
        "X-Subject-Token"
    ]
    denied = await api.call(
        "GET", f"/v1/{OTHER_PROJECT}/cloudservers/{SERVER}", headers={"X-Auth-Token": token}
    )
    assert (denied.status, denied.code) == (403, "Pdp.0001")
    assert "Policy does not allow" in denied.body["error"]["message"]
    assert api.sim.stats()["denied"] == 1


async def test_without_users_there_is_no_iam(make_api: ApiFactory) -> None:
    api = await make_api(token="t")
    answer = await api.call("POST", "/v3/auth/tokens", body=token_request(PROJECT))
    assert answer.status == 404
