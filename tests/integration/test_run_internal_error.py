"""A bug inside the run stops it cleanly instead of hanging it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cloud.client import EcsClient
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator


async def test_an_unexpected_exception_stops_the_run_with_state_consistent(
    monkeypatch: pytest.MonkeyPatch,
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    run_campaign: Callable[..., Awaitable[Any]],
) -> None:
    inventory = make_inventory(10)
    sim = await start_sim(inventory)

    async def broken(self: EcsClient, region: str | None) -> None:
        raise RuntimeError("injected bug")

    # Fault injection (the one code path that cannot fail for real here): a bug before
    # any intent, in the wait for the reinstall's grant.
    monkeypatch.setattr(EcsClient, "reinstall_slot", broken)
    campaign = await asyncio.wait_for(run_campaign(inventory, sim=sim), timeout=30)

    outcome = campaign.result.outcome
    assert outcome.exit_code == 3
    assert outcome.aborted is not None and "internal error" in outcome.aborted
    assert "injected bug" in outcome.aborted
    assert sim.stats()["reinstalls_by_server"] == {}
    assert all(t.state is TargetState.PENDING for t in campaign.targets())
