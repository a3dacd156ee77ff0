"""The run: one loop that drives every target of a state file to a final state.

    recover    targets left mid-way by an earlier process: an intent with no
               answer is in doubt; a job is followed again
    settle     an in-doubt target is decided from the server: activity means
               "maybe accepted" (follow it); only a quiet period with agreeing
               readings means "not accepted" (see settle.py)
    submit     a few submit workers take pending targets in inventory order,
               within --max-in-flight, each one only if the rollout gate says
               so (window, wave, budgets, per-project cap: orchestrator.rollout):
               check the server, commit the intent, send, commit the job_id
    follow     a few poll workers take whatever is due from one heap: job
               queries, in-doubt settlements, servers followed without a job
    verify     a job's SUCCESS counts once the server shows it is back (verify.py):
               stable, relaunched; read again a few times while it settles
    busy       a server busy with an operation not of this run is read again later
               in the same run (a few times, further apart), then deferred
    stop       on the stop event no new reinstall is sent; accepted ones are
               followed for the drain period; state is committed either way

A target holds an in-flight slot from the moment a submit worker takes it
until it is final or back to pending, so at most --max-in-flight servers are
ever being reinstalled (or possibly being reinstalled) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN
from orchestrator.cloud.client import EcsClient, JobView, ServerView
from orchestrator.cloud.retry_policy import RetrySettings, brief, call_retrying
from orchestrator.engine.pacing import INTENT_LEAD
from orchestrator.engine.schedule import Backoff, DueQueue, JobLengths, wait_event
from orchestrator.engine.settle import (
    LOCAL_INTENT_ERROR,
    Before,
    Clock,
    QuietPeriod,
    Settlement,
    Verdict,
    follow,
    is_rebuilding,
    parse_time,
    same_reading,
    settle,
)
from orchestrator.engine.shard import Shard
from orchestrator.engine.verify import NOT_VERIFIED, check_back
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    ClockSkewed,
    NotFound,
    OutcomeUnknown,
    Rejected,
    RetryLater,
    RunCannotGoOn,
    StateError,
    WrongEndpoint,
)
from orchestrator.model import ACTIVE_STATES, FINAL_STATES, Target, TargetState, evolve
from orchestrator.rollout.gate import RolloutGate
from orchestrator.store.sqlite import Change, StateStore, utc_now
from orchestrator.store.writer import StateWriter

log = logging.getLogger("orchestrator.run")
T = TypeVar("T")

S = TargetState
FEED_PAGE = 1000
# Seconds a job id the store refused is tried again at the end of a run, at least.
RECORD_PATIENCE = 5.0
# A runner sharing a campaign says it is alive this often; one not seen for the lease
# is counted out, and the others take its share of the rates.
RUNNER_HEARTBEAT = 1.0
RUNNER_LEASE = 5.0


@dataclass(frozen=True)
class RunSettings:
    rate: float = 10.0  # reinstall requests per second
    poll_rate: float = 50.0  # job and server queries per second
    max_in_flight: int = 200
    job_timeout: float = 3600.0  # a reinstall not ended by then is failed
    first_poll: float = 5.0  # first job query this long after the job_id arrived
    poll_cap: float = 60.0  # polling interval grows toward this
    settle_delay: float = 5.0  # wait before asking a server about an uncertain reinstall
    # "Not accepted" only after this long without any sign of activity since the
    # intent (never lowered; raised when jobs are seen to start later than this).
    settle_quiet: float = 600.0
    drain_timeout: float = 60.0  # after a stop, follow accepted jobs this long
    preflight: bool = True  # read the server before sending (launched_at, rebuilding)
    query_failures_to_settle: int = 5  # a job query failing this often: settle from the server
    max_resends: int = 3  # reinstalls settled as "not accepted" sent again at most this often
    # Nothing is sent while this host's wall clock is further than this (seconds) from
    # the service's, as its answers' Date headers show: a clock that far off is a host
    # to fix (its windows and deadlines would be off too) before a disk is wiped.
    max_clock_skew: float = 60.0
    # Seconds the service's own clocks (the one behind Date, those behind launched_at
    # and updated) may disagree: times closer than this to an intent "cannot tell".
    clock_margin: float = SERVICE_CLOCKS_AGREE_WITHIN
    retry: RetrySettings = field(default_factory=RetrySettings)
    # Preflight: leave servers relaunched after this time alone (reported as skipped).
    skip_reinstalled_since: datetime | None = None
    # --expected-job-seconds as given: the first job query's timing until this state
    # file has seen jobs end (then their lengths decide).
    expected_job_seconds: float | None = None
    # Run only this part of the campaign (its feed, its recovery and its counts).
    shard: Shard | None = None
    # After a job's SUCCESS, read the server: succeeded only if it is back (verify.py).
    verify: bool = True
    verify_reads: int = 4  # reads of a server still settling after SUCCESS, at most
    # A server busy with someone else's operation is read again this often in the
    # same run, after busy_recheck_delay, then twice that, ...; then deferred.
    busy_rechecks: int = 3
    busy_recheck_delay: float = 60.0

    def submit_workers(self) -> int:
        # A second's worth, plus the intents committed ahead of their send slot.
        return max(2, min(self.max_in_flight, math.ceil(self.rate * (1 + INTENT_LEAD)) + 4, 256))

    def poll_workers(self) -> int:
        return max(4, min(math.ceil(self.poll_rate) + 4, 256))


@dataclass
class Outcome:
    counts: dict[TargetState, int]
    deferred: int = 0
    stopped: bool = False
    aborted: str | None = None  # why the run could not go on
    credentials_refused: bool = False  # aborted because the API refused the credentials
    # Aborted for a fault of the configuration (wrong endpoint, never reachable):
    # nothing unsafe was done, fix and run again.
    misconfigured: bool = False
    held: str | None = None  # why the rollout stopped sending (window, canary, budget)
    # Job ids the service returned that could not be recorded: a resume must be given
    # them (--known-job), or it would settle those targets from the servers alone.
    unrecorded: list[Answer] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(n == 0 for s, n in self.counts.items() if s not in FINAL_STATES)

    @property
    def exit_code(self) -> int:
        if self.credentials_refused or self.misconfigured:
            return 2
        if not self.complete:
            return 3
        return 1 if self.counts[S.FAILED] else 0


class _Stopped(Exception):
    """A stop was asked for before the request went out."""


@dataclass
class Answer:
    """A job id the service returned that the state store could not record."""

    target: Target  # as it was committed: submitting
    job_id: str
    submitted_at: str
    status: str | None = None  # the job's status, as last asked while the record was retried

    def describe(self) -> str:
        where = f"{self.target.project_id}/{self.target.server_id}"
        return f"{where} job {self.job_id} ({self.status or 'status unknown'})"


@dataclass
class _Follow:
    backoff: Backoff
    started: float
    failures: int = 0
    by_server: bool = False  # no usable job: follow the server itself
    last_status: str | None = None
    previous: ServerView | None = None  # the last reading while settling a doubt
    still_since: float | None = None  # following by server: since when `previous` holds
    seen_rebuild: bool = False  # following by server: the rebuild was seen under way
    job_started: bool = False  # the job was seen past INIT
    verifying: JobView | None = None  # the job said SUCCESS: the server is being checked
    verify_reads: int = 0
    # The job cannot decide: the service no longer knows it (Common.0011). The server
    # is followed instead.
    job_unusable: bool = False
    seen_launched_at: str | None = None  # launched_at as first read after the intent


class Runner:
    def __init__(
        self,
        store: StateStore,
        client: EcsClient,
        settings: RunSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[dict[TargetState, int]], None] | None = None,
        rollout: RolloutGate | None = None,
    ) -> None:
        self._store = store
        self._rollout = rollout or RolloutGate.unrestricted()
        self._client = client
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._writer = StateWriter(store, counters=self._counter_deltas)
        self._due = DueQueue(clock)
        self._active: dict[int, Target] = {}
        self._follow: dict[int, _Follow] = {}
        self._feed: deque[Target] = deque()
        self._requeued: deque[Target] = deque()
        self._not_refed: set[int] = set()  # deferred this run: the feed must not send them again
        # Intents being committed or committed and not yet sent (waiting for their send
        # slot): a stop puts each back to pending, and the run waits for that to be done.
        self._unsent: set[int] = set()
        # Servers busy with someone else's operation, waiting for a re-check: id ->
        # (target, when it is due). They hold no slot while they wait.
        self._busy_wait: dict[int, tuple[Target, float]] = {}
        self._busy_checks: dict[int, int] = {}
        self._feed_after = 0
        self._feed_done = False
        self._feed_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()  # replaced by run()'s stop event
        self._abort: str | None = None
        self._deferred = 0
        # In-flight slots: FIFO, one waiter woken per freed slot. Targets resumed
        # mid-way beyond the limit are owed back (`_slot_debt`) before new ones start.
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._slot_debt = 0
        self._work = asyncio.Event()  # a target went back to pending, or the run ends
        self._credentials_refused = False
        self._misconfigured = False
        self._quiet = QuietPeriod(settings.settle_quiet)
        self._service_clock = client.service_clock
        # Since when (monotonic) this process watches each reinstall that may be under
        # way: its intent, when made here; else when this process took it up.
        self._watched_since: dict[int, float] = {}
        self._sent_at: dict[int, float] = {}  # when (monotonic) this process sent each
        # Job ids the service returned that the state store could not record (yet).
        self._answers: dict[int, Answer] = {}
        self._holder = f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(3)}"
        self._runners = 1  # runners sharing the campaign (and its rates), this one included
        self._clock_probed = False  # a server was read for the service's clock (no preflight)
        self._clock_lock = asyncio.Lock()
        self._sending_marked = False  # the main state file says sending began
        self._mark_lock = asyncio.Lock()
        self._lengths = JobLengths(settings.expected_job_seconds)
        self._sent_counters: dict[str, int] = {}
        self.counts: dict[TargetState, int] = store.counts(settings.shard)

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, halt: asyncio.Event | None = None) -> Outcome:
        """Run until every target is final, or `stop` (graceful) or `halt` (at once) is set."""
        halt = halt or asyncio.Event()
        # Read directly by the submit path, so a stop takes effect at the very next
        # send, not when this loop next wakes.
        self._stop = stop
        sharing = None
        if self._store.SHARED:
            # Before the first request: this runner's share of the campaign's rates, once
            # every runner already there has had a heartbeat to count this one in.
            await self._share_rates()
            await asyncio.sleep(RUNNER_HEARTBEAT * 1.2)
            await self._share_rates()
            sharing = asyncio.create_task(self._keep_sharing(), name="share-rates")
        learned = await self._writer.call(self._store.meta_value, "settle_quiet_learned")
        if learned:
            self._quiet.observe(float(learned) / self._quiet.margin)
        # Polling learns from the jobs this state file has seen end (issue 10, point 6).
        self._lengths = JobLengths(
            self._lengths.expected, await self._writer.call(self._store.job_lengths)
        )
        await self._recover()
        workers = [
            asyncio.create_task(self._submitter(), name=f"submit-{i}")
            for i in range(self._settings.submit_workers())
        ] + [
            asyncio.create_task(self._poller(), name=f"poll-{i}")
            for i in range(self._settings.poll_workers())
        ]
        drain_deadline: float | None = None
        try:
            while True:
                if halt.is_set() or self._abort:
                    break
                if stop.is_set():
                    self._work.set()
                    if drain_deadline is None:
                        drain_deadline = self._clock() + self._settings.drain_timeout
                        # Intents waiting for their send slot go back now, not when it comes.
                        self._client.stop_sending(_Stopped)
                        log.warning(
                            "stop requested: no new reinstalls; following %d for up to %.0f s",
                            len(self._active),
                            self._settings.drain_timeout,
                        )
                    if not self._following() or (
                        self._clock() >= drain_deadline and not self._unsent
                    ):
                        break
                elif self._finished():
                    break
                records = self._rollout.take_records()
                if records:  # rare: a wave started, a trip, a hold
                    await self._writer.call(self._store.add_rollout, records)
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await wait_event(self._changed, 0.5)
            await self._give_up_waiting()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self._answers and not halt.is_set():
                await self._record_answers()
            if sharing is not None:
                sharing.cancel()
                await asyncio.gather(sharing, return_exceptions=True)
                with contextlib.suppress(StateError):
                    await self._writer.call(self._store.leave, self._holder)
            with contextlib.suppress(StateError):
                await self._writer.call(self._store.add_rollout, self._rollout.take_records())
            await self._writer.close()
        try:
            counts = await asyncio.to_thread(self._store.counts, self._settings.shard)
        except StateError:
            counts = dict(self.counts)  # the store went away (a lost database connection)
        return Outcome(
            counts=counts,
            deferred=self._deferred,
            stopped=stop.is_set() or halt.is_set(),
            aborted=self._abort,
            credentials_refused=self._credentials_refused,
            misconfigured=self._misconfigured,
            held=self._rollout.why_held(),
            unrecorded=list(self._answers.values()),
        )

    @property
    def deferred(self) -> int:
        """Targets left pending for a later run so far (for the live panel)."""
        return self._deferred

    @property
    def _stopping(self) -> bool:
        return self._stop.is_set()

    def _finished(self) -> bool:
        if self._rollout.held is not None:  # nothing more is sent: follow what runs
            return not self._active
        return (
            self._feed_done
            and not self._feed
            and not self._requeued
            and not self._active
            and not self._busy_wait
            and not self._rollout.parked
        )

    def _following(self) -> bool:
        # Targets still worth draining: those a reinstall may be running for, and
        # those a submit worker still holds (pending in memory while its intent is
        # being committed: the worker must live to put an unsent intent back).
        return bool(self._active)

    async def _recover(self) -> None:
        """Take up targets an earlier process left between pending and final."""
        unfinished = await self._writer.call(
            self._store.in_states, ACTIVE_STATES, self._settings.shard
        )
        for target in unfinished:
            await self._take_slot()
            self._active[target.id] = target
            # Whatever an earlier process (or another host) saw, this one has seen nothing
            # yet: its quiet period starts now, whatever the clocks say.
            self._watched_since[target.id] = self._clock()
            if target.state is S.SUBMITTING:
                # The intent was durable; whether the request left is unknown. Reading
                # the server at once is safe: "not accepted" still needs the quiet
                # period since the intent, and agreeing readings.
                target = await self._change(
                    target, S.IN_DOUBT, "earlier process stopped between intent and answer"
                )
                self._schedule(target, 0.0)
            elif target.state is S.IN_DOUBT:
                self._schedule(target, 0.0)
            else:
                self._schedule(target, 0.0, by_server=target.job_id is None)
        if unfinished:
            log.warning(
                "resuming: %d target(s) were mid-way; settling and following them", len(unfinished)
            )

    # -- submitting ------------------------------------------------------------------

    async def _submitter(self) -> None:
        while not self._stopping and not self._abort:
            await self._slots.acquire()
            target = None
            # Cleared before looking, so a target requeued while we look (the feed
            # read awaits) sets it again and the wait below returns at once.
            self._work.clear()
            if not self._stopping and not self._abort:
                try:
                    target = await self._next_pending()
                except StateError as exc:
                    self._release_slot()
                    self._fail_run(f"state file: {exc}")
                    return
            if target is None:
                self._release_slot()
                if self._stopping or self._abort:
                    return
                await self._work.wait()  # until something goes back to pending
                continue
            decision = self._rollout.decide(target, self._active)
            if not decision.send:
                self._release_slot()
                if self._rollout.keep(target, decision):
                    self._requeued.append(target)  # before the rest of the feed
                self._changed.set()
                if self._rollout.held is not None:
                    return  # nothing more is sent in this run
                await self._rollout.wait(target, decision, self._work)
                continue
            self._active[target.id] = target
            try:
                await self._step(target, self._submit(target))
            finally:
                self._unsent.discard(target.id)

    async def _next_pending(self) -> Target | None:
        parked = self._rollout.unpark(self._active)
        if parked is not None:
            return parked
        if self._requeued:
            return self._requeued.popleft()
        if not self._feed and not self._feed_done:
            async with self._feed_lock:
                if not self._feed and not self._feed_done:
                    page = await self._writer.call(
                        self._store.pending_after,
                        self._feed_after,
                        FEED_PAGE,
                        self._settings.shard,
                    )
                    if page:
                        self._feed_after = page[-1].id
                        self._feed.extend(
                            t
                            for t in page
                            if t.id not in self._active and t.id not in self._not_refed
                        )
                    else:
                        self._feed_done = True
                        self._changed.set()
        if self._requeued:  # requeued while the page was being read
            return self._requeued.popleft()
        return self._feed.popleft() if self._feed else None

    async def _submit(self, target: Target) -> None:
        spec = target.spec
        before: ServerView | None = None
        if self._settings.preflight:
            server = await self._preflight(target)
            if server is None:
                return
            before = server

        elif not self._service_clock.known:
            # The intent is stamped on the service's clock: learn it first.
            await self._learn_service_clock(target)

        committed: list[Target] = []

        def last_check() -> None:
            # Before the intent (after the pacer) and again right before the request
            # leaves (after its send slot): a stop or a trip meanwhile stops it, unsent.
            if self._stopping or self._abort or not self._rollout.still_allowed(target):
                raise _Stopped
            self._check_skew()
            self._unsent.discard(target.id)  # it leaves now (or no intent was made yet)
            if committed:
                # The quiet period counts from here: the service cannot act before.
                self._watched_since[target.id] = self._sent_at[target.id] = self._clock()

        async def commit_intent() -> None:
            # Runs after the pacer allowed the request and right before it leaves.
            if committed:
                return
            last_check()
            self._unsent.add(target.id)
            await self._mark_sending()
            launched = before.launched_at if before else None
            stamp = self._service_clock.now()
            committed.append(
                await self._change(
                    target,
                    S.SUBMITTING,
                    "intent to send a reinstall",
                    attempts=target.attempts + 1,
                    intent_at=utc_now(),
                    intent_service_at=None if stamp is None else stamp.iso(),
                    intent_error=None if stamp is None else round(stamp.error, 3),
                    launched_at_before=launched,
                    first_launched_at=target.first_launched_at or launched,
                    status_before=before.status if before else None,
                    updated_before=before.updated if before else None,
                    job_id=None,
                    error_code=None,
                    fail_reason=None,
                )
            )
            # A stop that arrived while the intent was being committed still
            # stops this send: the intent goes back to pending, unsent.
            if self._stopping or self._abort:
                raise _Stopped

        tries = 0

        async def send() -> str:
            nonlocal tries
            if committed and (self._stopping or self._abort):
                raise _Stopped
            tries += 1
            return await self._client.reinstall(
                spec, before_send=commit_intent, last_check=last_check
            )

        try:
            job_id = await call_retrying(self._settings.retry, send)
        except _Stopped:
            if committed:
                why = (
                    "stopped before the request left; not sent"
                    if tries <= 1
                    else "stopped before sending again; earlier tries were refused"
                )
                await self._unsend(committed[0], why, sent=tries > 1)
            return
        except AuthFailed as exc:
            if committed:
                await self._unsend(committed[0], f"credentials refused, nothing done: {exc}")
            self._refused(exc)
            return
        except RunCannotGoOn as exc:
            # Refused before the service acted (no connection, or a wrong URL).
            if committed:
                await self._unsend(committed[0], f"not acted on: {exc}")
            self._cannot_go_on(exc)
            return
        except RetryLater as exc:
            await self._change(
                committed[0],
                S.PENDING,
                f"deferred: still refused after retries: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
            )
            self._deferred += 1
            self._not_refed.add(target.id)
            return
        except Rejected as exc:
            await self._change(
                committed[0],
                S.FAILED,
                f"rejected: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
                finished_at=utc_now(),
            )
            return
        except (OutcomeUnknown, BadResponse) as exc:
            target = await self._change(
                committed[0],
                S.IN_DOUBT,
                f"outcome unknown: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
            )
            self._schedule(target, self._settings.settle_delay)
            return
        # Logged before its commit: if the commit fails, the log still has the job id.
        log.info(
            "%s/%s accepted as job %s",
            target.project_id,
            target.server_id,
            job_id,
            extra={
                "project_id": target.project_id,
                "server_id": target.server_id,
                "job_id": job_id,
            },
        )
        submitted_at = utc_now()
        try:
            target = await self._change(
                committed[0],
                S.SUBMITTED,
                f"accepted as job {job_id}",
                job_id=job_id,
                submitted_at=submitted_at,
            )
        except StateError as exc:
            self._answer_not_recorded(committed[0], job_id, submitted_at, exc)
            return
        self._schedule(target)  # the first wait: --first-poll, or what was learned

    async def _share_rates(self) -> None:
        """--rate and --poll-rate are the campaign's: each runner sharing it (a shard on
        another host) takes an equal share, counted on the database's clock."""
        shard = str(self._settings.shard) if self._settings.shard else None
        try:
            runners = await self._writer.call(
                self._store.heartbeat, self._holder, shard, RUNNER_LEASE
            )
        except StateError as exc:
            log.warning("could not count the runners sharing the campaign: %s", exc)
            return  # the share stays as it was; the run's own writes will say more
        if runners != self._runners:
            self._runners = runners
            s = self._settings
            self._client.set_rates(s.rate / runners, s.poll_rate / runners)
            if runners > 1:
                log.info(
                    "%d runners share the campaign: this one sends %.2f reinstalls and %.2f"
                    " reads per second",
                    runners,
                    s.rate / runners,
                    s.poll_rate / runners,
                )

    async def _keep_sharing(self) -> None:
        while True:
            await asyncio.sleep(RUNNER_HEARTBEAT)
            await self._share_rates()

    async def _mark_sending(self) -> None:
        """Before the first intent of this invocation: the state file records, in its
        main file, that sending begins (and when, on the service's clock)."""
        if self._sending_marked:
            return
        async with self._mark_lock:
            if self._sending_marked:
                return
            stamp = self._service_clock.now()
            await self._writer.call(
                self._store.mark_sending,
                None if stamp is None else stamp.iso(),
                None if stamp is None else stamp.error,
            )
            self._sending_marked = True

    def _answer_not_recorded(
        self, target: Target, job_id: str, submitted_at: str, exc: StateError
    ) -> None:
        """The service returned a job id and the state store failed to record it. The
        id must not be lost: a resume that did not know it would settle the target from
        the server alone, and a job still queued there shows nothing. It is kept here,
        recorded again before the run ends, and listed at the end if that fails too."""
        self._answers[target.id] = Answer(target, job_id, submitted_at)
        log.error(
            "%s/%s: job %s could not be recorded in the state file: %s",
            target.project_id,
            target.server_id,
            job_id,
            exc,
            extra={
                "project_id": target.project_id,
                "server_id": target.server_id,
                "job_id": job_id,
            },
        )
        self._fail_run(f"state file: {exc}")

    async def _record_answers(self) -> None:
        """Record the job ids the store refused, trying again for --drain-timeout (at
        least RECORD_PATIENCE) and asking each job meanwhile, so that what stays
        unrecorded is listed with its latest status."""
        deadline = self._clock() + max(self._settings.drain_timeout, RECORD_PATIENCE)
        pause = 0.5
        while True:
            for target_id, answer in list(self._answers.items()):
                try:
                    await self._change(
                        answer.target,
                        S.SUBMITTED,
                        f"accepted as job {answer.job_id} (recorded late)",
                        job_id=answer.job_id,
                        submitted_at=answer.submitted_at,
                    )
                except StateError:
                    continue
                del self._answers[target_id]
                log.warning("%s recorded after all", answer.describe())
            if not self._answers or self._clock() >= deadline:
                return
            for answer in self._answers.values():
                t = answer.target
                with contextlib.suppress(ApiError):
                    job = await self._client.job(t.project_id, answer.job_id, t.spec.region)
                    answer.status = job.status
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _learn_service_clock(self, target: Target) -> None:
        """One read of a server, once a run, for the Date of its answer (without
        preflight, nothing else would be read before the first reinstall). Should it
        fail, the clock is learned from the next answers, reinstalls' included."""
        async with self._clock_lock:
            if self._clock_probed:
                return
            self._clock_probed = True
            await self._probe_service_clock(target)

    async def _probe_service_clock(self, target: Target) -> None:
        with contextlib.suppress(ApiError):
            await self._query(
                lambda: self._client.server(
                    target.project_id, target.server_id, target.spec.region
                ),
                patient=True,
            )
        if not self._service_clock.known:
            log.warning(
                "the service's answers carry no Date header: intents are stamped without the"
                " service's time, and a lost answer whose server has no earlier reading is"
                " reported as unverified, never sent again"
            )

    def _check_skew(self) -> None:
        skew = self._service_clock.skew()
        limit = self._settings.max_clock_skew
        if skew is not None and abs(skew) > limit:
            ahead = "ahead of" if skew > 0 else "behind"
            raise ClockSkewed(
                f"this host's clock is {abs(skew):.0f} s {ahead} the service's (the Date"
                f" header of its answers); nothing is sent while they differ by more than"
                f" --max-clock-skew {limit:g} s: set this host's clock right (NTP), then"
                " resume",
                reached=True,
            )

    async def _preflight(self, target: Target) -> ServerView | None:
        """Read the server before sending; None when the target was settled, deferred
        or the run stopped instead."""
        spec = target.spec
        try:
            server = await self._query(
                lambda: self._client.server(spec.project_id, spec.server_id, spec.region),
                patient=True,
            )
        except NotFound as exc:
            await self._change(
                target,
                S.FAILED,
                "server does not exist; nothing sent",
                error_code=exc.code or "Ecs.0114",
                fail_reason=str(exc),
                finished_at=utc_now(),
            )
            return None
        except AuthFailed as exc:
            self._drop(target.id)
            self._refused(exc)
            return None
        except RunCannotGoOn as exc:
            self._drop(target.id)
            self._cannot_go_on(exc)
            return None
        except ApiError as exc:
            await self._defer(target, f"could not read the server before sending: {exc}")
            return None
        if target.attempts and self._earlier_attempt_shows(target, server):
            # Ours, most likely: an earlier attempt (this run or before a stop) was
            # acted on after all. Settle it; never send on top of it.
            target = await self._change(
                target,
                S.IN_DOUBT,
                "an earlier attempt shows on the server "
                f"(status {server.status}, task state {server.task_state}, "
                f"launched_at {server.launched_at}); settling, not sending",
            )
            self._schedule(target, 0.0)
            return None
        since = self._settings.skip_reinstalled_since
        launched = parse_time(server.launched_at)
        if since is not None and launched is not None and launched > since:
            await self._change(
                target,
                S.SKIPPED,
                f"skipped: launched_at {server.launched_at} is after "
                f"--skip-reinstalled-since {since.isoformat()}",
                finished_at=utc_now(),
            )
            return None
        if is_rebuilding(server) or server.task_state:
            await self._busy(
                target,
                f"server is busy (status {server.status}, task state {server.task_state}),"
                " not by this run; not sent",
            )
            return None
        return server

    @staticmethod
    def _earlier_attempt_shows(target: Target, server: ServerView) -> bool:
        if is_rebuilding(server) or server.task_state:
            return True
        first = target.first_launched_at or target.launched_at_before
        return first is not None and server.launched_at != first

    async def _busy(self, target: Target, why: str) -> None:
        """A server busy with an operation not of this run: read it again later in
        this run (a bounded number of times, further apart each time), then defer."""
        checks = self._busy_checks.get(target.id, 0)
        if checks >= self._settings.busy_rechecks or self._stopping:
            after = f"; still busy after {checks} re-check(s)" if checks else ""
            await self._defer(target, why + after)
            return
        self._busy_checks[target.id] = checks + 1
        delay = self._settings.busy_recheck_delay * 2**checks
        note = f"{why}; read again in {delay:.0f} s (re-check {checks + 1} of "
        note += f"{self._settings.busy_rechecks})"
        log.info("%s/%s %s", target.project_id, target.server_id, note)
        await self._writer.call(self._store.note, target.id, target.state, note)
        self._not_refed.add(target.id)
        self._drop(target.id)  # no slot is held while it waits
        self._busy_wait[target.id] = (target, self._clock() + delay)
        self._due.push(target.id, delay)

    def _recheck_busy(self, target_id: int) -> None:
        """A busy server's re-check is due: back in line for a submit worker, which
        reads the server again before sending anything."""
        target, due = self._busy_wait[target_id]
        if self._clock() < due or self._stopping or self._abort:
            return  # an older heap entry, or the run stops: reported as deferred
        del self._busy_wait[target_id]
        self._requeued.append(target)
        self._work.set()

    async def _give_up_waiting(self) -> None:
        """The run ends (stopped) with busy servers still waiting: defer them, saying why."""
        for target_id, (target, _) in list(self._busy_wait.items()):
            del self._busy_wait[target_id]
            if self._abort:
                self._deferred += 1  # the state file may be what failed: no note
                continue
            await self._defer(target, "server was busy, not by this run; the run stopped first")

    async def _unsend(self, target: Target, why: str, *, sent: bool = True) -> None:
        """An intent refused before the service acted on it: back to pending. When
        no request left at all, the attempt is not counted either."""
        attempts = target.attempts if sent else max(target.attempts - 1, 0)
        await self._change(target, S.PENDING, why, attempts=attempts)

    async def _defer(self, target: Target, why: str) -> None:
        """Leave a target pending for a later run, and say why in its events."""
        self._deferred += 1
        log.warning("%s/%s deferred: %s", target.project_id, target.server_id, why)
        await self._writer.call(self._store.note, target.id, target.state, f"deferred: {why}")
        self._not_refed.add(target.id)
        self._drop(target.id)

    # -- following ---------------------------------------------------------------------

    def _schedule(
        self, target: Target, delay: float | None = None, *, by_server: bool | None = None
    ) -> None:
        self._watched_since.setdefault(target.id, self._clock())
        follow_ = self._follow.get(target.id)
        if follow_ is None:
            follow_ = _Follow(
                self._lengths.backoff(self._settings.first_poll, self._settings.poll_cap),
                self._clock(),
            )
            self._follow[target.id] = follow_
        if by_server is not None:
            follow_.by_server = by_server
        self._due.push(target.id, follow_.backoff.next() if delay is None else delay)

    async def _poller(self) -> None:
        while not self._abort:
            target_id = await self._due.get()
            if target_id in self._busy_wait and target_id not in self._active:
                self._recheck_busy(target_id)
                continue
            target = self._active.get(target_id)
            if target is None or target.state not in ACTIVE_STATES:
                continue
            if target.state is S.IN_DOUBT:
                await self._step(target, self._settle(target))
            elif self._follow[target_id].verifying is not None:
                await self._step(target, self._verify(target))
            elif self._follow[target_id].by_server or target.job_id is None:
                await self._step(target, self._follow_server(target))
            else:
                await self._step(target, self._poll_job(target))

    def _timed_out(self, target: Target) -> bool:
        return self._clock() - self._follow[target.id].started > self._settings.job_timeout

    async def _poll_job(self, target: Target) -> None:
        info = self._follow[target.id]
        assert target.job_id is not None
        job_id = target.job_id
        try:
            job = await self._query(
                lambda: self._client.job(target.project_id, job_id, target.spec.region)
            )
        except NotFound:
            info.job_unusable = True  # it cannot decide anything now: the server will
            target = await self._change(
                target, S.IN_DOUBT, f"the service no longer knows job {job_id}"
            )
            self._schedule(target, 0.0)
            return
        except AuthFailed as exc:
            self._refused(exc)
            return
        except RunCannotGoOn as exc:
            self._cannot_go_on(exc)
            return
        except ApiError as exc:
            info.failures += 1
            if self._timed_out(target):
                await self._job_timed_out(target)
            elif info.failures >= self._settings.query_failures_to_settle:
                target = await self._change(target, S.IN_DOUBT, f"job query kept failing: {exc}")
                self._schedule(target, 0.0)
            else:
                self._schedule(target)
            return
        info.failures = 0
        # The job is asked before the timeout is judged: a run that was paused (a
        # stopped process, a suspended VM) past --job-timeout finds a job that ended.
        if job.status not in ("SUCCESS", "FAIL") and self._timed_out(target):
            info.last_status = job.status
            await self._job_timed_out(target)
            return
        await self._on_job(target, job)

    async def _job_timed_out(self, target: Target) -> None:
        info = self._follow[target.id]
        await self._change(
            target,
            S.FAILED,
            f"job {target.job_id} did not end within {self._settings.job_timeout:.0f} s",
            error_code="Orchestrator.JobTimeout",
            fail_reason=(
                f"job did not end within --job-timeout {self._settings.job_timeout:.0f} s"
                f" (last status {info.last_status or 'unknown'});"
                " the server may still be rebuilding"
            ),
            finished_at=utc_now(),
        )

    async def _on_job(self, target: Target, job: JobView) -> None:
        info = self._follow[target.id]
        info.last_status = job.status
        if job.status != "INIT" and not info.job_started:
            info.job_started = True
            await self._learn_quiet(target, job)
        times = {"job_begin_at": job.begin_time, "job_end_at": job.end_time}
        if job.status in ("SUCCESS", "FAIL"):
            self._observe_length(job)
        if job.server_id is not None and job.server_id != target.server_id:
            target = await self._change(
                target,
                S.IN_DOUBT,
                f"job {job.job_id} reports server {job.server_id[:40]!r}, not ours",
            )
            self._schedule(target, 0.0)
        elif job.status == "SUCCESS" and self._settings.verify:
            info.verifying = job
            await self._verify(target)
        elif job.status == "SUCCESS":
            await self._change(
                target, S.SUCCEEDED, f"job {job.job_id} SUCCESS", finished_at=utc_now(), **times
            )
        elif job.status == "FAIL":
            await self._change(
                target,
                S.FAILED,
                f"job {job.job_id} FAIL",
                error_code=job.error_code or "unknown",
                fail_reason=job.fail_reason or "job failed",
                finished_at=utc_now(),
                **times,
            )
        else:
            if target.state is S.SUBMITTED:
                target = await self._change(target, S.RUNNING, f"job {job.job_id} {job.status}")
            self._schedule(target)

    async def _verify(self, target: Target) -> None:
        """After a job's SUCCESS: succeeded only once the server shows it is back
        (verify.py); read again, a bounded number of times, while it settles."""
        info = self._follow[target.id]
        job = info.verifying
        assert job is not None
        times = {"job_begin_at": job.begin_time, "job_end_at": job.end_time}
        server = await self._read_server(
            target, f"job {job.job_id} SUCCESS, but the server no longer exists"
        )
        if server is None and not self._unchanged(target):
            return  # failed (gone), or the run stops
        info.verify_reads += 1
        last = info.verify_reads >= self._settings.verify_reads
        if server is None:
            check = Settlement(Verdict.WAIT, "the server could not be read after SUCCESS")
        else:
            clock = self._clock_for(target)
            if parse_time(job.begin_time) is not None:
                # The job began after the request arrived, and its time is the service's
                # own: a relaunch after it is this job's, more sharply than the intent's.
                clock = replace(
                    clock, intent_at=job.begin_time, intent_error=self._settings.clock_margin
                )
            check = check_back(server, self._before(target), clock)
        if check.verdict is Verdict.SUCCEEDED:
            await self._change(
                target,
                S.SUCCEEDED,
                f"job {job.job_id} SUCCESS, verified: {check.reason}",
                finished_at=utc_now(),
                **times,
            )
        elif check.verdict is Verdict.FAILED or last:
            reads = f" (after {info.verify_reads} read(s))" if check.verdict is Verdict.WAIT else ""
            await self._change(
                target,
                S.FAILED,
                f"job {job.job_id} SUCCESS, not verified: {check.reason}{reads}",
                error_code=NOT_VERIFIED,
                fail_reason=f"job {job.job_id} said SUCCESS, but {check.reason}{reads}",
                finished_at=utc_now(),
                **times,
            )
        else:
            if target.state is S.SUBMITTED:
                target = await self._change(
                    target, S.RUNNING, f"job {job.job_id} SUCCESS; verifying the server"
                )
            delay = self._settings.first_poll * 2 ** (info.verify_reads - 1)
            self._schedule(target, min(delay, self._settings.poll_cap))

    def _observe_length(self, job: JobView) -> None:
        """A job ended: its length, begin to end on the service's own clock, tunes later
        polling (never this host's clock against the service's)."""
        begun, ended = parse_time(job.begin_time), parse_time(job.end_time)
        if begun is not None and ended is not None:
            self._lengths.observe((ended - begun).total_seconds())

    async def _learn_quiet(self, target: Target, job: JobView) -> None:
        """A job seen started: if it took longer to start than the quiet period assumes,
        raise the period (within its ceiling). Measured on the service's clock alone, so
        a step of this host's clock teaches nothing: from the intent (stamped on that
        clock) or, for an intent stamped on this host's clock, from the job's own
        begin_time, to its start (its sub-job's begin_time, else the service's now)."""
        start = parse_time(job.started_time)
        if start is None:
            now = self._service_clock.now()
            start = None if now is None else now.at
        clock = self._clock_for(target)
        origin = None if clock.intent_error >= LOCAL_INTENT_ERROR else parse_time(clock.intent_at)
        if origin is not None:
            # The intent's earliest possible time: a delay is never learned short.
            origin -= timedelta(seconds=clock.intent_error)
        else:
            origin = parse_time(job.begin_time)
        if start is None or origin is None:
            return
        took = (start - origin).total_seconds()
        if self._quiet.observe(took):
            log.warning(
                "a job took %.0f s to start; the settle quiet period is raised to %.0f s",
                took,
                self._quiet.seconds,
            )
            await self._writer.call(
                self._store.set_meta, "settle_quiet_learned", f"{self._quiet.seconds:.1f}"
            )

    def _clock_for(self, target: Target) -> Clock:
        intent_at: str | None
        if target.intent_service_at is not None and target.intent_error is not None:
            intent_at, error = target.intent_service_at, target.intent_error
            error += self._settings.clock_margin
        else:
            # Stamped on this host's clock only (no Date seen, or an older version).
            intent_at, error = target.intent_at, LOCAL_INTENT_ERROR
        sent = self._sent_at.get(target.id)
        # Sent by this process: its moment on the service's clock, as known now.
        known = None if sent is None else self._service_clock.at(sent)
        if known is not None:
            intent_at, error = known.iso(), known.error + self._settings.clock_margin
        return Clock(
            intent_at=intent_at,
            intent_error=error,
            watched=self._watched(target.id),
            quiet=self._quiet.seconds,
        )

    def _watched(self, target_id: int) -> float:
        """Seconds this process has watched a reinstall that may be under way: since its
        intent when this process made it, else since it took it up (monotonic)."""
        since = self._watched_since.get(target_id)
        return 0.0 if since is None else self._clock() - since

    def _before(self, target: Target) -> Before:
        info = self._follow.get(target.id)
        return Before(
            launched_at=target.launched_at_before,
            status=target.status_before,
            updated=target.updated_before,
            first_launched_at=target.first_launched_at,
            seen_launched_at=None if info is None else info.seen_launched_at,
        )

    async def _settle(self, target: Target) -> None:
        """Decide an in-doubt target from the server; never resend while it may be running."""
        server = await self._read_server(target, "settled: the server no longer exists")
        if server is None:
            if self._unchanged(target):
                if self._watched(target.id) > self._doubt_limit:
                    await self._leave_in_doubt(target, "the server could not be read")
                else:
                    self._schedule(target)
            return
        info = self._follow[target.id]
        s = settle(
            server,
            self._before(target),
            self._clock_for(target),
            previous=info.previous,
            job_id=target.job_id,
        )
        info.previous = server
        if s.verdict is Verdict.FOLLOW:
            target = await self._change(target, S.RUNNING, f"settled: following, {s.reason}")
            # Where the service gave a job id, the job's own end decides, unless the
            # service has forgotten the job: asking it again would only come back here.
            info.by_server = target.job_id is None or info.job_unusable
            info.seen_rebuild = is_rebuilding(server)
            self._schedule(target)
        elif s.verdict is Verdict.WAIT:
            if self._watched(target.id) > self._doubt_limit:
                await self._leave_in_doubt(target, s.reason)
            else:
                self._schedule(target)
        elif s.verdict is Verdict.SUCCEEDED:
            await self._change(target, S.SUCCEEDED, f"settled: {s.reason}", finished_at=utc_now())
        elif s.verdict in (Verdict.FAILED, Verdict.UNVERIFIED):
            code, reason = (
                (
                    "Orchestrator.ServerError"
                    if s.verdict is Verdict.FAILED
                    else "Orchestrator.Unverified"
                ),
                s.reason,
            )
            job = await self._failed_job(target)
            if job is not None:
                # The job's own words say more than the server's ERROR.
                code, reason = job.error_code or code, job.fail_reason or reason
            await self._change(
                target,
                S.FAILED,
                f"settled: {s.reason}",
                error_code=code,
                fail_reason=reason,
                finished_at=utc_now(),
            )
        else:
            await self._not_accepted(target, s.reason)

    @property
    def _doubt_limit(self) -> float:
        """Seconds a doubt is watched at most in one run: a job's whole time, and the
        longest quiet period learning may reach. Past it the doubt is left as it is."""
        return self._settings.job_timeout + self._quiet.ceiling

    async def _leave_in_doubt(self, target: Target, why: str) -> None:
        """A doubt this run cannot settle: left in doubt, reported, never sent; a later
        run takes it up again (exit 3)."""
        note = (
            f"still in doubt after {self._watched(target.id):.0f} s watched ({why});"
            " not sent again: a later run settles it"
        )
        log.error("%s/%s %s", target.project_id, target.server_id, note)
        await self._writer.call(self._store.note, target.id, target.state, note)
        self._drop(target.id)

    async def _failed_job(self, target: Target) -> JobView | None:
        """The target's job, if it has one and the service says it FAILed (one try)."""
        if target.job_id is None:
            return None
        job_id = target.job_id
        try:
            job = await self._client.job(target.project_id, job_id, target.spec.region)
        except ApiError:
            return None
        return job if job.status == "FAIL" else None

    async def _not_accepted(self, target: Target, reason: str) -> None:
        """Settled "not accepted": send again, within a cap that holds across resumes."""
        count = target.not_accepted + 1
        if count > self._settings.max_resends:
            await self._change(
                target,
                S.FAILED,
                f"settled: not accepted, {reason}",
                not_accepted=count,
                error_code="Orchestrator.NotAccepted",
                fail_reason=(
                    f"sent {target.attempts} times and never acted on (settled from the server"
                    " each time); not sent again: check the server, then `orchestrator retry`"
                ),
                finished_at=utc_now(),
            )
            return
        target = await self._change(
            target, S.PENDING, f"settled: not accepted, {reason}", not_accepted=count
        )
        self._follow.pop(target.id, None)
        if self._stopping:
            return
        self._requeued.append(target)
        self._work.set()

    async def _follow_server(self, target: Target) -> None:
        info = self._follow[target.id]
        # The server is read before the timeout is judged: a run paused past
        # --job-timeout may find the rebuild ended meanwhile.
        server = await self._read_server(target, "the server disappeared while rebuilding")
        if server is None:
            if self._unchanged(target):
                if self._timed_out(target):
                    await self._rebuild_timed_out(target)
                else:
                    self._schedule(target)
            return
        info.last_status = server.status
        now = self._clock()
        if (
            info.previous is None
            or info.still_since is None
            or not same_reading(info.previous, server)
        ):
            info.previous, info.still_since = server, now
        verdict = follow(
            server,
            self._before(target),
            self._clock_for(target),
            seen_rebuild=info.seen_rebuild,
            still_for=now - info.still_since,
        )
        info.seen_rebuild = info.seen_rebuild or is_rebuilding(server)
        if verdict.verdict is Verdict.FOLLOW:
            if self._timed_out(target):
                await self._rebuild_timed_out(target)
            else:
                self._schedule(target)
        elif verdict.verdict is Verdict.FAILED:
            await self._change(
                target,
                S.FAILED,
                verdict.reason,
                error_code=(
                    "Orchestrator.ServerError"
                    if server.status == "ERROR"
                    else "Orchestrator.NotVerified"
                ),
                fail_reason=verdict.reason,
                finished_at=utc_now(),
            )
        else:
            await self._change(target, S.SUCCEEDED, verdict.reason, finished_at=utc_now())

    async def _rebuild_timed_out(self, target: Target) -> None:
        info = self._follow[target.id]
        await self._change(
            target,
            S.FAILED,
            "server still rebuilding after --job-timeout",
            error_code="Orchestrator.JobTimeout",
            fail_reason=(
                f"no end of the rebuild seen within {self._settings.job_timeout:.0f} s"
                f" (last status {info.last_status or 'unknown'})"
            ),
            finished_at=utc_now(),
        )

    async def _read_server(self, target: Target, gone: str) -> ServerView | None:
        """The server as it is now, or None: then it was failed (gone), the run was
        stopped (credentials), or the read failed and the caller tries again later."""
        try:
            server = await self._query(
                lambda: self._client.server(target.project_id, target.server_id, target.spec.region)
            )
            info = self._follow.get(target.id)
            if info is not None and info.seen_launched_at is None:
                info.seen_launched_at = server.launched_at
            return server
        except NotFound as exc:
            await self._change(
                target,
                S.FAILED,
                gone,
                error_code=exc.code or "Ecs.0114",
                fail_reason=str(exc),
                finished_at=utc_now(),
            )
        except AuthFailed as exc:
            self._refused(exc)
        except RunCannotGoOn as exc:
            self._cannot_go_on(exc)
        except ApiError as exc:
            self._follow[target.id].failures += 1
            log.info("%s/%s server read failed: %s", target.project_id, target.server_id, exc)
        return None

    def _unchanged(self, target: Target) -> bool:
        """True while the run goes on and nobody changed this target since it was read."""
        return not self._abort and self._active.get(target.id) is target

    # -- plumbing ---------------------------------------------------------------------

    async def _step(self, target: Target, work: Awaitable[None]) -> None:
        """One step of one target; then free its slot if it left the active states."""
        try:
            await work
        except StateError as exc:
            self._fail_run(f"state file: {exc}")
        except Exception as exc:
            # A bug must not leave a target holding its slot while the run waits
            # for it forever: stop the run; the state file stays consistent.
            log.exception("internal error on %s/%s", target.project_id, target.server_id)
            self._fail_run(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._release_if_done(target.id)

    async def _query(self, call: Callable[[], Awaitable[T]], *, patient: bool = False) -> T:
        """A read, retried briefly (a poll comes round again anyway) or, when `patient`,
        with the full budget a reinstall gets (nothing else will retry it this run)."""
        settings = self._settings.retry
        return await call_retrying(settings if patient else brief(settings), call)

    async def _change(self, target: Target, new: TargetState, detail: str, **fields: Any) -> Target:
        """Commit one state change (durable when this returns) and mirror it in memory."""
        old = target.state
        if new is S.SUCCEEDED:
            # Errors met on the way (a lost answer, a refused try) are history now.
            fields = {"error_code": None, "fail_reason": None, **fields}
        ok = await self._writer.change(Change(target.id, old, new, detail, fields))
        if not ok:
            raise StateError(
                f"target {target.project_id}/{target.server_id} was not {old.value}"
                " in the state file"
            )
        updated = evolve(target, state=new, **fields)
        if updated.id in self._active:
            self._active[updated.id] = updated
        if new in FINAL_STATES:
            self._rollout.record_final(updated)
            self._work.set()  # a wave, a project's cap or a budget may have moved
        self.counts[old] = self.counts.get(old, 0) - 1
        self.counts[new] = self.counts.get(new, 0) + 1
        log.info(
            "%s/%s %s -> %s: %s",
            target.project_id,
            target.server_id,
            old.value,
            new.value,
            detail,
            extra={
                "project_id": target.project_id,
                "server_id": target.server_id,
                "from_state": old.value,
                "to_state": new.value,
                "job_id": updated.job_id,
                "error_code": updated.error_code,
            },
        )
        if self._on_change is not None:
            self._on_change(self.counts)
        self._changed.set()
        return updated

    def _release_if_done(self, target_id: int) -> None:
        target = self._active.get(target_id)
        if target is not None and target.state not in ACTIVE_STATES:
            self._drop(target_id)

    def _drop(self, target_id: int) -> None:
        """The target no longer needs this run's attention: free its slot."""
        if self._active.pop(target_id, None) is not None:
            self._follow.pop(target_id, None)
            self._watched_since.pop(target_id, None)
            self._sent_at.pop(target_id, None)
            self._release_slot()
            self._changed.set()

    async def _take_slot(self) -> None:
        if self._slots.locked():
            self._slot_debt += 1  # more were mid-way than the limit allows now
        else:
            await self._slots.acquire()  # free: returns at once

    def _release_slot(self) -> None:
        if self._slot_debt:
            self._slot_debt -= 1
        else:
            self._slots.release()

    def _refused(self, exc: Exception) -> None:
        self._credentials_refused = True
        self._fail_run(f"credentials refused by the API: {exc}")

    def _cannot_go_on(self, exc: RunCannotGoOn) -> None:
        # Exit 2 when the fault is surely the configuration: a wrong URL, or an
        # endpoint that never answered this run. Otherwise 3: resume later.
        if isinstance(exc, WrongEndpoint | ClockSkewed) or not exc.reached:
            self._misconfigured = True
        self._fail_run(str(exc))

    def _fail_run(self, why: str) -> None:
        if self._abort is None:
            log.error("stopping the run: %s", why)
            self._abort = why
        self._changed.set()
        self._work.set()

    def _counter_deltas(self) -> dict[str, int]:
        current = {f"requests.{k}": v for k, v in self._client.requests.items()}
        current["throttled"] = self._client.throttled
        deltas = {k: v - self._sent_counters.get(k, 0) for k, v in current.items()}
        self._sent_counters = current
        return deltas
