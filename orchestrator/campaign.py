"""One invocation of `run` or `resume`, from state file to report.

open or create the state file (the inventory is validated and imported once)
start the built-in simulator if asked
run the Runner with signal handlers: first signal drains, second halts
record the end of the invocation and write the report
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.auth import Credentials, TokenAuth
from orchestrator.client import EcsClient, Timeouts
from orchestrator.cloudconfig import CloudConfig
from orchestrator.endpoints import Endpoints
from orchestrator.errors import (
    IncompleteImport,
    InputProblem,
    InventoryError,
    ReportError,
    StateError,
    UsageError,
)
from orchestrator.iam import credentials_for
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.model import TargetSpec, TargetState
from orchestrator.network import CaBundle, new_session
from orchestrator.pacing import AdaptivePacing, RateLimiter
from orchestrator.progress import ProgressDisplay, ProgressMeter
from orchestrator.report import ReportPaths, write_campaign_report
from orchestrator.rollout.gate import Confirm, RolloutGate
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.report import ADAPTIVE_META_KEY, rollout_summary
from orchestrator.rollout.setup import prepare_rollout
from orchestrator.runner import Outcome, Runner, RunSettings
from orchestrator.simulator import Simulator, SimulatorConfig
from orchestrator.state import StateStore, file_sha256

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
    cloud: CloudConfig | None = None  # when set, credentials are built from it per run
    ca: CaBundle = field(default_factory=lambda: CaBundle(None, "system"))
    simulate: SimulatorConfig | None = None
    live_progress: bool | None = None
    endpoints: Endpoints | None = None  # else built from endpoint / endpoint_template
    options: dict[str, Any] = field(default_factory=dict)  # recorded in the runs table
    # Re-run with other request options, accepted: targets not sent yet get them.
    apply_request_options: bool = False
    group_by: str | None = None  # report.md/html: counts by this inventory column
    rollout: RolloutOptions = field(default_factory=RolloutOptions)
    ack_failures: bool = False  # --ack-failures: earlier failures stop counting
    confirm: Confirm | None = None  # --confirm-waves: asks the operator before each wave
    adaptive: bool = True  # follow the service's throttling below --rate / --poll-rate


@dataclass
class Result:
    outcome: Outcome
    report: ReportPaths | None
    run_id: str
    report_error: str | None = None


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
            # An import killed half-way committed no target; start it again (under
            # the file's lock, so a file still being created is never taken for it).
            log.warning("%s: restarting an inventory import that never finished", inv.state_path)
            StateStore.discard_incomplete(inv.state_path)
        else:
            try:
                if inv.inventory is not None:
                    _check_same_inventory(store, inv.inventory)
                _check_regions(store, inv)
                if inv.apply_request_options and inv.inventory is not None:
                    _apply_request_options(store, inv)
            except BaseException:
                store.close()
                raise
            return store
    if inv.inventory is None:
        raise UsageError(f"state file {inv.state_path} does not exist; start with `run INVENTORY`")
    reader = InventoryReader(inv.inventory, inv.defaults)
    regions = RegionCheck(str(inv.inventory), needed=_needs_region(inv))
    return StateStore.create(
        inv.state_path,
        regions.checked(reader),
        inventory_path=str(inv.inventory),
        inventory_sha256=file_sha256(inv.inventory),
        extra_columns=lambda: reader.columns,
        validate=lambda: _validated(reader, regions),
    )


def _needs_region(inv: Invocation) -> bool:
    return inv.simulate is None and inv.endpoint is None and inv.endpoint_template is not None


def _validated(reader: InventoryReader, regions: RegionCheck) -> None:
    problems = reader.problems + regions.problems
    if problems:
        raise InventoryError(problems, total=reader.problem_count + len(regions.problems))
    if reader.rows == 0:
        raise UsageError(f"{reader.path}: the inventory lists no servers")


def _check_regions(store: StateStore, inv: Invocation) -> None:
    """A state file made before regions were checked: refuse what cannot be addressed."""
    if not _needs_region(inv):
        return
    missing, examples = store.count_without_region()
    if missing:
        raise InventoryError(
            [
                InputProblem(
                    store.run_info().inventory_path or str(store.path),
                    t.spec.line,
                    "region",
                    f"missing; --endpoint-template needs a region ({t.server_id})",
                )
                for t in examples
            ],
            total=missing,
        )


def _apply_request_options(store: StateStore, inv: Invocation) -> None:
    assert inv.inventory is not None
    changed = store.update_pending_specs(
        InventoryReader(inv.inventory, inv.defaults),
        "request options changed (--accept-changed-options): "
        f"keyname={inv.defaults.keyname!r} userid={inv.defaults.userid!r} "
        f"mode={inv.defaults.mode!r} byol={inv.defaults.byol!r}",
    )
    log.warning("new request options applied to %d target(s) not sent yet", changed)


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
            f"(sha256 {actual[:12]}… vs {recorded[:12]}…). Finish the old run with "
            f"`orchestrator resume --state {state_path}`, or start this inventory with its own "
            "state file (--state NEW_PATH) and --skip-reinstalled-since TIME, so that servers "
            "reinstalled since TIME (by the old run or anyone) are skipped, not wiped again."
        )


class RegionCheck:
    """With --endpoint-template, every target needs a region: collected while the
    inventory is imported, so that nothing is created or sent when one lacks it."""

    def __init__(self, path: str, *, needed: bool) -> None:
        self.path = path
        self.needed = needed
        self.problems: list[InputProblem] = []

    def checked(self, specs: Iterable[TargetSpec]) -> Iterator[TargetSpec]:
        for spec in specs:
            if self.needed and not spec.region:
                self.problems.append(
                    InputProblem(
                        self.path,
                        spec.line,
                        "region",
                        "missing; --endpoint-template needs a region for every server",
                    )
                )
            yield spec


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
async def _cloud(
    inv: Invocation, store: StateStore, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[Endpoints, Credentials | None]]:
    if inv.simulate is None:
        credentials = inv.credentials
        if inv.cloud is not None:
            credentials = credentials_for(inv.cloud, session)
        if credentials is None:
            raise UsageError("no credentials in the environment")
        yield inv.endpoints or Endpoints(inv.endpoint, inv.endpoint_template), credentials
        return
    token = secrets.token_urlsafe(24)
    config = inv.simulate
    if config.fleet is None and inv.inventory is not None:
        # The validated targets, not the file again: the file may need --encoding
        # or a separator that the simulator's own simple reader does not know.
        config = replace(config, fleet=tuple(t.spec.key for t in store.iter_targets()))
    config = replace(config, token=token)
    async with Simulator(config) as sim:
        logging.getLogger("orchestrator.progress").info("simulator listening on %s", sim.url)
        yield Endpoints(sim.url), TokenAuth(token)


async def execute(inv: Invocation, store: StateStore) -> Result:
    """Run the state file's targets to the end (or to a stop) and write the report."""
    stop, halt = asyncio.Event(), asyncio.Event()
    # Before the invocation is recorded: a resume that contradicts the fixed plan
    # is refused with nothing written.
    rollout = prepare_rollout(store, inv.rollout, ack=inv.ack_failures, confirm=inv.confirm)
    store.begin_invocation(inv.options, str(inv.inventory) if inv.inventory else None)
    outcome: Outcome | None = None
    try:
        s = inv.settings
        limit = max(64, s.submit_workers() + s.poll_workers())
        async with (
            new_session(limit, inv.ca, proxies=inv.simulate is None) as session,
            _cloud(inv, store, session) as cloud,
        ):
            endpoints, credentials = cloud
            adaptive = None
            if inv.adaptive:
                adaptive = AdaptivePacing(
                    {"reinstall": s.rate, "job": s.poll_rate, "server": s.poll_rate}
                )
            client = EcsClient(
                session,
                endpoints,
                credentials,
                submit_limiter=RateLimiter(s.rate),
                poll_limiter=RateLimiter(s.poll_rate),
                timeouts=Timeouts(),
                adaptive=adaptive,
            )
            runner = Runner(store, client, s, rollout=rollout.gate)
            meter = ProgressMeter(sum(runner.counts.values()))
            with _signals(stop, halt):
                async with ProgressDisplay(meter, lambda: runner.counts, live=inv.live_progress):
                    outcome = await runner.run(stop, halt)
            _rollout_end(store, rollout.gate, outcome, client.adaptive_rates())
    finally:
        label = "interrupted" if outcome is None else _label(outcome)
        with contextlib.suppress(StateError):
            store.end_invocation(label)
    run = store.run_info()
    report = None
    report_error = None
    if not halt.is_set():
        try:
            report = write_campaign_report(
                inv.report_dir, store, group_by=inv.group_by, rollout=rollout_summary(store)
            )
        except ReportError as exc:
            # The state is intact; the report can be written again with `report`.
            report_error = str(exc)
    return Result(outcome, report, run.run_id, report_error)


def _rollout_end(
    store: StateStore, gate: RolloutGate, outcome: Outcome, rates: dict[str, Any]
) -> None:
    """Record what the rollout left and why, and the rates pacing settled at."""
    left = outcome.counts.get(TargetState.PENDING, 0)
    gate.finish(left if not outcome.stopped else 0)
    with contextlib.suppress(StateError):
        store.add_rollout(gate.take_records())
        if rates:
            store.set_meta(ADAPTIVE_META_KEY, json.dumps(rates))
    for name, rate in rates.items():
        log.info(
            "pacing: %s settled at %.1f/s of %g/s (%d throttled, %d cuts)",
            name, rate["rate"], rate["ceiling"], rate["throttles"], rate["cuts"],
        )  # fmt: skip


def _label(outcome: Outcome) -> str:
    if outcome.aborted:
        return "aborted"
    if outcome.complete:
        return "complete"
    return "stopped" if outcome.stopped else "deferred"
