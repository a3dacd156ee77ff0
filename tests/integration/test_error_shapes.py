"""Every documented error body shape, read by every call of the client, over loopback HTTP.

The official SDK reads `{"error_code", "error_msg"}` (the API gateway's), then
`{"code", "message"}`, then a nested `{"...": {"code", "message"}}` (the ECS
service's `error`, Nova's fault names). A loopback stub answers each call with each
shape; the client must take the same decision whichever shape carries the code:
the gateway's APIGW.0308 is throttling (no Retry-After: the retry policy's backoff
applies), APIGW.0301/APIGW.0307 refuse the credentials, a 202 Common.0024 is
throttling and never an unknown outcome.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from client_helpers import PROJECT, TOKEN, loopback_app, make_client, server_id, spec

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.iam import IamAuth
from orchestrator.cloud.retry_policy import Decision, decide
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    ProjectRefused,
    Rejected,
    RetryLater,
    Throttled,
)

pytestmark = pytest.mark.timeout(30)

SHAPES = ["error_code", "code", "error", "named"]


def shaped(shape: str, code: str, message: str) -> dict[str, Any]:
    if shape == "error_code":  # the API gateway's
        return {"error_code": code, "error_msg": message, "request_id": "5e" * 16}
    if shape == "code":
        return {"code": code, "message": message}
    if shape == "error":  # the ECS service's
        return {"error": {"code": code, "message": message, "details": []}}
    return {"overLimit": {"code": code, "message": message}}  # Nova: the fault's name


Call = Callable[[EcsClient], Awaitable[object]]
CALLS: dict[str, Call] = {
    "reinstall": lambda c: c.reinstall(spec(1)),
    "job": lambda c: c.job(PROJECT, "ff80808288d41e1b018990260955686a"),
    "server": lambda c: c.server(PROJECT, server_id(1)),
    "list_v1": lambda c: c.servers_page(PROJECT, 1, 10),
    "list_nova": lambda c: c.servers_changed(PROJECT, datetime(2027, 1, 1, tzinfo=UTC), 10),
}


class Stub:
    """Answers every request with `status` and `body`; counts what it was sent."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(f"{request.method} {request.path_qs}")
        return web.Response(
            status=self.status,
            body=json.dumps(self.body).encode(),
            headers=self.headers,
            content_type="application/json",
        )


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, EcsClient]]:
    handler = Stub()
    async with (
        aiohttp.ClientSession() as http,
        loopback_app(handler.handle) as url,
        make_client(http, url, TokenAuth(TOKEN)) as client,
    ):
        yield handler, client


async def outcome(stub: tuple[Stub, EcsClient], call: str, status: int, body: Any) -> ApiError:
    handler, client = stub
    handler.status, handler.body = status, body
    with pytest.raises(ApiError) as info:
        await CALLS[call](client)
    return info.value


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("call", CALLS)
async def test_a_refusal_s_code_and_message_are_read_in_every_shape(
    stub: tuple[Stub, EcsClient], call: str, shape: str
) -> None:
    body = shaped(shape, "Ecs.0005", "Invalid parameter values.")
    error = await outcome(stub, call, 400, body)
    assert type(error) is Rejected
    assert (error.status, error.code) == (400, "Ecs.0005")
    assert "Invalid parameter values." in str(error)


@pytest.mark.parametrize("status", [429, 400, 200])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("call", CALLS)
async def test_the_gateway_s_throttling_is_throttled_without_retry_after(
    stub: tuple[Stub, EcsClient], call: str, shape: str, status: int
) -> None:
    message = "The throttling threshold has been reached: policy user over ratelimit,"
    message += "limit:5,time:1 minute"
    error = await outcome(stub, call, status, shaped(shape, "APIGW.0308", message))
    assert isinstance(error, Throttled)
    assert (error.status, error.code, error.retry_after) == (status, "APIGW.0308", None)
    assert "limit:5,time:1 minute" in str(error)
    assert decide(error) is Decision.RETRY
    assert stub[1].throttled == 1
    assert len(stub[0].hits) == 1  # the client does not resend by itself


