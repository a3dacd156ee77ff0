"""One invocation of `run` or `resume`, from state file to report.

open or create the state file (engine.opening: the inventory is validated and imported once)
start the built-in simulator if asked
run the Runner with signal handlers: first signal drains, second halts
record the end of the invocation and write the report
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from orchestrator.cloud.auth import Credentials, TokenAuth
from orchestrator.cloud.client import EcsClient, Timeouts
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.iam import credentials_for
from orchestrator.cloud.network import Network
from orchestrator.console.livestats import FailureTap, LiveStats, WaveInfo, WindowInfo, in_flight
from orchestrator.console.metrics import Exporter, Labels
from orchestrator.console.notify import Event, Notifier, RolloutEvents
from orchestrator.console.progress import ProgressDisplay, ProgressMeter
from orchestrator.engine.invocation import Invocation, Result
from orchestrator.engine.known_jobs import apply_known_jobs
from orchestrator.engine.opening import (
    RegionCheck,
    check_report_dir,
    check_user_data_has_targets,
    open_state,
)
from orchestrator.engine.pacing import INTENT_LEAD, AdaptivePacing, make_limiter
from orchestrator.engine.retry_select import reopen_selected
from orchestrator.engine.runner import Outcome, Runner
from orchestrator.errors import (
    ReportError,
    StateError,
    UsageError,
)
from orchestrator.model import TargetState
from orchestrator.report import write_campaign_report
from orchestrator.rollout.gate import RolloutGate
from orchestrator.rollout.report import ADAPTIVE_META_KEY, rollout_summary
from orchestrator.rollout.setup import Prepared, prepare_rollout
from orchestrator.store.sqlite import StateStore

log = logging.getLogger("orchestrator.campaign")

__all__ = [
    "Invocation",
    "RegionCheck",
    "Result",
    "check_report_dir",
    "check_user_data_has_targets",
    "connected",
    "execute",
    "open_state",
]


@contextlib.contextmanager
def _signals(stop: asyncio.Event, halt: asyncio.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: drain and stop; second: stop at once. Restored on exit."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning(
                "second signal: stopping at once; accepted jobs are not followed further"
                " (the state file has them: a resume follows and settles them)"
            )
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
    inv: Invocation, store: StateStore | None, session: aiohttp.ClientSession, network: Network
) -> AsyncIterator[tuple[Endpoints, Credentials | None]]:
    if inv.simulate is None:
        credentials = inv.credentials
        if inv.cloud is not None:
            credentials = credentials_for(inv.cloud, session, network.proxies)
        if credentials is None:
            raise UsageError("no credentials in the environment")
        yield inv.endpoints or Endpoints(inv.endpoint, inv.endpoint_template), credentials
        return
    token = secrets.token_urlsafe(24)
    config = inv.simulate
    if config.fleet is None and inv.inventory is not None and store is not None:
        # The validated targets, not the file again: the file may need --encoding
        # or a separator that the simulator's own simple reader does not know.
        config = replace(config, fleet=tuple(t.spec.key for t in store.iter_targets()))
    config = replace(config, token=token)
    from orchestrator.simulator import Simulator  # only for --simulate: aiohttp's web stack

    async with Simulator(config) as sim:
        logging.getLogger("orchestrator.progress").info("simulator listening on %s", sim.url)
        yield Endpoints(sim.url), TokenAuth(token)


@contextlib.asynccontextmanager
async def connected(
    inv: Invocation, fleet: Iterable[tuple[str, str]] | None = None
) -> AsyncIterator[EcsClient]:
    """A client as a run gets it (session, CAs, credentials, endpoints, the poll and
    submit limiters), for reads outside a run: `plan --preflight`. With --simulate
    the simulator's fleet is `fleet`, the inventory's (project_id, server_id) pairs."""
    if inv.simulate is not None and fleet is not None and inv.simulate.fleet is None:
        inv = replace(inv, simulate=replace(inv.simulate, fleet=tuple(fleet)))
    s = inv.settings
    # The in-process simulator is on loopback: no proxy applies.
    network = Network.of(inv.ca, proxies=inv.simulate is None)
    async with (
        network.session(max(64, s.poll_workers())) as session,
        _cloud(inv, None, session, network) as cloud,
    ):
        endpoints, credentials = cloud
        async with EcsClient(
            session,
            endpoints,
            credentials,
            submit_limiter=make_limiter(s.rate),
            poll_limiter=make_limiter(s.poll_rate),
            list_limiter=make_limiter(s.poll_rate),
            timeouts=Timeouts(),
            network=network,
        ) as client:
            yield client


async def execute(inv: Invocation, store: StateStore) -> Result:
    """Run the state file's targets to the end (or to a stop) and write the report;
    webhooks hear of the rollout's decisions and of the end."""
    stop, halt = asyncio.Event(), asyncio.Event()
    # Before the invocation is recorded: a resume that contradicts the fixed plan
    # is refused with nothing written.
    rollout = prepare_rollout(store, inv.rollout, ack=inv.ack_failures, confirm=inv.confirm)
    if inv.known_jobs:
        taken = apply_known_jobs(store, inv.known_jobs)
        log.warning("%d known job id(s) given back to their targets: followed by job", taken)
    store.begin_invocation(inv.options, str(inv.inventory) if inv.inventory else None)
    run_id = store.run_info().run_id
    network = Network.of(inv.ca, proxies=inv.simulate is None)
    rollout_log = logging.getLogger("orchestrator.rollout")
    async with Notifier(inv.notify, network) as notifier:
        events = RolloutEvents(notifier, run_id)
        rollout_log.addHandler(events)
        try:
            result = await _execute(inv, store, rollout, network, stop, halt)
        except BaseException as exc:
            notifier.send(Event("run_ended", f"run {run_id} ended on an error", run_id,
                                {"outcome": "error", "error": type(exc).__name__}))  # fmt: skip
            raise
        finally:
            rollout_log.removeHandler(events)
            if halt.is_set():
                notifier.hurry()  # a second Ctrl-C: the operator wants the prompt back
        notifier.send(run_ended(result))
    return result


