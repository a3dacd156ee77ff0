"""The in-memory cloud itself: the answers it gives, what it records, its pacing.

What each service condition becomes is the client's classification of the
simulator's answer; tests/integration/test_fake_parity.py checks, over loopback
HTTP, that the real client gets the same from the same simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.fake import InMemoryCloud, Scripted
from orchestrator.cloud.interface import JobView
from orchestrator.engine.pacing import RateLimiter
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    CommandUnderWay,
    NotFound,
    OutcomeUnknown,
    ProjectRefused,
    Rejected,
    RetryLater,
    ServiceBusy,
    Throttled,
)
from orchestrator.model import TargetSpec
from orchestrator.simulator import SimulatorConfig

pytestmark = pytest.mark.timeout(10)

PROJECT = "0123456789abcdef0123456789abcdef"
SERVER = "00000000-0000-4000-8000-000000000001"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    """The service's wall clock, moved by the test."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spec(**changes: Any) -> TargetSpec:
    return TargetSpec(PROJECT, SERVER, "fleet-key", "user-1", 2, **changes)


def cloud_with(clock: FakeClock | None = None, **config: Any) -> InMemoryCloud:
    config.setdefault("job_seconds", (10.0, 10.0))
    return InMemoryCloud(SimulatorConfig(clock=clock or FakeClock(), **config))


Call = Callable[[InMemoryCloud], Awaitable[object]]


def reinstall(cloud: InMemoryCloud) -> Awaitable[object]:
    return cloud.reinstall(spec())


def read_server(cloud: InMemoryCloud) -> Awaitable[object]:
    return cloud.server(PROJECT, SERVER)


def read_job(cloud: InMemoryCloud) -> Awaitable[object]:
    return cloud.job(PROJECT, "0" * 32)


@pytest.mark.parametrize(
    ("config", "script", "call", "error", "status", "code"),
    [
        ({"missing_rate": 1.0}, None, read_server, NotFound, 404, "Ecs.0114"),
        ({"missing_rate": 1.0}, None, reinstall, NotFound, 404, "Ecs.0114"),
        ({}, None, read_job, NotFound, 400, "Common.0011"),
        ({"locked_rate": 1.0}, None, reinstall, Rejected, 400, "Ecs.0605"),
        ({"no_disk_rate": 1.0}, None, reinstall, Rejected, 400, "Ecs.0105"),
        ({"denied_projects": (PROJECT,)}, None, read_server, ProjectRefused, 403, "Pdp.0001"),
        ({"token": "not-what-is-sent"}, None, read_server, AuthFailed, 401, "Common.0013"),
        ({}, ("server", Scripted.ERROR), read_server, RetryLater, 500, "Common.0001"),
        ({}, ("job", Scripted.BUSY), read_job, ServiceBusy, 501, "Ecs.0603"),
        ({}, ("reinstall", Scripted.ERROR), reinstall, OutcomeUnknown, 500, "Common.0001"),
        ({}, ("reinstall", Scripted.BUSY), reinstall, CommandUnderWay, 501, "Ecs.0603"),
        (
            {},
            ("reinstall", Scripted.ERROR_AFTER_ACTING),
            reinstall,
            OutcomeUnknown,
            500,
            "Common.0001",
        ),
        ({}, ("reinstall", Scripted.DROP), reinstall, OutcomeUnknown, None, None),
        ({"error_rate": 1.0, "seed": 3}, None, read_server, RetryLater, 503, "APIGW.0203"),
    ],
)
async def test_a_service_condition_raises_what_the_client_raises(
    config: dict[str, Any],
    script: tuple[str, Scripted] | None,
    call: Call,
    error: type[ApiError],
    status: int | None,
    code: str | None,
) -> None:
    credentials = TokenAuth("what-is-sent-5e0c") if "token" in config else None
    cloud = InMemoryCloud(SimulatorConfig(**config), credentials=credentials)
    if script is not None:
        cloud.script(*script)

    with pytest.raises(ApiError) as raised:
        await call(cloud)

    assert type(raised.value) is error
    assert (raised.value.status, raised.value.code) == (status, code)
    [recorded] = cloud.calls
    assert (recorded.status, recorded.code, recorded.raised) == (status, code, error)
    assert cloud.unmet() == {}


