"""The run: one loop that drives every target of a state file to a final state.

    recover    targets left mid-way by an earlier process: an intent with no answer
               is in doubt; a job is followed again (this module)
    submit     submit workers take pending targets, within --max-in-flight and what
               the rollout gate allows: read, intent, send (submitting.py)
    follow     poll workers take whatever is due from one heap: job queries, servers
               followed without a job, verifications (following.py), doubts settled
               from the server (settling.py), busy servers read again (submitting.py)
    stop       on the stop event no new reinstall is sent (those waiting for their
               send slot go back to pending at once); accepted ones are followed for
               the drain period; the state is committed either way

A target holds an in-flight slot from the moment a submit worker takes it until it
is final or back to pending, so at most --max-in-flight servers are ever being
reinstalled (or possibly being reinstalled) at once. Every decision about a failed
call comes from one table (decisions.py); the exit code from the outcome (outcome.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from orchestrator.cloud.interface import Cloud
from orchestrator.durations import seconds_text
from orchestrator.engine.context import RunContext
from orchestrator.engine.following import Following
from orchestrator.engine.outcome import Answer, Outcome
from orchestrator.engine.schedule import JobLengths, wait_event
from orchestrator.engine.settings import RunSettings
from orchestrator.engine.settling import Settling
from orchestrator.engine.sharing import RateSharing
from orchestrator.engine.submitting import Stopped, Submitting
from orchestrator.errors import StateError
from orchestrator.model import ACTIVE_STATES, TargetState
from orchestrator.rollout.gate import RolloutGate
from orchestrator.store.sqlite import StateStore

__all__ = ["Answer", "Outcome", "RunSettings", "Runner"]

log = logging.getLogger("orchestrator.run")
S = TargetState


class Runner:
    def __init__(
        self,
        store: StateStore,
        client: Cloud,
        settings: RunSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[dict[TargetState, int]], None] | None = None,
        rollout: RolloutGate | None = None,
    ) -> None:
        self._run = RunContext(
            store,
            client,
            settings,
            rollout or RolloutGate.unrestricted(),
            clock=clock,
            on_change=on_change,
        )
        self._submitting = Submitting(self._run)
        self._following = Following(self._run)
        self._settling = Settling(self._run, self._following)
        self._sharing = RateSharing(self._run)

    @property
    def counts(self) -> dict[TargetState, int]:
        """Targets by state, as this run knows them (for the live panel)."""
        return self._run.counts

    @property
    def deferred(self) -> int:
        """Targets left pending for a later run so far (for the live panel)."""
        return self._run.deferred

    async def run(self, stop: asyncio.Event, halt: asyncio.Event | None = None) -> Outcome:
        """Run until every target is final, or `stop` (graceful) or `halt` (at once) is set."""
        run = self._run
        halt = halt or asyncio.Event()
        # Read directly by the submit path: a stop takes effect at the very next send.
        run.stop = stop
        await self._sharing.start()
        await self._learn_from_the_state()
        await self._recover()
        workers = [
            asyncio.create_task(self._submitting.worker(), name=f"submit-{i}")
            for i in range(run.settings.submit_workers())
        ] + [
            asyncio.create_task(self._poller(), name=f"poll-{i}")
            for i in range(run.settings.poll_workers())
        ]
        try:
            await self._loop(stop, halt)
            await self._submitting.busy.give_up()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self._submitting.answers and not halt.is_set():
                await self._submitting.record_answers()
            await self._sharing.stop()
            await run.reads.close()
            with contextlib.suppress(StateError):
                await run.writer.call(run.store.add_rollout, run.rollout.take_records())
            await run.writer.close()
        return await self._outcome(stopped=stop.is_set() or halt.is_set(), halted=halt.is_set())

    async def _loop(self, stop: asyncio.Event, halt: asyncio.Event) -> None:
        """Wake on every change (or twice a second): end when all is done, or drain
        after a stop; record what the rollout decided meanwhile."""
        run = self._run
        drain_deadline: float | None = None
        while not (halt.is_set() or run.abort):
            if stop.is_set():
                run.work.set()
                if drain_deadline is None:
                    drain_deadline = run.clock() + run.settings.drain_timeout
                    # Intents waiting for their send slot go back now, not when it comes.
                    run.client.stop_sending(Stopped)
                    log.warning(
                        "stop requested: no new reinstalls; following %d for up to %s",
                        len(run.active),
                        seconds_text(run.settings.drain_timeout),
                    )
                drained = run.clock() >= drain_deadline and not self._submitting.unsent
                if not run.active or drained:
                    return
            elif self._finished():
                return
            records = run.rollout.take_records()
            if records:  # rare: a wave started, a trip, a hold
                await run.writer.call(run.store.add_rollout, records)
            run.changed.clear()
            with contextlib.suppress(TimeoutError):
                await wait_event(run.changed, 0.5)

    def _finished(self) -> bool:
        run = self._run
        if run.rollout.held is not None:  # nothing more is sent: follow what runs
            return not run.active
        return self._submitting.idle() and not run.active and not run.rollout.parked

    async def _learn_from_the_state(self) -> None:
        """What earlier runs of this state file learned: the quiet period, job lengths."""
        run = self._run
        learned = await run.writer.call(run.store.meta_value, "settle_quiet_learned")
        if learned:
            run.quiet.observe(float(learned) / run.quiet.margin)
        lengths = await run.writer.call(run.store.job_lengths)
        run.lengths = JobLengths(run.lengths.expected, lengths)

    async def _recover(self) -> None:
        """Take up targets an earlier process left between pending and final."""
        run = self._run
        unfinished = await run.writer.call(run.store.in_states, ACTIVE_STATES, run.settings.shard)
        for target in unfinished:
            await run.take_slot()
            run.active[target.id] = target
            # Whatever an earlier process (or another host) saw, this one has seen nothing
            # yet: its quiet period starts now, whatever the clocks say.
            run.watched_since[target.id] = run.clock()
            if target.state is S.SUBMITTING:
                # The intent was durable; whether the request left is unknown. Reading
                # the server at once is safe: "not accepted" still needs the quiet
                # period watched here, and agreeing readings.
                target = await run.change(
                    target, S.IN_DOUBT, "earlier process stopped between intent and answer"
                )
                run.schedule(target, 0.0)
            elif target.state is S.IN_DOUBT:
                run.schedule(target, 0.0)
            else:
                run.schedule(target, 0.0, by_server=target.job_id is None)
        if unfinished:
            log.warning(
                "resuming: %d target(s) were mid-way; settling and following them", len(unfinished)
            )

    async def _poller(self) -> None:
        """One poll worker: whatever is due next, by what the target has."""
        run = self._run
        busy = self._submitting.busy
        while not run.abort:
            target_id = await run.due.get()
            if target_id in busy.waiting and target_id not in run.active:
                busy.due(target_id)
                continue
            target = run.active.get(target_id)
            if target is None or target.state not in ACTIVE_STATES:
                continue
            info = run.follow[target_id]
            if target.state is S.IN_DOUBT:
                await run.step(target, self._settling.settle(target))
            elif info.verifying is not None:
                await run.step(target, self._following.verify(target))
            elif info.by_server or target.job_id is None:
                await run.step(target, self._following.follow_server(target))
            else:
                await run.step(target, self._following.poll_job(target))

    async def _outcome(self, *, stopped: bool, halted: bool = False) -> Outcome:
        run = self._run
        try:
            counts = await asyncio.to_thread(run.store.counts, run.settings.shard)
        except StateError:
            counts = dict(run.counts)  # the store went away (a lost database connection)
        return Outcome(
            counts=counts,
            deferred=run.deferred,
            stopped=stopped,
            halted=halted,
            aborted=run.abort,
            credentials_refused=run.credentials_refused,
            misconfigured=run.misconfigured,
            held=run.rollout.why_held(),
            unrecorded=list(self._submitting.answers.values()),
        )