def run_ended(result: Result) -> Event:
    """The run_ended notification: outcome, exit code, counts, the report."""
    outcome = result.outcome
    counts = {str(getattr(k, "value", k)): n for k, n in outcome.counts.items() if n}
    text = f"run {result.run_id} {outcome.label} (exit {outcome.exit_code}): " + ", ".join(
        f"{n} {state}" for state, n in sorted(counts.items())
    )
    report = str(result.report.report_html) if result.report else None
    details = {
        "outcome": outcome.label,
        "exit_code": outcome.exit_code,
        "counts": counts,
        "report": report,
    }
    return Event("run_ended", text, result.run_id, details)


async def _execute(
    inv: Invocation,
    store: StateStore,
    rollout: Prepared,
    network: Network,
    stop: asyncio.Event,
    halt: asyncio.Event,
) -> Result:
    outcome: Outcome | None = None
    sent: dict[str, int] = {}
    try:
        if inv.retry is not None:
            request, plan = inv.retry
            reopened = reopen_selected(store, plan, request)
            log.warning(
                "retry (%s): %d failed target(s) reopened, %d deferred one(s) sent again;"
                " no other target is sent",
                request.describe(),
                reopened,
                len(plan.deferred),
            )
        s = inv.settings
        limit = max(64, s.submit_workers() + s.poll_workers())
        async with (
            network.session(limit) as session,
            _cloud(inv, store, session, network) as cloud,
        ):
            endpoints, credentials = cloud
            adaptive = None
            if inv.adaptive:
                adaptive = AdaptivePacing(
                    {
                        "reinstall": s.rate,
                        "job": s.poll_rate,
                        "server": s.poll_rate,
                        "list": s.poll_rate,
                    },
                    leads={"reinstall": INTENT_LEAD},
                )
            async with EcsClient(
                session,
                endpoints,
                credentials,
                submit_limiter=make_limiter(s.rate, lead=INTENT_LEAD),
                poll_limiter=make_limiter(s.poll_rate),
                list_limiter=make_limiter(s.poll_rate),
                timeouts=Timeouts(),
                user_data=inv.user_data.encoded if inv.user_data else None,
                adaptive=adaptive,
                network=network,
            ) as client:
                runner = Runner(store, client, s, rollout=rollout.gate)
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
                        deferred=runner.deferred,
                        submit_rate_adaptive=_adapted(client, "reinstall"),
                        query_rate_adaptive=_adapted(client, "job"),
                        wave=_wave_info(rollout.gate),
                        window=_window_info(rollout.gate),
                    )

                labels = Labels(store.run_info().run_id, str(s.shard) if s.shard else None)
                exporter = Exporter(
                    snapshot,
                    labels,
                    file=inv.metrics_file,
                    port=inv.metrics_port,
                    address=inv.metrics_address,
                )
                try:
                    with _signals(stop, halt):
                        async with (
                            exporter,
                            ProgressDisplay(
                                ProgressMeter(total),
                                snapshot,
                                live=inv.live_progress,
                                console=inv.console,
                                title=f"ECS reinstall · {inv.state_path.name}",
                            ),
                        ):
                            outcome = await runner.run(stop, halt)
                    _rollout_end(store, rollout.gate, outcome, client.adaptive_rates())
                finally:
                    run_log.removeHandler(tap)
                    sent = dict(client.requests)
    finally:
        label = "interrupted" if outcome is None else outcome.label
        with contextlib.suppress(StateError):
            store.end_invocation(label)
    try:
        run = store.run_info()
    except StateError as exc:
        if outcome is None:
            raise
        # The store went away mid-run (a lost database connection): the outcome
        # stands (not complete: exit 3); the report is written from any host later.
        return Result(outcome, None, "", report_error=f"no report: {exc}")
    report = None
    report_error = None
    if not halt.is_set():
        try:
            report = write_campaign_report(
                inv.report_dir,
                store,
                group_by=inv.group_by,
                rollout=rollout_summary(store),
                mode=inv.report_mode,
            )
        except ReportError as exc:
            # The state is intact; the report can be written again with `report`.
            report_error = str(exc)
    return Result(outcome, report, run.run_id, report_error, sent)


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


def _adapted(client: EcsClient, kind: str) -> float | None:
    """The lowest adapted rate of one API across endpoints, where pacing adapts."""
    rates = [r["rate"] for name, r in client.adaptive_rates().items() if name.startswith(kind)]
    return min(rates) if rates else None


def _wave_info(gate: RolloutGate | None) -> WaveInfo | None:
    if gate is None or len(gate.waves) < 2:
        return None
    for number, counts in sorted(gate.waves.items()):
        if not counts.done:
            return WaveInfo(number, len(gate.waves), counts.total, counts.final)
    return None


def _window_info(gate: RolloutGate | None) -> WindowInfo | None:
    if gate is None:
        return None
    schedule = gate.settings.schedule
    if schedule.not_before is None and schedule.deadline is None and schedule.window is None:
        return None
    now = datetime.now(UTC)
    opens = None if schedule.is_open(now) else schedule.next_open(now)
    note = gate.status() or None
    return WindowInfo(opens_at=opens, closes_at=schedule.closes_at(now), note=note)
