"""EcsClient against the in-process simulator over loopback HTTP: answers and failures.

Most tests drive the simulator with a fake clock (`clock=`), so jobs end and rate
limits refill only when the test says; AK/SK tests use the real clock because the
signature carries the time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from client_helpers import (
    AK,
    OTHER_PROJECT,
    PROJECT,
    SK,
    TOKEN,
    FakeClock,
    RecordingLimiter,
    free_port,
    loopback_app,
    make_client,
    server_id,
    sim_client,
    spec,
)

from orchestrator.cloud.auth import AkSkAuth, TokenAuth
from orchestrator.cloud.client import JobView, ServerView, Timeouts
from orchestrator.engine.pacing import RateLimiter
from orchestrator.engine.settle import Before, Verdict, parse_time, settle
from orchestrator.engine.settle import Clock as SettleClock
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    CommandUnderWay,
    NotFound,
    NotSent,
    OutcomeUnknown,
    Rejected,
    RetryLater,
    ServiceBusy,
    Throttled,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _is_hex_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


# -- the three calls ---------------------------------------------------------------------


async def test_reinstall_returns_the_job_id(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock) as (sim, client):
        job_id = await client.reinstall(spec(1))
        assert _is_hex_id(job_id)
        stats = sim.stats()
        assert stats["reinstalls_by_server"] == {server_id(1): 1}
        assert stats["requests"]["reinstall"] == 1
        assert client.requests["reinstall"] == 1
        # A second server gets its own job.
        assert await client.reinstall(spec(2)) != job_id
        assert sim.stats()["reinstalls_total"] == 2


async def test_reinstall_sends_the_body_of_the_spec(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, keypairs=("only-this-key",)) as (_sim, client):
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(1))
        assert info.value.code == "Ecs.0314"
        assert await client.reinstall(spec(1, keyname="only-this-key"))
        server = await client.server(PROJECT, server_id(1))
        assert server.status == "REBUILD"


async def test_running_server_needs_stop_mode(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, running_rate=1.0) as (sim, client):
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(1, mode=None))
        assert (info.value.status, info.value.code) == (400, "Ecs.0100")
        assert await client.reinstall(spec(1))
        assert sim.stats()["reinstalls_total"] == 1


async def test_job_follows_the_reinstall_to_success(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, job_seconds=(10.0, 10.0)) as (_sim, client):
        job_id = await client.reinstall(spec(3))
        first = await client.job(PROJECT, job_id)
        assert first == JobView(
            job_id=job_id,
            status="INIT",
            server_id=server_id(3),
            error_code=None,
            fail_reason=None,
            begin_time=first.begin_time,
            end_time=None,
        )
        assert first.begin_time is not None
        clock.advance(5.0)
        assert (await client.job(PROJECT, job_id)).status == "RUNNING"
        clock.advance(5.0)
        done = await client.job(PROJECT, job_id)
        assert (done.status, done.server_id, done.error_code) == ("SUCCESS", server_id(3), None)
        assert client.requests["job"] == 3


async def test_job_failure_carries_code_and_reason(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, job_seconds=(1.0, 1.0), job_fail_rate=1.0) as (
        _sim,
        client,
    ):
        job_id = await client.reinstall(spec(4))
        clock.advance(2.0)
        job = await client.job(PROJECT, job_id)
        assert job.status == "FAIL"
        assert job.error_code in {"Ecs.0101", "Ecs.0202"}
        assert job.fail_reason and "EcsException" in job.fail_reason
        server = await client.server(PROJECT, server_id(4))
        assert server.status == "ERROR"


async def test_server_view_before_during_and_after(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, job_seconds=(3.0, 3.0)) as (_sim, client):
        before = await client.server(PROJECT, server_id(5))
        assert isinstance(before, ServerView)
        assert (before.server_id, before.status, before.vm_state, before.task_state) == (
            server_id(5),
            "SHUTOFF",
            "stopped",
            None,
        )
        assert parse_time(before.launched_at) is not None
        intent_at = "2027-01-15T08:00:00.000000Z"
        evidence = Before(before.launched_at, before.status, before.updated, before.launched_at)
        soon = SettleClock(intent_at, 2.0, watched=1.0, quiet=60.0)
        late = SettleClock(intent_at, 2.0, watched=300.0, quiet=60.0)
        await client.reinstall(spec(5))
        during = await client.server(PROJECT, server_id(5))
        assert (during.status, during.task_state) == ("REBUILD", "rebuilding")
        assert settle(during, evidence, soon).verdict is Verdict.FOLLOW
        clock.advance(4.0)
        after = await client.server(PROJECT, server_id(5))
        assert (after.status, after.vm_state, after.task_state) == ("ACTIVE", "active", None)
        moved, was = parse_time(after.launched_at), parse_time(before.launched_at)
        assert moved is not None and was is not None and moved > was
        # The settlement logic reads these real answers as intended.
        assert settle(after, evidence, soon).verdict is Verdict.SUCCEEDED
        # Untouched: "not accepted" only after the quiet period, with agreeing readings.
        assert settle(before, evidence, soon).verdict is Verdict.WAIT
        assert settle(before, evidence, late).verdict is Verdict.WAIT
        assert settle(before, evidence, late, previous=before).verdict is Verdict.NOT_ACCEPTED


# -- refusals the service means ------------------------------------------------------------


async def test_missing_server_is_not_found(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock, missing_rate=1.0) as (sim, client):
        with pytest.raises(NotFound) as info:
            await client.server(PROJECT, server_id(6))
        assert (info.value.status, info.value.code) == (404, "Ecs.0114")
        with pytest.raises(NotFound) as info:
            await client.reinstall(spec(6))
        assert (info.value.status, info.value.code) == (404, "Ecs.0114")
        assert sim.stats()["reinstalls_total"] == 0


async def test_locked_server_is_rejected(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock, locked_rate=1.0) as (sim, client):
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(7))
        assert type(info.value) is Rejected
        assert (info.value.status, info.value.code) == (400, "Ecs.0605")
        assert "Ecs.0605" in str(info.value)
        assert sim.stats()["reinstalls_total"] == 0


async def test_reinstall_while_rebuilding_is_rejected(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock) as (sim, client):
        await client.reinstall(spec(8))
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(8))
        assert info.value.code == "Ecs.0100"
        assert sim.stats()["reinstalls_by_server"] == {server_id(8): 1}


@pytest.mark.parametrize("project", [PROJECT, OTHER_PROJECT])
async def test_unknown_job_is_not_found(
    http: aiohttp.ClientSession, clock: FakeClock, project: str
) -> None:
    async with sim_client(http, clock=clock) as (_sim, client):
        job_id = await client.reinstall(spec(9))
        unknown = "0" * 32 if project == PROJECT else job_id  # another project's job
        with pytest.raises(NotFound) as info:
            await client.job(project, unknown)
        assert info.value.code == "Common.0011"


# -- refusals before acting: retry later ---------------------------------------------------


async def test_429_throttling_with_retry_after(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, rate_limit=1.0) as (sim, client):
        assert await client.reinstall(spec(10))
        throttled: list[Throttled] = []
        for n in range(11, 15):
            with pytest.raises(Throttled) as info:
                await client.reinstall(spec(n))
            throttled.append(info.value)
        for exc in throttled:
            assert (exc.status, exc.code) == (429, "Common.1503")
            assert exc.retry_after is not None and exc.retry_after >= 1.0
        # The other APIs have buckets of their own.
        await client.server(PROJECT, server_id(10))
        with pytest.raises(Throttled) as info:
            await client.server(PROJECT, server_id(10))
        assert info.value.retry_after is not None
        assert client.throttled == 5
        assert sim.stats()["throttled"] == 5
        assert sim.stats()["reinstalls_total"] == 1
        # Once the bucket refills, the same request goes through.
        clock.advance(1.0)
        assert await client.reinstall(spec(11))


async def test_202_flow_limit_is_throttling(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock, rate_limit=1.0, throttle_style="202") as (
        sim,
        client,
    ):
        assert await client.reinstall(spec(20))
        with pytest.raises(Throttled) as info:
            await client.reinstall(spec(21))
        assert (info.value.status, info.value.code) == (202, "Common.0024")
        assert info.value.retry_after is None  # a 202 carries no Retry-After
        await client.server(PROJECT, server_id(20))
        with pytest.raises(Throttled) as info:
            await client.server(PROJECT, server_id(20))
        assert (info.value.status, info.value.code) == (202, "Common.0024")
        with pytest.raises(NotFound):  # takes the job bucket's only token
            await client.job(PROJECT, "0" * 32)
        with pytest.raises(Throttled) as info:
            await client.job(PROJECT, "0" * 32)
        assert info.value.code == "Common.0024"
        assert client.throttled == 3
        assert sim.stats()["reinstalls_by_server"] == {server_id(20): 1}


async def test_busy_service(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock, busy_rate=1.0) as (sim, client):
        # A read refused as busy is read again later; a reinstall is not retried: the
        # command under way may be an earlier reinstall of ours (settled from the server).
        calls = [
            (client.reinstall(spec(30)), CommandUnderWay),
            (client.job(PROJECT, "0" * 32), ServiceBusy),
            (client.server(PROJECT, server_id(30)), ServiceBusy),
        ]
        for call, error in calls:
            with pytest.raises(error) as info:
                await call
            assert type(info.value) is error
            assert (info.value.status, info.value.code) == (501, "Ecs.0603")
        assert client.throttled == 0
        assert sim.stats()["busy"] == 3


async def test_server_errors(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock, error_rate=1.0) as (sim, client):
        # A 5xx on a reinstall does not prove it was not acted on: settle, never resend.
        for n in range(40, 46):
            with pytest.raises(OutcomeUnknown) as info:
                await client.reinstall(spec(n))
            assert info.value.status in {500, 503}
        # A 5xx on a read is simply retried.
        for call in (client.job(PROJECT, "0" * 32), client.server(PROJECT, server_id(40))):
            with pytest.raises(RetryLater) as retry:
                await call
            assert not isinstance(retry.value, Throttled | ServiceBusy)
            assert retry.value.status in {500, 503}
        assert sim.stats()["errors_injected"] == 8


async def test_dropped_answer_is_outcome_unknown_but_applied(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with sim_client(http, clock=clock, drop_rate=1.0) as (sim, client):
        with pytest.raises(OutcomeUnknown):
            await client.reinstall(spec(50))
        stats = sim.stats()
        assert stats["dropped"] == 1
        assert stats["reinstalls_by_server"] == {server_id(50): 1}
        # Exactly one request reached the service: nothing resent behind our back.
        assert stats["requests"]["reinstall"] == 1
        server = await client.server(PROJECT, server_id(50))
        assert server.status == "REBUILD"


async def test_closed_port_is_not_sent(http: aiohttp.ClientSession) -> None:
    async with make_client(http, f"http://127.0.0.1:{free_port()}", TokenAuth(TOKEN)) as client:
        for call in (
            client.reinstall(spec(60)),
            client.job(PROJECT, "0" * 32),
            client.server(PROJECT, server_id(60)),
        ):
            with pytest.raises(NotSent) as info:
                await call
            assert TOKEN not in str(info.value)


async def test_timeout_after_sending(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    quick = Timeouts(connect=1.0, total=0.1)
    async with sim_client(http, clock=clock, latency_ms=400, client_kwargs={"timeouts": quick}) as (
        sim,
        client,
    ):
        start = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await client.reinstall(spec(70))
        assert time.monotonic() - start < 0.39
        with pytest.raises(RetryLater) as info:
            await client.server(PROJECT, server_id(70))
        assert not isinstance(info.value, NotSent)
        # The reinstall did reach the service: that is why its outcome is unknown.
        assert sim.stats()["requests"]["reinstall"] == 1


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [TokenAuth("wrong-token"), None], ids=["wrong", "none"])
async def test_refused_credentials(
    http: aiohttp.ClientSession, clock: FakeClock, credentials: TokenAuth | None
) -> None:
    async with sim_client(http, clock=clock, token=TOKEN, credentials=credentials) as (sim, client):
        for call in (
            client.reinstall(spec(80)),
            client.job(PROJECT, "0" * 32),
            client.server(PROJECT, server_id(80)),
        ):
            with pytest.raises(AuthFailed) as info:
                await call
            assert info.value.status == 401
            assert info.value.code == "Common.0013"
            assert TOKEN not in str(info.value)
        assert sim.stats()["unauthorized"] == 3
        assert sim.stats()["reinstalls_total"] == 0


async def test_aksk_signed_calls(http: aiohttp.ClientSession) -> None:
    creds = AkSkAuth(AK, SK)
    async with sim_client(http, ak=AK, sk=SK, credentials=creds, job_seconds=(0.0, 0.0)) as (
        sim,
        client,
    ):
        job_id = await client.reinstall(spec(90))
        other = await client.reinstall(spec(91, project=OTHER_PROJECT))
        assert (await client.job(PROJECT, job_id)).status == "SUCCESS"
        assert (await client.job(OTHER_PROJECT, other)).server_id == server_id(91)
        assert (await client.server(PROJECT, server_id(90))).status == "ACTIVE"
        stats = sim.stats()
        assert stats["unauthorized"] == 0
        assert stats["reinstalls_total"] == 2


async def test_aksk_with_security_token(http: aiohttp.ClientSession) -> None:
    creds = AkSkAuth(AK, SK, security_token="temporary-sts-token")
    async with sim_client(http, ak=AK, sk=SK, credentials=creds) as (sim, client):
        assert await client.reinstall(spec(92))
        assert sim.stats()["unauthorized"] == 0


@pytest.mark.parametrize(
    "creds",
    [AkSkAuth(AK, "not-the-secret"), AkSkAuth("HPUSOMEOTHERKEY00000", SK)],
    ids=["wrong-sk", "wrong-ak"],
)
async def test_aksk_bad_signature_is_auth_failed(
    http: aiohttp.ClientSession, creds: AkSkAuth
) -> None:
    async with sim_client(http, ak=AK, sk=SK, credentials=creds) as (sim, client):
        with pytest.raises(AuthFailed) as info:
            await client.reinstall(spec(93))
        assert info.value.code == "APIGW.0301"
        assert SK not in str(info.value) and "not-the-secret" not in str(info.value)
        assert sim.stats()["reinstalls_total"] == 0


# -- counters and the before_send hook ---------------------------------------------------


async def test_request_counters_by_kind(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    async with sim_client(http, clock=clock) as (sim, client):
        job_a = await client.reinstall(spec(100))
        await client.reinstall(spec(101))
        for _ in range(3):
            await client.job(PROJECT, job_a)
        await client.server(PROJECT, server_id(100))
        assert dict(client.requests) == {"reinstall": 2, "job": 3, "server": 1}
        # The simulator names every API it serves, those not called with 0.
        assert client.requests == Counter(sim.stats()["requests"])
        assert client.throttled == 0


async def test_a_reinstall_is_granted_then_spaced_by_the_engine_around_its_intent(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # The engine's order: the grant, its intent, the send slot, its last look, the send.
    log: list[str] = []
    limiter = RecordingLimiter(log, RateLimiter(rate=20.0, burst=1))
    async with sim_client(http, clock=clock, client_kwargs={"submit_limiter": limiter}) as (
        sim,
        client,
    ):
        seen_by_service: list[int] = []
        started = time.monotonic()
        for n in (110, 111):
            await client.reinstall_slot(None)
            log.append("intent")
            seen_by_service.append(sim.stats()["requests"]["reinstall"])
            await client.reinstall_spacing(None)
            log.append("last check")
            await client.reinstall(spec(n))
        elapsed = time.monotonic() - started
        once = ["acquired", "intent", "spaced", "last check"]
        assert log == once + once
        # When the intent was made, the service had not yet seen that call's request.
        assert seen_by_service == [0, 1]
        assert sim.stats()["requests"]["reinstall"] == 2
        assert elapsed >= 0.04  # the second grant waited for the pacer (20/s)


async def test_the_reinstall_itself_is_not_paced_again(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    log: list[str] = []
    async with sim_client(
        http, clock=clock, client_kwargs={"submit_limiter": RecordingLimiter(log)}
    ) as (sim, client):
        await client.reinstall(spec(120))
        assert log == []  # paced by the engine, around its intent
        assert sim.stats()["requests"]["reinstall"] == 1


async def test_reads_use_the_poll_limiter_not_the_reinstall_pacer(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    log: list[str] = []
    async with sim_client(
        http,
        clock=clock,
        client_kwargs={"submit_limiter": RecordingLimiter(log)},
    ) as (_sim, client):
        await client.server(PROJECT, server_id(130))
        assert log == []


# -- answers the simulator never gives ---------------------------------------------------


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    hits: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(f"{request.method} {request.path}")
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return web.Response(body=data, status=status, headers=headers)

    handler.hits = hits  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {}),
        (200, {"job_id": ""}),
        (200, {"job_id": 12345}),
        (200, {"job_id": "../../etc"}),
        (200, b"<html>ok</html>"),
        (204, b""),
        (302, b""),
        (500, b"<html>gateway</html>"),
    ],
)
async def test_reinstall_answer_without_a_usable_job_id_is_outcome_unknown(
    http: aiohttp.ClientSession, status: int, body: Any
) -> None:
    handler = _answer(status, body, {"Location": "http://127.0.0.1:9/elsewhere"})
    async with loopback_app(handler) as url, make_client(http, url, TokenAuth(TOKEN)) as client:
        with pytest.raises(OutcomeUnknown):
            await client.reinstall(spec(140))
    assert len(handler.hits) == 1  # sent once, no redirect followed, no resend


async def test_202_with_a_job_id_is_delivered(http: aiohttp.ClientSession) -> None:
    job_id = "ff80808288d41e1b018990260955686a"
    async with (
        loopback_app(_answer(202, {"job_id": job_id})) as url,
        make_client(http, url, TokenAuth(TOKEN)) as client,
    ):
        assert await client.reinstall(spec(141)) == job_id


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"status": 7, "entities": {}}, BadResponse),
        ({"status": " ", "entities": {}}, BadResponse),
        ({"entities": {}}, BadResponse),
        (b"not json", BadResponse),
        ({"error": {"code": "Common.0011", "message": "no such job"}}, NotFound),
    ],
)
async def test_unusable_job_answers(
    http: aiohttp.ClientSession, body: Any, error: type[ApiError]
) -> None:
    async with loopback_app(_answer(200, body)) as url:
        client = make_client(http, url, TokenAuth(TOKEN))
        with pytest.raises(error):
            await client.job(PROJECT, "0" * 32)


@pytest.mark.parametrize("status", ["PENDING_PAYMENT", "DONE", "\x1b[2Jdone"])
async def test_a_status_the_reference_does_not_name_is_passed_on_cleaned(
    http: aiohttp.ClientSession, status: str
) -> None:
    """The engine reports a status it does not know (never guesses); the client passes
    it on as the service wrote it, cleaned for a log and a terminal."""
    async with loopback_app(_answer(200, {"status": status, "entities": {}})) as url:
        job = await make_client(http, url, TokenAuth(TOKEN)).job(PROJECT, "j-1")
    assert job.status == status.replace("\x1b", "\\x1b")


async def test_job_server_id_from_sub_jobs(http: aiohttp.ClientSession) -> None:
    body = {
        "status": "RUNNING",
        "entities": {"sub_jobs": [{"entities": {"server_id": server_id(150)}}]},
    }
    async with loopback_app(_answer(200, body)) as url:
        job = await make_client(http, url, TokenAuth(TOKEN)).job(PROJECT, "j-1")
    assert (job.job_id, job.status, job.server_id) == ("j-1", "RUNNING", server_id(150))


async def test_server_answer_about_another_server_is_bad(http: aiohttp.ClientSession) -> None:
    body = {"server": {"id": server_id(999), "status": "ACTIVE"}}
    async with loopback_app(_answer(200, body)) as url:
        client = make_client(http, url, TokenAuth(TOKEN))
        with pytest.raises(BadResponse):
            await client.server(PROJECT, server_id(151))


async def test_oversized_answer_is_bad(http: aiohttp.ClientSession) -> None:
    body = {"server": {"id": server_id(152), "status": "ACTIVE", "pad": "x" * (1 << 21)}}
    async with loopback_app(_answer(200, body)) as url:
        client = make_client(http, url, TokenAuth(TOKEN))
        with pytest.raises(BadResponse):
            await client.server(PROJECT, server_id(152))


def _in_pieces(payload: dict[str, Any], pieces: int = 3) -> Any:
    """A handler that streams a JSON answer in several writes, as TLS records or a
    chunked transfer deliver it."""
    data = json.dumps(payload).encode()
    step = len(data) // pieces + 1

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        await response.prepare(request)
        for start in range(0, len(data), step):
            await response.write(data[start : start + step])
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    return handler


async def test_an_answer_arriving_in_pieces_is_read_whole(http: aiohttp.ClientSession) -> None:
    # Well under the 1 MiB limit: a real answer must not be cut at the first piece.
    server = {
        "server": {
            "id": server_id(155),
            "status": "ACTIVE",
            "OS-EXT-STS:task_state": None,
            "OS-SRV-USG:launched_at": "2020-03-01T10:00:00.000000",
            "metadata": {f"key{n}": "v" * 100 for n in range(100)},
        }
    }
    async with loopback_app(_in_pieces(server)) as url:
        view = await make_client(http, url, TokenAuth(TOKEN)).server(PROJECT, server_id(155))
    assert (view.status, view.launched_at) == ("ACTIVE", "2020-03-01T10:00:00.000000")
    job = {"status": "SUCCESS", "entities": {"server_id": server_id(155)}, "pad": "p" * 20_000}
    async with loopback_app(_in_pieces(job)) as url:
        answer = await make_client(http, url, TokenAuth(TOKEN)).job(PROJECT, "j-2")
    assert answer.status == "SUCCESS"


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), ("0.5", 0.5), ("soon", None), ("100000", 300.0)]
)
async def test_retry_after_header_is_parsed_and_bounded(
    http: aiohttp.ClientSession, value: str, expected: float | None
) -> None:
    body = {"error": {"code": "Common.1503", "message": "slow down"}}
    async with loopback_app(_answer(429, body, {"Retry-After": value})) as url:
        client = make_client(http, url, TokenAuth(TOKEN))
        with pytest.raises(Throttled) as info:
            await client.server(PROJECT, server_id(153))
    assert info.value.retry_after == expected
    assert client.throttled == 1


async def test_flat_error_body_is_understood(http: aiohttp.ClientSession) -> None:
    body = {"code": "Ecs.0005", "message": "Invalid parameter values."}
    async with (
        loopback_app(_answer(400, body)) as url,
        make_client(http, url, TokenAuth(TOKEN)) as client,
    ):
        with pytest.raises(Rejected) as info:
            await client.reinstall(spec(154))
    assert (info.value.status, info.value.code) == (400, "Ecs.0005")
