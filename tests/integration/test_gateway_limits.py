"""A run under the API gateway's limits, over HTTP to the simulator (`--api-limit`).

The gateway counts each API's calls per clock second and per clock minute, and
refuses past its limit with 429 APIGW.0308 naming the limit, without Retry-After.
AIMD alone cannot keep a per-minute limit (its floor is 30 calls a minute); the run
must learn the stated limit from the first refusal, wait out the full window, then
never send more than the limit in any minute, and say so once in the log.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.simulator import Simulator
from orchestrator.simulator.config import ApiLimit

StartSim = Callable[..., Awaitable[Simulator]]
RunCampaign = Callable[..., Awaitable[Any]]

# Throttling never uses up a call's tries, only this much time: more than a minute's
# window, so that a reinstall refused for the minute keeps its turn.
RETRY = RetrySettings(attempts=6, max_delay=150.0, backoff_base=0.05, backoff_cap=1.0)


def busiest_window(times: Sequence[float], width: float) -> int:
    """The most arrivals in any closed window [t, t + width]."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + width) - i for i, t in enumerate(ordered)), default=0
    )


def learned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "orchestrator.pacing" and r.getMessage().startswith("The gateway allows")
    ]


async def early_in_a_clock_minute(latest: float = 45.0) -> None:
    """The simulator's minute windows are clock minutes: start the run early in one, so
    that the first minute's calls all fall in it and the limit is met there."""
    into = time.time() % 60.0
    if into > latest:
        await asyncio.sleep(60.0 - into + 0.2)


RunBehind = Callable[..., Awaitable[tuple[dict[str, Any], int]]]


@pytest.fixture
def run_behind(
    make_inventory: Callable[..., Path],
    start_sim: StartSim,
    run_campaign: RunCampaign,
    fast_settings: Callable[..., Any],
) -> RunBehind:
    """run_behind(limit, count, seed) -> (the simulator's stats, reinstalls refused): a
    one-project run at 20/s behind a gateway limiting the reinstall API to `limit`,
    ended with every server reinstalled once after one to three refusals."""

    async def run(
        limit: ApiLimit, count: int, seed: int, *, early_in_minute: bool = False
    ) -> tuple[dict[str, Any], int]:
        inventory = make_inventory(count, projects=1, seed=seed)
        sim = await start_sim(
            inventory, job_seconds=(0.1, 0.2), api_limit_by_kind=(("reinstall", limit),)
        )
        if early_in_minute:
            await early_in_a_clock_minute()
        campaign = await run_campaign(
            inventory, sim=sim, settings=fast_settings(rate=20.0, retry=RETRY)
        )
        assert campaign.exit_code == 0
        stats = sim.stats()
        assert stats["reinstalls_total"] == count
        assert set(stats["reinstalls_by_server"].values()) == {1}
        refused = stats["gateway_throttled_by_kind"].get("reinstall", 0)
        assert 1 <= refused <= 3, stats["gateway_throttled_by_kind"]
        return stats, refused

    return run


@pytest.mark.slow
@pytest.mark.timeout(200)
async def test_a_per_minute_limit_is_learned_and_kept(
    caplog: pytest.LogCaptureFixture, run_behind: RunBehind
) -> None:
    limit, count = 30, 34
    caplog.set_level(logging.INFO, logger="orchestrator.pacing")
    # The minute is filled at 20/s: the calls on the wire when the first refusal comes
    # back are refused too, and nothing after them (AIMD alone: dozens).
    stats, refused = await run_behind(
        ApiLimit(per_minute=limit), count, seed=71, early_in_minute=True
    )

    # Every call, refused ones included: never more than the limit in any minute but
    # for those few refusals.
    times = stats["request_times"]["reinstall"]
    assert len(times) == count + refused
    assert busiest_window(times, 60.0) <= limit + refused
    # The rest waited for the next minute, then went at the learned pace: 2.1 s apart.
    ordered = sorted(times)
    assert ordered[-1] - ordered[0] >= 60.0
    assert min(b - a for a, b in itertools.pairwise(ordered[-4:])) >= 2.0
    assert learned(caplog) == [
        f"The gateway allows {limit} reinstall calls a minute on eu-de: paced at 0.479/s"
        " from now on (was 20/s), after a pause of 60 s while its window is full"
    ]


async def test_a_per_second_limit_is_learned_and_kept(
    caplog: pytest.LogCaptureFixture, run_behind: RunBehind
) -> None:
    limit, count = 5, 30
    caplog.set_level(logging.INFO, logger="orchestrator.pacing")
    stats, refused = await run_behind(ApiLimit(per_second=limit), count, seed=72)

    # Before the first refusal the run went at 20/s, and the gateway's clock seconds let
    # a second's limit through at the end of one and another at the start of the next;
    # from the refusal on, no second holds more than the limit but for the refusals.
    said_at = min(r.created for r in caplog.records if r.name == "orchestrator.pacing")
    after = [t for t in stats["request_times"]["reinstall"] if t >= said_at]
    assert len(after) >= count - 2 * limit
    assert busiest_window(after, 1.0) <= limit + refused
    said = learned(caplog)
    assert len(said) == 1 and said[0].startswith(
        f"The gateway allows {limit} reinstall calls a second on eu-de: paced at 3.96/s"
    ), said
