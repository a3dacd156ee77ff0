"""Helpers of the never-twice tests: a Runner driven on a real state file and a real
client against the simulator, and the assertions every such test makes."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from hostile_server import HostileServer

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient, Timeouts
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.reachability import Reachability
from orchestrator.engine.campaign import Invocation, open_state
from orchestrator.engine.runner import Outcome, Runner, RunSettings
from orchestrator.inventory import InventoryDefaults
from orchestrator.model import Target, TargetState
from orchestrator.simulator import Simulator, load_fleet
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

RUN_LIMIT = 30.0  # seconds: a run that takes longer hangs (each here takes a few)


def with_mode(inventory: Path, mode: str = "withStopServer") -> Path:
    """The inventory with a `mode` column (reinstall of running servers)."""
    with inventory.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = inventory.with_name(f"{inventory.stem}-{mode}.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, [*rows[0].keys(), "mode"])
        writer.writeheader()
        writer.writerows({**row, "mode": mode} for row in rows)
    return out


def assert_never_twice(stats: dict[str, Any], inventory: Path) -> None:
    """The simulator saw exactly one reinstall per server and no request on top of a job."""
    assert stats["overlapping_servers"] == [], stats["overlapping_by_server"]
    assert stats["reinstalled_after_success"] == []
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}


def history(targets: Sequence[Target], store: StateStore) -> str:
    return "\n".join(
        f"{t.server_id[:8]} {t.state.value}: "
        + " | ".join(f"{e.to_state}: {e.detail}" for e in store.events(t.id))
        for t in targets
    )


class Driven:
    """A Runner on a real state file and a real client against the simulator."""

    def __init__(self, tmp_path: Path, inventory: Path, url: str, token: str) -> None:
        self.state_path = tmp_path / f"{inventory.stem}.state.sqlite"
        self.inventory = inventory
        self.url = url
        self.token = token
        self.report_dir = tmp_path / "reports"

    def open(self, store_class: type[StateStore] = StateStore) -> StateStore:
        inv = Invocation(
            state_path=self.state_path,
            report_dir=self.report_dir,
            settings=RunSettings(),
            inventory=self.inventory,
            defaults=InventoryDefaults(),
            endpoint=self.url,
            live_progress=False,
        )
        store = open_state(inv)
        if store_class is not StateStore:
            # The same open connection and lock, seen through the test's subclass.
            store.__class__ = store_class
        store.begin_invocation({"test": True}, str(self.inventory))
        return store

    async def run(
        self,
        settings: RunSettings,
        *,
        store: StateStore | None = None,
        stop: asyncio.Event | None = None,
        halt: asyncio.Event | None = None,
        reachability: Reachability | None = None,
        url: str | None = None,
        during: Callable[[Runner], Coroutine[Any, Any, None]] | None = None,
    ) -> Outcome:
        store = store or self.open()
        stop = stop or asyncio.Event()
        try:
            async with (
                aiohttp.ClientSession() as session,
                EcsClient(
                    session,
                    Endpoints(endpoint=url or self.url),
                    TokenAuth(self.token),
                    timeouts=Timeouts(),
                    reachability=reachability,
                ) as client,
            ):
                runner = Runner(store, client, settings)
                side = asyncio.create_task(during(runner)) if during else None
                try:
                    return await asyncio.wait_for(runner.run(stop, halt), RUN_LIMIT)
                finally:
                    if side is not None:
                        side.cancel()
        finally:
            store.end_invocation("test")
            store.close()

    def open_readonly(self) -> StateStore:
        return StateStore.open(self.state_path, readonly=True)

    def targets(self) -> list[Target]:
        with StateStore.open(self.state_path, readonly=True) as store:
            return list(store.iter_targets())

    def explain(self) -> str:
        with StateStore.open(self.state_path, readonly=True) as store:
            return history(list(store.iter_targets()), store)


Drive = Callable[[Path, Simulator | HostileServer], Driven]


class StopOnNotAccepted(StateStore):
    """Asks for a stop as soon as a "not accepted" settlement is committed, so that
    the run ends between that settlement and the resend."""

    stop: Callable[[], object] = staticmethod(lambda: None)

    def apply(
        self, changes: Sequence[Change], counters: Mapping[str, int] | None = None
    ) -> list[bool]:
        applied = super().apply(changes, counters)
        if any("not_accepted" in c.fields for c in changes):
            type(self).stop()
        return applied


async def run_until_not_accepted(run: Driven, settings: RunSettings) -> Target:
    """Run until the first "not accepted" settlement is committed and stop there,
    between that settlement and the resend: the one target, pending, settled once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    StopOnNotAccepted.stop = lambda: loop.call_soon_threadsafe(stop.set)
    await run.run(settings, store=run.open(StopOnNotAccepted), stop=stop)
    [target] = run.targets()
    assert target.state is TargetState.PENDING and target.not_accepted == 1, run.explain()
    return target
