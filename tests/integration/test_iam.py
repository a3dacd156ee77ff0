"""IAM password authentication over loopback HTTP: the client's IamAuth against the
simulator's IAM and ECS, both on one fake clock.

One token per project however many requests ask at once; renewed before it
expires, and once after a 401; a wrong password stops everything after one try;
a project IAM or ECS refuses fails alone; the catalog names the endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from client_helpers import FAST, OTHER_PROJECT, PROJECT, FakeClock, server_id, spec

from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.iam import IamAuth
from orchestrator.errors import AuthFailed, ProjectRefused
from orchestrator.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.timeout(30)

PASSWORD = "iam-test-password-5e1f"
USERS = (("alice", PASSWORD, "Dom"),)
FLEET = tuple((p, server_id(n)) for p in (PROJECT, OTHER_PROJECT) for n in range(1, 6))
UNKNOWN = "ab" * 16


def config(url: str, password: str = PASSWORD) -> CloudConfig:
    return CloudConfig(
        source="clouds.yaml",
        auth_type="password",
        cloud="sim",
        auth_url=url + "/v3",
        username="alice",
        password=password,
        user_domain_name="Dom",
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    started = Simulator(
        SimulatorConfig(seed=1, users=USERS, fleet=FLEET, token_ttl=3600.0, clock=clock),
        host="127.0.0.1",
        port=0,
    )
    await started.start()
    yield started
    await started.stop()


def client(
    http: aiohttp.ClientSession, auth: IamAuth, endpoints: Endpoints | None = None
) -> EcsClient:
    return EcsClient(http, endpoints or Endpoints(catalog=True), auth, timeouts=FAST)


async def test_concurrent_first_requests_share_one_token_per_project(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    auth = IamAuth(http, config(sim.url), clock=clock)
    ecs = client(http, auth)
    calls = [ecs.server(p, s, "eu-de") for p, s in FLEET for _ in range(3)]
    views = await asyncio.gather(*calls)
    assert len(views) == 30
    # No --endpoint: the catalog's URL (…/v1/{project}, stripped) served every call.
    stats = sim.stats()
    assert stats["tokens_issued"] == {PROJECT: 1, OTHER_PROJECT: 1}
    assert stats["unauthorized"] == 0 and stats["requests"]["server"] == 30


async def test_a_token_is_renewed_before_it_expires(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    auth = IamAuth(http, config(sim.url), clock=clock)
    ecs = client(http, auth)
    await ecs.server(PROJECT, server_id(1), "eu-de")
    clock.advance(3600.0 - 200.0)  # inside the renewal margin (min(300 s, 10 % of 1 h))
    await ecs.server(PROJECT, server_id(1), "eu-de")
    stats = sim.stats()
    assert stats["tokens_issued"] == {PROJECT: 2}
    assert stats["unauthorized"] == 0  # renewed before use, not after a refusal


async def test_a_401_mid_run_renews_once_and_the_request_goes_through(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    # The client's clock is an hour behind: it trusts a token the service calls expired.
    auth = IamAuth(http, config(sim.url), clock=lambda: clock() - 3600.0)
    ecs = client(http, auth)
    await ecs.server(PROJECT, server_id(1), "eu-de")
    clock.advance(3601.0)
    job_id = await ecs.reinstall(spec(2))
    assert job_id
    stats = sim.stats()
    assert stats["tokens_issued"] == {PROJECT: 2}
    assert stats["errors_by_code"].get("APIGW.0307") == 1
    assert stats["reinstalls_by_server"] == {server_id(2): 1}


async def test_a_401_that_renewal_cannot_fix_stops_the_run(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    # IAM of one simulator, ECS of another that knows none of its tokens.
    other = Simulator(SimulatorConfig(seed=2, users=USERS, fleet=FLEET, clock=clock), port=0)
    await other.start()
    try:
        auth = IamAuth(http, config(sim.url), clock=clock)
        ecs = client(http, auth, Endpoints(other.url))
        with pytest.raises(AuthFailed, match="401"):
            await ecs.server(PROJECT, server_id(1))
    finally:
        await other.stop()
    assert sim.stats()["tokens_issued"] == {PROJECT: 2}  # the first, and one renewal


async def test_a_wrong_password_is_tried_once_and_names_cloud_and_user(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    wrong = "wrong-password-7c0d"
    auth = IamAuth(http, config(sim.url, wrong), clock=clock)
    ecs = client(http, auth)
    calls = [ecs.server(p, s, "eu-de") for p, s in FLEET]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, AuthFailed) for r in results)
    message = str(results[0])
    # The user named shortened, the auth URL by its site only (as in all output).
    assert "cloud 'sim'" in message and "user 'a…e'" in message and "401" in message
    assert "alice" not in message and f"(auth_url {sim.url}):" in message
    assert wrong not in message and PASSWORD not in message
    # One project-scoped try and one domain-scoped check, not one per project.
    assert sim.stats()["token_refusals"] == 2


async def test_a_project_iam_refuses_fails_alone_and_is_not_asked_again(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    auth = IamAuth(http, config(sim.url), clock=clock)
    ecs = client(http, auth)
    for _ in range(3):
        with pytest.raises(ProjectRefused, match=f"no token for project {UNKNOWN}"):
            await ecs.server(UNKNOWN, server_id(1), "eu-de")
    await ecs.server(PROJECT, server_id(1), "eu-de")
    stats = sim.stats()
    # The unknown project once; the domain-scoped check proved the password good.
    assert stats["token_refusals"] == 1
    assert stats["tokens_issued"] == {PROJECT: 1}


async def test_a_403_fails_only_that_projects_requests(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    config_ = SimulatorConfig(
        seed=1, users=USERS, fleet=FLEET, denied_projects=(OTHER_PROJECT,), clock=clock
    )
    async with Simulator(config_, port=0) as denying:
        auth = IamAuth(http, config(denying.url), clock=clock)
        ecs = client(http, auth)
        with pytest.raises(ProjectRefused) as info:
            await ecs.reinstall(spec(1, project=OTHER_PROJECT))
        assert info.value.status == 403 and info.value.code == "Pdp.0001"
        assert "Policy does not allow" in str(info.value)
        assert await ecs.reinstall(spec(1))
        assert denying.stats()["reinstalls_by_server"] == {server_id(1): 1}


async def test_no_catalog_entry_for_the_region_refuses_that_project(
    http: aiohttp.ClientSession, sim: Simulator, clock: FakeClock
) -> None:
    auth = IamAuth(http, config(sim.url), clock=clock)
    ecs = client(http, auth)
    with pytest.raises(ProjectRefused, match="no ECS endpoint for region ap-southeast-1"):
        await ecs.server(PROJECT, server_id(1), "ap-southeast-1")
