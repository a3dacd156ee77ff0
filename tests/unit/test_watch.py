"""A project's servers kept current by its lists (engine.watch), on the in-memory cloud
with both clocks (the service's and this process's monotonic one) moved by the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from orchestrator.cloud.fake import InMemoryCloud
from orchestrator.engine.rows import SPILL_AT, RowMemory
from orchestrator.engine.watch import OVERLAP, ProjectWatch
from orchestrator.simulator import SimulatorConfig

pytestmark = pytest.mark.timeout(10)
T = TypeVar("T")
PROJECT = "0123456789abcdef0123456789abcdef"
SERVERS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 6)]


class Clocks:
    """The service's wall clock and this process's monotonic clock, moved together."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def direct(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


@pytest.fixture(params=[SPILL_AT, 0], ids=["in-memory", "on-disk"])
def rows_in_memory(request: pytest.FixtureRequest) -> int:
    """Every test runs with the rows in memory and with them on disk."""
    spill_at: int = request.param
    return spill_at


def watch_of(clocks: Clocks, rows_in_memory: int) -> tuple[InMemoryCloud, ProjectWatch]:
    config = SimulatorConfig(
        clock=lambda: clocks.wall,
        fleet=tuple((PROJECT, s) for s in SERVERS),
        job_seconds=(30.0, 30.0),
    )
    cloud = InMemoryCloud(config, monotonic=lambda: clocks.mono)
    rows = RowMemory(rows_in_memory).rows()
    watch = ProjectWatch(cloud, PROJECT, None, query=direct, clock=lambda: clocks.mono, rows=rows)
    return cloud, watch


async def test_the_first_tick_vouches_for_the_rows_the_baseline_read_before_it(
    rows_in_memory: int,
) -> None:
    clocks = Clocks()
    _, watch = watch_of(clocks, rows_in_memory)
    assert await watch.first_page() == len(SERVERS)
    await watch.baseline()
    # A baseline of many pages at the gateway's pace ends long after its first page.
    clocks.advance(OVERLAP + 10)
    assert watch.current(SERVERS[0], max_age=1.0) is None  # too old, and no tick yet
    await watch.tick()
    shown = watch.current(SERVERS[0], max_age=1.0)
    assert shown is not None and shown.server_id == SERVERS[0]


async def test_a_server_changed_after_the_baseline_shows_its_change_after_a_tick(
    rows_in_memory: int,
) -> None:
    clocks = Clocks()
    cloud, watch = watch_of(clocks, rows_in_memory)
    await watch.first_page()
    before = watch.current(SERVERS[1], max_age=1.0)
    assert before is not None
    clocks.advance(OVERLAP + 10)
    cloud.someone_else_reinstalls(PROJECT, SERVERS[1])
    clocks.advance(1)
    await watch.tick()
    after = watch.current(SERVERS[1], max_age=1.0)
    assert after is not None and after.updated != before.updated, after


async def test_rows_stay_current_through_a_chain_of_ticks(rows_in_memory: int) -> None:
    clocks = Clocks()
    _, watch = watch_of(clocks, rows_in_memory)
    await watch.first_page()
    for _ in range(5):  # each tick reaches back over the one before
        clocks.advance(OVERLAP + 10)
        await watch.tick()
        shown = watch.current(SERVERS[2], max_age=1.0)
        assert shown is not None and shown.server_id == SERVERS[2]
    clocks.advance(5)  # no tick since: the lists no longer vouch for anything
    assert watch.current(SERVERS[2], max_age=1.0) is None
