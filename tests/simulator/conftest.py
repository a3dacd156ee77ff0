"""Fixtures for the simulator tests: a fake clock, simulators on free ports, an API helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sim_helpers import Api, ApiFactory, FakeClock

from orchestrator.simulator import Simulator, SimulatorConfig


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def make_api(session: aiohttp.ClientSession, clock: FakeClock) -> AsyncIterator[ApiFactory]:
    """Start a simulator with these config fields (fake clock unless given) and wrap it."""
    started: list[Simulator] = []

    async def make(**fields: Any) -> Api:
        fields.setdefault("clock", clock)
        sim = Simulator(SimulatorConfig(**fields), host="127.0.0.1", port=0)
        await sim.start()
        started.append(sim)
        return Api(session, sim)

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """A simulator with default settings and the fake clock."""
    return await make_api()
