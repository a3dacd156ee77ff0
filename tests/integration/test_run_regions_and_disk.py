"""Two things a fleet run meets outside the happy path: several regional endpoints
(--endpoint-template), and a disk that fills up in the middle of the run."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.cloud.auth import TokenAuth
from orchestrator.engine.campaign import Invocation, execute, open_state
from orchestrator.model import TargetState
from orchestrator.simulator import Simulator
from orchestrator.store.sqlite import StateStore

TOKEN = "regions-token-77"


def split_by_region(inventory: Path, regions: list[str], out: Path) -> list[list[tuple[str, str]]]:
    """Copy the inventory with a region column, round-robin; return the pairs per region."""
    with inventory.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fleets: list[list[tuple[str, str]]] = [[] for _ in regions]
    for i, row in enumerate(rows):
        row["region"] = regions[i % len(regions)]
        fleets[i % len(regions)].append((row["project_id"], row["server_id"]))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return fleets


async def test_endpoint_template_sends_each_target_to_its_region(
    tmp_path: Path,
    report_dir: Path,
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    fast_settings: Callable[..., Any],
) -> None:
    # Two "regions", each its own simulator. A region name is substituted into the
    # endpoint's host part; on loopback the port stands in for it.
    first = await start_sim(token=TOKEN)
    second = await start_sim(token=TOKEN)
    regions = [str(first.port), str(second.port)]
    inventory = tmp_path / "regional.csv"
    fleets = split_by_region(make_inventory(20), regions, inventory)

    inv = Invocation(
        state_path=tmp_path / "regional.sqlite",
        report_dir=report_dir,
        settings=fast_settings(),
        inventory=inventory,
        endpoint_template="http://127.0.0.1:{region}",
        credentials=TokenAuth(TOKEN),
        live_progress=False,
    )
    store = open_state(inv)
    try:
        result = await execute(inv, store)
    finally:
        store.close()

    assert result.outcome.exit_code == 0
    for sim, fleet in zip((first, second), fleets, strict=True):
        reinstalled = sim.stats()["reinstalls_by_server"]
        assert reinstalled == {server: 1 for _, server in fleet}


async def test_a_full_disk_stops_the_run_and_loses_nothing(
    tmp_path: Path,
    report_dir: Path,
    make_inventory: Callable[..., Path],
    start_sim: Callable[..., Awaitable[Simulator]],
    fast_settings: Callable[..., Any],
) -> None:
    inventory = make_inventory(40)
    sim = await start_sim(inventory)
    inv = Invocation(
        state_path=tmp_path / "full.sqlite",
        report_dir=report_dir,
        settings=fast_settings(rate=20.0),
        inventory=inventory,
        endpoint=sim.url,
        credentials=TokenAuth(sim.config.token or ""),
        live_progress=False,
    )
    store = open_state(inv)
    # The disk "fills up" a few pages after the import: later writes fail with SQLITE_FULL.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 3}")
    try:
        result = await execute(inv, store)
    finally:
        store.close()

    outcome = result.outcome
    assert outcome.exit_code == 3
    assert outcome.aborted is not None and "disk is full" in outcome.aborted
    reinstalled = sim.stats()["reinstalls_by_server"]
    with StateStore.open(inv.state_path, readonly=True) as state:
        targets = list(state.iter_targets())
    assert len(targets) == 40
    # Nothing was sent without a durable intent: every reinstall the simulator saw
    # belongs to a target whose state says a request may have gone out.
    sent = {t.server_id for t in targets if t.attempts >= 1}
    assert set(reinstalled) <= sent
    assert all(t.state is not TargetState.SUBMITTING or t.attempts >= 1 for t in targets)

    # With space again, the same state file finishes the run, still once per server.
    store = open_state(inv)
    try:
        again = await execute(inv, store)
    finally:
        store.close()
    assert again.outcome.exit_code == 0
    assert set(sim.stats()["reinstalls_by_server"].values()) == {1}
    assert len(sim.stats()["reinstalls_by_server"]) == 40
