"""The in-memory cloud gets what the real client gets, from the same simulator.

Each scenario runs the same calls, on the same simulator settings and clock, once
with `EcsClient` over loopback HTTP and once with `InMemoryCloud` (no HTTP), and
compares every result (job ids, job and server views) and every error (class,
status, code), the counters of both callers and the simulator's own. A difference
means the fake drifted from the client or from the simulator's HTTP application:
the runner's unit tests would then test something the real run never meets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from client_helpers import PROJECT, TOKEN, FakeClock, server_id, sim_client, spec

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.fake import InMemoryCloud
from orchestrator.cloud.interface import Cloud
from orchestrator.errors import ApiError
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.config import ApiLimit

pytestmark = pytest.mark.timeout(30)

UNKNOWN_JOB = "0" * 32
# Counters only HTTP has (connections) or that hold the service's clock readings.
HTTP_ONLY = ("connections", "request_times")

# (simulator settings, steps): "server" reads server 1; "reinstall" sends to it with
# withStopServer ("reinstall-plain" without); "job" asks the latest job id answered
# (or an unknown one); "list-v1" reads the first page of the v1 list, "list-nova" the
# servers changed since 2019 (3 a page, then the page after, if any);
# "advance" moves the service's clock past any job.
SCENARIOS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "happy": ({}, ["server", "reinstall", "job", "server", "advance", "job", "server"]),
    "job-fails": ({"job_fail_rate": 1.0}, ["reinstall", "advance", "job", "server"]),
    "queued": ({"queue_seconds": (5.0, 5.0)}, ["reinstall", "job", "server", "reinstall"]),
    "missing": ({"missing_rate": 1.0}, ["server", "reinstall"]),
    "locked": ({"locked_rate": 1.0}, ["server", "reinstall"]),
    "running": ({"running_rate": 1.0}, ["reinstall-plain", "server", "reinstall", "server"]),
    "unknown-job": ({}, ["job"]),
    "5xx-before-acting": ({"error_rate": 1.0}, ["server", "job", "reinstall", "reinstall"]),
    "busy": ({"busy_rate": 1.0}, ["reinstall", "server"]),
    "dropped": ({"drop_rate": 1.0}, ["reinstall", "server", "reinstall"]),
    "5xx-after-acting": ({"error_after_acting_rate": 1.0}, ["reinstall", "server", "reinstall"]),
    "denied": ({"denied_projects": (PROJECT,)}, ["server", "reinstall"]),
    "throttled-429": ({"rate_limit": 0.5}, ["server", "server", "reinstall", "reinstall"]),
    "throttled-202": (
        {"rate_limit": 0.5, "throttle_style": "202"},
        ["reinstall", "reinstall", "server", "server"],
    ),
    "wrong-token": ({"token": "not-the-token-sent"}, ["server", "reinstall"]),
    "lists": (
        {"extra_servers": 4},
        [
            "list-v1",
            "server",
            "list-v1",
            "list-nova",
            "reinstall",
            "list-nova",
            "advance",
            "list-nova",
            "list-v1",
        ],
    ),
    "gateway-throttled": (
        {"api_limit": ApiLimit(per_second=1)},
        [
            "server",
            "server",
            "list-v1",
            "list-v1",
            "list-nova",
            "list-nova",
            "reinstall",
            "reinstall",
            "job",
        ],
    ),
}
SINCE = datetime(2019, 1, 1, tzinfo=UTC)  # before any simulated server's last change


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _play(cloud: Cloud, clock: FakeClock, steps: list[str]) -> list[object]:
    """Every step's result, or its error as (class, status, code, retry_after)."""
    results: list[object] = []
    job_id = UNKNOWN_JOB
    for step in steps:
        if step == "advance":
            clock.advance(600.0)
            continue
        try:
            if step == "server":
                results.append(await cloud.server(PROJECT, server_id(1)))
            elif step == "job":
                results.append(await cloud.job(PROJECT, job_id))
            elif step == "list-v1":
                results.append(await cloud.servers_page(PROJECT, 1, 3))
            elif step == "list-nova":
                changes = await cloud.servers_changed(PROJECT, SINCE, 3)
                marker = changes.next_marker
                after = await cloud.servers_changed(PROJECT, SINCE, 3, marker) if marker else None
                results.append((changes, after))
            else:
                mode = None if step == "reinstall-plain" else "withStopServer"
                job_id = await cloud.reinstall(spec(1, mode=mode))
                results.append(job_id)
        except ApiError as exc:
            wait = getattr(exc, "retry_after", None)
            results.append((type(exc).__name__, exc.status, exc.code, wait))
    return results


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_fake_answers_as_the_client_over_http(
    http: aiohttp.ClientSession, name: str
) -> None:
    settings, steps = SCENARIOS[name]
    config = {"seed": 7, "token": TOKEN, "job_seconds": (10.0, 10.0), **settings}

    http_clock = FakeClock()
    async with sim_client(http, clock=http_clock, **config) as (sim, client):
        over_http = await _play(client, http_clock, steps)
        http_counts = (dict(client.requests), client.throttled)
        http_stats = sim.stats()

    memory_clock = FakeClock()
    cloud = InMemoryCloud(
        SimulatorConfig(clock=memory_clock, **config), credentials=TokenAuth(TOKEN)
    )
    in_memory = await _play(cloud, memory_clock, steps)

    assert in_memory == over_http
    assert (dict(cloud.requests), cloud.throttled) == http_counts
    memory_stats = cloud.stats()
    for key in HTTP_ONLY:
        del memory_stats[key], http_stats[key]
    assert memory_stats == http_stats
    # Every step was played (and compared) on both.
    assert len(in_memory) == len([s for s in steps if s != "advance"])