@pytest.mark.parametrize(("code", "status"), [("APIGW.0301", 401), ("APIGW.0307", 403)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("call", CALLS)
async def test_the_gateway_s_credential_refusals_are_auth_failures(
    stub: tuple[Stub, EcsClient], call: str, shape: str, status: int, code: str
) -> None:
    error = await outcome(stub, call, status, shaped(shape, code, "Incorrect IAM authentication"))
    assert isinstance(error, AuthFailed)
    assert (error.status, error.code) == (status, code)
    assert decide(error) is Decision.ABORT


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("call", CALLS)
async def test_a_202_flow_limit_is_throttling_never_an_unknown_outcome(
    stub: tuple[Stub, EcsClient], call: str, shape: str
) -> None:
    error = await outcome(stub, call, 202, shaped(shape, "Common.0024", "Flow limit exceeded."))
    assert isinstance(error, Throttled) and not isinstance(error, OutcomeUnknown)
    assert (error.status, error.code) == (202, "Common.0024")


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_job_id_beside_a_flow_limit_code_is_a_delivered_reinstall(
    stub: tuple[Stub, EcsClient], shape: str
) -> None:
    # The job id proves the service took the request; calling it throttling would
    # send the server a second reinstall once the flow limit lifts.
    handler, client = stub
    job = "ff80808288d41e1b018990260955686b"
    handler.status = 202
    handler.body = {"job_id": job, **shaped(shape, "Common.0024", "Flow limit exceeded.")}
    assert await client.reinstall(spec(1)) == job


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_missing_server_in_any_shape_is_the_service_s_404(
    stub: tuple[Stub, EcsClient], shape: str
) -> None:
    # Read as the service's own code, not as a wrong endpoint (a 404 without one).
    error = await outcome(stub, "server", 404, shaped(shape, "Ecs.0114", "The ECS does not exist."))
    assert type(error) is NotFound and error.code == "Ecs.0114"


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_5xx_s_code_is_read_and_a_reinstall_stays_in_doubt(
    stub: tuple[Stub, EcsClient], shape: str
) -> None:
    body = shaped(shape, "Common.0001", "A system exception occurred.")
    reinstall = await outcome(stub, "reinstall", 500, body)
    assert type(reinstall) is OutcomeUnknown and reinstall.code == "Common.0001"
    read = await outcome(stub, "list_v1", 500, body)
    assert type(read) is RetryLater and read.code == "Common.0001"


async def test_a_job_s_own_error_code_is_its_outcome_not_an_error_body(
    stub: tuple[Stub, EcsClient],
) -> None:
    handler, client = stub
    handler.body = {
        "job_id": "ff80808288d41e1b018990260955686a",
        "status": "FAIL",
        "entities": {"server_id": server_id(1)},
        "error_code": "Ecs.0101",
        "fail_reason": "EcsException: the system disk is currently unresponsive.",
    }
    job = await client.job(PROJECT, "ff80808288d41e1b018990260955686a")
    assert (job.status, job.error_code) == ("FAIL", "Ecs.0101")


async def test_a_reinstall_answered_with_a_job_id_is_delivered_whatever_else_it_says(
    stub: tuple[Stub, EcsClient],
) -> None:
    # A job ID proves the service accepted it: resending it as "throttled" could
    # reinstall the server twice.
    handler, client = stub
    handler.body = {
        "job_id": "ff80808288d41e1b018990260955686a",
        **shaped("error_code", "APIGW.0308", ""),
    }
    assert await client.reinstall(spec(1)) == "ff80808288d41e1b018990260955686a"


# -- IAM's answers are read the same way ----------------------------------------------------


@pytest.fixture
async def iam() -> AsyncIterator[tuple[Stub, IamAuth]]:
    handler = Stub()
    async with aiohttp.ClientSession() as http, loopback_app(handler.handle) as url:
        config = CloudConfig(
            source="clouds.yaml",
            auth_type="password",
            cloud="stub",
            auth_url=url + "/v3",
            username="alice",
            password="iam-shapes-password-9c2e",
            user_domain_name="Dom",
        )
        yield handler, IamAuth(http, config)


@pytest.mark.parametrize("status", [429, 400])
@pytest.mark.parametrize("shape", SHAPES)
async def test_iam_reads_the_gateway_s_throttling_in_every_shape(
    iam: tuple[Stub, IamAuth], shape: str, status: int
) -> None:
    handler, auth = iam
    handler.status, handler.body = status, shaped(shape, "APIGW.0308", "over ratelimit")
    with pytest.raises(Throttled) as info:
        await auth.prepare(PROJECT)
    assert "APIGW.0308" in str(info.value) and "over ratelimit" in str(info.value)


@pytest.mark.parametrize("shape", SHAPES)
async def test_iam_refusal_names_its_code_in_every_shape(
    iam: tuple[Stub, IamAuth], shape: str
) -> None:
    handler, auth = iam
    handler.status, handler.body = 403, shaped(shape, "IAM.0002", "no access to the project")
    with pytest.raises(ProjectRefused) as info:
        await auth.prepare(PROJECT)
    assert info.value.code == "IAM.0002"
    assert "no access to the project" in str(info.value)


async def test_the_gateway_s_expired_token_is_renewed_once_whatever_its_status() -> None:
    # One loopback server plays IAM and ECS: the first ECS read is refused with the
    # gateway's APIGW.0307 under a 403, the second must carry a new token.
    tokens: list[str] = []
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST" and request.path == "/v3/auth/tokens":
            tokens.append(f"stub-token-{len(tokens) + 1}-0a9f")
            body = {"token": {"expires_at": "2099-01-01T00:00:00Z", "catalog": []}}
            return web.json_response(body, status=201, headers={"X-Subject-Token": tokens[-1]})
        seen.append(request.headers.get("X-Auth-Token", ""))
        if len(seen) == 1:
            refusal = shaped("error_code", "APIGW.0307", "The token must be updated.")
            return web.json_response(refusal, status=403)
        return web.json_response({"server": {"id": server_id(1), "status": "ACTIVE"}})

    async with aiohttp.ClientSession() as http, loopback_app(handle) as url:
        config = CloudConfig(
            source="clouds.yaml",
            auth_type="password",
            cloud="stub",
            auth_url=url + "/v3",
            username="alice",
            password="iam-renewal-password-77b1",
            user_domain_name="Dom",
        )
        async with make_client(http, url, IamAuth(http, config)) as client:
            view = await client.server(PROJECT, server_id(1))
    assert view.status == "ACTIVE"
    assert seen == tokens == ["stub-token-1-0a9f", "stub-token-2-0a9f"]
