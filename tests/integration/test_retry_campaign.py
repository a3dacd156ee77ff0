"""A retry invocation in-process against the simulator: only the selection is sent."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cloud.auth import TokenAuth
from orchestrator.engine.campaign import Invocation, execute, open_state
from orchestrator.engine.retry_select import RetryRequest, plan_retry
from orchestrator.engine.runner import RunSettings
from orchestrator.inventory import InventoryDefaults
from orchestrator.model import TargetState
from orchestrator.report import write_campaign_report
from orchestrator.simulator import Simulator
from orchestrator.store.sqlite import StateStore

S = TargetState
pytestmark = pytest.mark.timeout(60)


async def test_retry_of_deferred_targets_sends_them_and_no_other_pending_one(
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    fast_settings: Callable[..., RunSettings],
    tmp_path: Path,
    report_dir: Path,
) -> None:
    inventory = make_inventory(6, projects=1)
    sim = await start_sim(inventory)
    assert sim.config.token is not None
    inv = Invocation(
        state_path=tmp_path / "s.sqlite",
        report_dir=report_dir,
        settings=fast_settings(),
        inventory=inventory,
        defaults=InventoryDefaults(),
        endpoint=sim.url,
        credentials=TokenAuth(sim.config.token),
        live_progress=False,
    )
    store = open_state(inv)  # imported; nothing sent yet
    try:
        targets = list(store.iter_targets())
        deferred = {targets[1].server_id, targets[4].server_id}
        # As a run leaves them: pending, with the reason in an event.
        store.note(targets[1].id, S.PENDING, "deferred: server is busy (status REBUILD)")
        store.note(targets[4].id, S.PENDING, "deferred: still refused after retries: HTTP 429")
        before = write_campaign_report(report_dir, store)
        assert before.retry_csv is not None
        with before.retry_csv.open(newline="", encoding="utf-8") as fh:
            assert {row["server_id"] for row in csv.DictReader(fh)} == deferred

        request = RetryRequest("deferred")
        # As the retry command: the state file only, and the targets chosen.
        inv = replace(inv, retry=(request, plan_retry(store, request)), inventory=None)
        result = await execute(inv, store)
    finally:
        store.close()

    stats: dict[str, Any] = sim.stats()
    assert set(stats["reinstalls_by_server"]) == deferred
    # Read before sending: singly, or on their project's page.
    assert stats["requests"]["server"] + stats["requests"]["list_v1"] >= 1
    assert stats["requests"]["reinstall"] == 2
    assert result.outcome.exit_code == 3  # the other four are still pending: resume does them
    with StateStore.open(inv.state_path, readonly=True) as done:
        states = {t.server_id: t.state for t in done.iter_targets()}
        notes = [e.detail for e in done.events(targets[1].id)]
    assert {s for s, state in states.items() if state is S.SUCCEEDED} == deferred
    assert [state for s, state in states.items() if s not in deferred] == [S.PENDING] * 4
    assert "retry requested (--state-is deferred)" in notes