async def test_a_dropped_answer_was_acted_on_and_says_so() -> None:
    cloud = cloud_with()
    cloud.script("reinstall", Scripted.DROP)

    with pytest.raises(OutcomeUnknown, match="reinstall: no answer"):
        await cloud.reinstall(spec())

    [lost] = cloud.reinstalls()
    assert lost.acted and lost.status is None
    server = await cloud.server(PROJECT, SERVER)
    assert server.status == "REBUILD"
    assert cloud.requests == {"reinstall": 1, "server": 1}


async def test_a_job_is_followed_on_the_services_clock() -> None:
    clock = FakeClock()
    cloud = cloud_with(clock)

    job_id = await cloud.reinstall(spec())
    first = await cloud.job(PROJECT, job_id)
    clock.advance(10.0)
    last = await cloud.job(PROJECT, job_id)

    assert (first.status, last.status) == ("INIT", "SUCCESS")
    assert last == JobView(
        job_id=job_id,
        status="SUCCESS",
        server_id=SERVER,
        error_code=None,
        fail_reason=None,
        begin_time="2027-01-15T08:00:00.000Z",
        end_time="2027-01-15T08:00:10.000Z",
        started_time="2027-01-15T08:00:00.000Z",
    )
    assert [(c.kind, c.job_id) for c in cloud.calls] == [
        ("reinstall", job_id),
        ("job", None),
        ("job", None),
    ]


async def test_throttling_is_counted_and_carries_retry_after() -> None:
    cloud = cloud_with(rate_limit=0.5)  # one token, then one every two seconds

    await cloud.server(PROJECT, SERVER)
    with pytest.raises(Throttled) as raised:
        await cloud.server(PROJECT, SERVER)

    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (
        429,
        "Common.1503",
        2.0,
    )
    assert cloud.throttled == 1


async def test_the_service_clock_is_learned_from_the_date_of_answers() -> None:
    cloud = cloud_with(FakeClock(START), clock_offset=0.0)
    assert not cloud.service_clock.known

    await cloud.server(PROJECT, SERVER)

    now = cloud.service_clock.now()
    assert now is not None and abs(now.at.timestamp() - START) <= 1.0 + now.error


def test_only_a_reinstall_can_be_scripted_to_act() -> None:
    cloud = cloud_with()
    with pytest.raises(ValueError, match="only to a reinstall"):
        cloud.script("job", Scripted.DROP)
    with pytest.raises(ValueError, match="kind must be one of"):
        cloud.script("flavor", Scripted.ERROR)


async def test_a_scripted_fault_waits_for_a_request_that_reaches_it() -> None:
    """A reinstall refused for the server's state (a job under way) does not use up a
    fault scripted for the next one acted on."""
    clock = FakeClock()
    cloud = cloud_with(clock)
    await cloud.reinstall(spec(mode="withStopServer"))
    cloud.script("reinstall", Scripted.DROP)

    with pytest.raises(Rejected) as refused:  # the server is being rebuilt
        await cloud.reinstall(spec(mode="withStopServer"))
    assert refused.value.code == "Ecs.0100"
    assert cloud.unmet() == {"reinstall": [Scripted.DROP]}
    clock.advance(10.0)
    with pytest.raises(OutcomeUnknown):
        await cloud.reinstall(spec(mode="withStopServer"))
    assert cloud.unmet() == {}
    assert cloud.overlapping() == {SERVER: 1}


async def test_a_stop_interrupts_reinstalls_waiting_for_their_send_slot() -> None:
    cloud = cloud_with()
    cloud_limited = InMemoryCloud(cloud.config, submit_limiter=RateLimiter(0.5))
    await cloud_limited.reinstall_spacing(None)  # the first slot is free
    waiting = asyncio.create_task(cloud_limited.reinstall_spacing(None))
    await asyncio.sleep(0.01)

    assert cloud_limited.stop_sending(lambda: RuntimeError("stopped")) == 1
    with pytest.raises(RuntimeError, match="stopped"):
        await waiting
    # Those still waiting for a token (here: out a hold) are stopped at once too.
    await cloud_limited.reinstall_slot(None)
    cloud_limited._submit_limiter.hold(asyncio.get_running_loop().time() + 60)
    for_token = asyncio.create_task(cloud_limited.reinstall_slot(None))
    await asyncio.sleep(0.01)
    assert cloud_limited.stop_sending(lambda: RuntimeError("stopped")) == 1
    with pytest.raises(RuntimeError, match="stopped"):
        await for_token
    # Unlimited by default: nothing ever waits.
    assert cloud.stop_sending(lambda: RuntimeError("stopped")) == 0
    assert cloud.adaptive_rates() == {}
