"""One invocation of `run` or `resume`, from state file to report.

open or create the state file (the inventory is validated and imported once)
start the built-in simulator if asked
run the Runner with signal handlers: first signal drains, second halts
record the end of the invocation and write the report
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from orchestrator.auth import Credentials, TokenAuth
from orchestrator.client import EcsClient, Timeouts
from orchestrator.endpoints import Endpoints
from orchestrator.errors import IncompleteImport, ReportError, StateError, UsageError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.livestats import FailureTap, LiveStats, in_flight
from orchestrator.pacing import RateLimiter
from orchestrator.progress import ProgressDisplay, ProgressMeter
from orchestrator.report import ReportPaths, write_report
from orchestrator.runner import Outcome, Runner, RunSettings
from orchestrator.simulator import Simulator, SimulatorConfig, load_fleet
from orchestrator.state import StateStore, file_sha256, remove_state_files

log = logging.getLogger("orchestrator.campaign")


@dataclass
class Invocation:
    state_path: Path
    report_dir: Path
    settings: RunSettings
    inventory: Path | None = None
    defaults: InventoryDefaults = field(default_factory=InventoryDefaults)
    endpoint: str | None = None
    endpoint_template: str | None = None
    credentials: Credentials | None = None
    simulate: SimulatorConfig | None = None
    live_progress: bool | None = None
    console: Console | None = None  # where the live panel draws (default: stderr)
    options: dict[str, Any] = field(default_factory=dict)  # recorded in the runs table


@dataclass
class Result:
    outcome: Outcome
    report: ReportPaths | None
    run_id: str
    report_error: str | None = None
    requests: dict[str, int] = field(default_factory=dict)  # sent by this invocation, by kind


def default_state_path(inventory: Path, report_dir: Path) -> Path:
    return report_dir / f"{inventory.stem}.state.sqlite"


def check_report_dir(report_dir: Path) -> None:
    """Refuse to start a run whose report could not be written (before anything is sent)."""
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        probe = report_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"report directory {report_dir} is not writable: {exc.strerror}; "
            "pick another with --report-dir"
        ) from exc


def open_state(inv: Invocation) -> StateStore:
    """Open the state file for a run, creating it from the inventory the first time."""
    if inv.state_path.exists():
        try:
            store = StateStore.open(inv.state_path)
        except IncompleteImport:
            if inv.inventory is None:
                raise
            # An import killed half-way committed no target; start it again.
            log.warning("%s: restarting an inventory import that never finished", inv.state_path)
            remove_state_files(inv.state_path)
        else:
            if inv.inventory is not None:
                try:
                    _check_same_inventory(store, inv.inventory)
                except BaseException:
                    store.close()
                    raise
            return store
    if inv.inventory is None:
        raise UsageError(f"state file {inv.state_path} does not exist; start with `run INVENTORY`")
    reader = InventoryReader(inv.inventory, inv.defaults)
    return StateStore.create(
        inv.state_path,
        reader,
        inventory_path=str(inv.inventory),
        inventory_sha256=file_sha256(inv.inventory),
        extra_columns=lambda: reader.columns,
        validate=lambda: _validated(reader),
    )


def _validated(reader: InventoryReader) -> None:
    reader.raise_if_problems()
    if reader.rows == 0:
        raise UsageError(f"{reader.path}: the inventory lists no servers")


def _check_same_inventory(store: StateStore, inventory: Path) -> None:
    try:
        actual = file_sha256(inventory)
    except OSError as exc:
        raise UsageError(f"cannot read inventory {inventory}: {exc.strerror}") from exc
    state_path = store.path
    recorded = store.inventory_sha256
    if actual != recorded:
        raise UsageError(
            f"inventory {inventory} differs from the one state file {state_path} was made from "
            f"(sha256 {actual[:12]}… vs {recorded[:12]}…). A different fleet needs its own state "
            "file: pass --state NEW_PATH, or `orchestrator resume --state` to finish the old one."
        )


@contextlib.contextmanager
def _signals(stop: asyncio.Event, halt: asyncio.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: drain and stop; second: stop at once. Restored on exit."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: stopping at once (state stays consistent)")
            halt.set()
        else:
            log.warning(
                "signal %s: finishing accepted jobs, then stopping", signal.Signals(signum).name
            )
            stop.set()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextlib.asynccontextmanager
async def _cloud(inv: Invocation) -> AsyncIterator[tuple[Endpoints, Credentials | None]]:
    if inv.simulate is None:
        if inv.credentials is None:
            raise UsageError("no credentials in the environment")
        yield Endpoints(inv.endpoint, inv.endpoint_template), inv.credentials
        return
    token = secrets.token_urlsafe(24)
    config = inv.simulate
    if config.fleet is None and inv.inventory is not None:
        config = replace(config, fleet=load_fleet(inv.inventory))
    config = replace(config, token=token)
    async with Simulator(config) as sim:
        logging.getLogger("orchestrator.progress").info("simulator listening on %s", sim.url)
        yield Endpoints(sim.url), TokenAuth(token)


async def execute(inv: Invocation, store: StateStore) -> Result:
    """Run the state file's targets to the end (or to a stop) and write the report."""
    stop, halt = asyncio.Event(), asyncio.Event()
    store.begin_invocation(inv.options, str(inv.inventory) if inv.inventory else None)
    outcome: Outcome | None = None
    sent: dict[str, int] = {}
    try:
        async with _cloud(inv) as (endpoints, credentials):
            s = inv.settings
            connector = aiohttp.TCPConnector(limit=max(64, s.submit_workers() + s.poll_workers()))
            async with aiohttp.ClientSession(connector=connector) as session:
                client = EcsClient(
                    session,
                    endpoints,
                    credentials,
                    submit_limiter=RateLimiter(s.rate),
                    poll_limiter=RateLimiter(s.poll_rate),
                    timeouts=Timeouts(),
                )
                runner = Runner(store, client, s)
                total = sum(runner.counts.values())
                tap = FailureTap()
                run_log = logging.getLogger("orchestrator.run")
                run_log.addHandler(tap)

                def snapshot() -> LiveStats:
                    # Read-only, a few times a second: copies, never the live dicts.
                    counts = dict(runner.counts)
                    return LiveStats(
                        counts=counts,
                        total=total,
                        requests=dict(client.requests),
                        throttled=client.throttled,
                        submit_limit=s.rate,
                        query_limit=s.poll_rate,
                        in_flight=in_flight(counts),
                        max_in_flight=s.max_in_flight,
                        recent_failures=tap.recent(),
                    )

                try:
                    with _signals(stop, halt):
                        async with ProgressDisplay(
                            ProgressMeter(total),
                            snapshot,
                            live=inv.live_progress,
                            console=inv.console,
                            title=f"ECS reinstall · {inv.state_path.name}",
                        ):
                            outcome = await runner.run(stop, halt)
                finally:
                    run_log.removeHandler(tap)
                    sent = dict(client.requests)
    finally:
        label = "interrupted" if outcome is None else _label(outcome)
        with contextlib.suppress(StateError):
            store.end_invocation(label)
    run = store.run_info()
    report = None
    report_error = None
    if not halt.is_set():
        try:
            report = write_report(inv.report_dir, run, store.iter_targets)
        except ReportError as exc:
            # The state is intact; the report can be written again with `report`.
            report_error = str(exc)
    return Result(outcome, report, run.run_id, report_error, sent)


def _label(outcome: Outcome) -> str:
    if outcome.aborted:
        return "aborted"
    if outcome.complete:
        return "complete"
    return "stopped" if outcome.stopped else "deferred"
