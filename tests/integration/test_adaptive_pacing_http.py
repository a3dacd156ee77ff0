"""Adaptive pacing over loopback HTTP: the client settles under the simulator's --rate-limit.

The client is configured ten times faster than the simulator allows; with
`AdaptivePacing` it must find the limit within a second or so and then be
throttled rarely while using most of it. Without it, most requests are refused.
The simulator runs on the real clock here: the point is the loop through real
answers and real timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from client_helpers import PROJECT, server_id, sim_client

from orchestrator.cloud.client import EcsClient
from orchestrator.engine.adaptive import AdaptivePacing
from orchestrator.engine.pacing import RateLimiter
from orchestrator.errors import Throttled

pytestmark = pytest.mark.timeout(30)

LIMIT = 20.0  # the simulator's requests per second per API
CEILING = 200.0  # the client's configured poll rate
WARMUP, SECONDS = 1.5, 4.5


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def hammer(client: EcsClient, workers: int = 20) -> tuple[int, int]:
    """Query servers as fast as the client lets us; (accepted, throttled) after the warm-up."""
    counts = [0, 0]
    start = time.monotonic()

    async def work(n: int) -> None:
        while (now := time.monotonic()) < start + SECONDS:
            try:
                await client.server(PROJECT, server_id(n))
                ok = True
            except Throttled:
                ok = False
            if now >= start + WARMUP:
                counts[0 if ok else 1] += 1

    await asyncio.gather(*(work(n) for n in range(1, workers + 1)))
    return counts[0], counts[1]


async def test_adaptive_rate_settles_under_the_service_limit(
    http: aiohttp.ClientSession,
) -> None:
    adaptive = AdaptivePacing({"server": CEILING, "job": CEILING})
    async with sim_client(
        http,
        rate_limit=LIMIT,
        client_kwargs={"poll_limiter": RateLimiter(CEILING), "adaptive": adaptive},
    ) as (_, client):
        accepted, throttled = await hammer(client)
    span = SECONDS - WARMUP
    assert throttled / (accepted + throttled) <= 0.05, (accepted, throttled)
    assert accepted >= 0.8 * LIMIT * span, (accepted, throttled)
    (key, rate), *_ = adaptive.rates().items()
    assert key[0] == "server"  # only the API that was used has a limiter
    assert LIMIT * 0.5 <= rate <= CEILING
    assert adaptive.controllers()[key].cuts >= 1


async def test_without_adaptation_most_requests_are_throttled(
    http: aiohttp.ClientSession,
) -> None:
    # The same load without the hook: what the adaptive test is measured against.
    async with sim_client(
        http, rate_limit=LIMIT, client_kwargs={"poll_limiter": RateLimiter(CEILING)}
    ) as (_, client):
        accepted, throttled = await hammer(client)
    assert throttled / (accepted + throttled) > 0.5, (accepted, throttled)
