"""Submitting: pending targets in inventory order, each within --max-in-flight and
only where the rollout gate allows it, read before sending, then

    grant    the pacer's token for this endpoint (`Cloud.reinstall_slot`)
    intent   pending -> submitting, durable, stamped on the service's clock
    slot     the send slot (`Cloud.reinstall_spacing`); a stop interrupts it
    check    a stop, a trip or a clock too far off: back to pending, unsent
    send     the request; its job id logged, then committed (never lost: `Answers`)

A server busy with an operation not of this run is read again later in the same
run (`Busy`), then deferred; what the service refuses for now is deferred too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from orchestrator.cloud.interface import ServerView
from orchestrator.cloud.retry_policy import call_retrying
from orchestrator.durations import seconds_text
from orchestrator.engine.context import RunContext
from orchestrator.engine.decisions import Act, Call, decide
from orchestrator.engine.outcome import Answer
from orchestrator.engine.settle import is_rebuilding, parse_time
from orchestrator.errors import ApiError, ClockSkewed, CommandUnderWay, StateError
from orchestrator.model import Target, TargetState
from orchestrator.store.records import utc_now

log = logging.getLogger("orchestrator.run")
S = TargetState
FEED_PAGE = 1000
# Seconds a job id the store refused is tried again at the end of a run, at least.
RECORD_PATIENCE = 5.0


class Stopped(Exception):
    """A stop was asked for before the request went out."""


class Submitting:
    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.busy = Busy(self)
        self.answers: dict[int, Answer] = {}  # job ids the store could not record (yet)
        # Intents being committed, or committed and waiting for their send slot: a stop
        # puts each back to pending, and the run waits for that to be done.
        self.unsent: set[int] = set()
        self._feed: deque[Target] = deque()
        self._feed_after = 0
        self.feed_done = False
        self._feed_lock = asyncio.Lock()
        self._clock_probed = False  # a server was read for the service's clock
        self._clock_lock = asyncio.Lock()
        self._sending_marked = False  # the main state file says sending began
        self._mark_lock = asyncio.Lock()

    def idle(self) -> bool:
        """Nothing left to send in this run (the gate aside)."""
        run = self.run
        return self.feed_done and not self._feed and not run.requeued and not self.busy.waiting

    async def worker(self) -> None:
        """One submit worker: takes a slot, then the next target the gate allows."""
        run = self.run
        while not run.stopping and not run.abort:
            await run.slots.acquire()
            target = None
            # Cleared before looking, so a target requeued while we look (the feed
            # read awaits) sets it again and the wait below returns at once.
            run.work.clear()
            if not run.stopping and not run.abort:
                try:
                    target = await self._next_pending()
                except StateError as exc:
                    run.release_slot()
                    run.fail_run(f"state file: {exc}")
                    return
            if target is None:
                run.release_slot()
                if run.stopping or run.abort:
                    return
                await run.work.wait()  # until something goes back to pending
                continue
            decision = run.rollout.decide(target, run.active)
            if not decision.send:
                run.release_slot()
                if run.rollout.keep(target, decision):
                    run.requeued.append(target)  # before the rest of the feed
                run.changed.set()
                if run.rollout.held is not None:
                    return  # nothing more is sent in this run
                await run.rollout.wait(target, decision, run.work)
                continue
            run.active[target.id] = target
            try:
                await run.step(target, self._submit(target))
            finally:
                self.unsent.discard(target.id)

    async def _next_pending(self) -> Target | None:
        run = self.run
        parked = run.rollout.unpark(run.active)
        if parked is not None:
            return parked
        if run.requeued:
            return run.requeued.popleft()
        if not self._feed and not self.feed_done:
            async with self._feed_lock:
                if not self._feed and not self.feed_done:
                    page = await run.writer.call(
                        run.store.pending_after, self._feed_after, FEED_PAGE, run.settings.shard
                    )
                    if page:
                        self._feed_after = page[-1].id
                        self._feed.extend(
                            t for t in page if t.id not in run.active and t.id not in run.not_refed
                        )
                    else:
                        self.feed_done = True
                        run.changed.set()
        if run.requeued:  # requeued while the page was being read
            return run.requeued.popleft()
        return self._feed.popleft() if self._feed else None

    async def _submit(self, target: Target) -> None:
        run = self.run
        spec = target.spec
        before: ServerView | None = None
        if run.settings.preflight:
            before = await self._preflight(target)
            if before is None:
                return
        elif not run.service_clock.known:
            # The intent is stamped on the service's clock: learn it first.
            await self._learn_service_clock(target)

        committed: list[Target] = []
        sent = 0

        def last_check() -> None:
            # Before the intent and again right before the request leaves (after its
            # send slot): a stop, a trip or a clock gone wrong meanwhile stops it, unsent.
            if run.stopping or run.abort or not run.rollout.still_allowed(target):
                raise Stopped
            self._check_skew()

        async def send() -> str:
            nonlocal sent
            if run.stopping or run.abort:
                # Before queueing for a token: a stop fails only those queued already.
                raise Stopped
            await run.client.reinstall_slot(spec.region)
            last_check()
            if not committed:
                self.unsent.add(target.id)
                committed.append(await self._commit_intent(target, before))
                if run.stopping or run.abort:  # arrived while the intent was committed
                    raise Stopped
            await run.client.reinstall_spacing(spec.region)
            last_check()
            self.unsent.discard(target.id)  # it leaves now
            # The quiet period counts from here: the service cannot act before.
            run.watched_since[target.id] = run.sent_at[target.id] = run.clock()
            sent += 1
            return await run.client.reinstall(spec)

        try:
            job_id = await call_retrying(run.settings.retry, send)
        except Stopped:
            if committed:
                why = (
                    "stopped before sending again; earlier tries were refused"
                    if sent
                    else "stopped before the request left; not sent"
                )
                await self._unsend(committed[0], why, sent=sent > 0)
            return
        except ApiError as exc:
            await self._refused(target, committed, exc)
            return
        await self._answered(committed[0], job_id)

    async def _commit_intent(self, target: Target, before: ServerView | None) -> Target:
        """pending -> submitting, durable before anything leaves: with what was read of
        the server before it, and the moment on both clocks."""
        await self._mark_sending()
        launched = before.launched_at if before else None
        volume = before.system_volume if before else None
        stamp = self.run.service_clock.now()
        return await self.run.change(
            target,
            S.SUBMITTING,
            "intent to send a reinstall",
            attempts=target.attempts + 1,
            intent_at=utc_now(),
            intent_service_at=None if stamp is None else stamp.iso(),
            intent_error=None if stamp is None else round(stamp.error, 3),
            launched_at_before=launched,
            first_launched_at=target.first_launched_at or launched,
            volume_before=volume,
            # Only a first attempt records it: a target attempted by an older version
            # has none, and a volume read now may already be that attempt's new disk.
            first_volume=target.first_volume if target.attempts else volume,
            status_before=before.status if before else None,
            updated_before=before.updated if before else None,
            job_id=None,
            error_code=None,
            fail_reason=None,
        )

    async def _refused(self, target: Target, committed: list[Target], exc: ApiError) -> None:
        """The reinstall ended in an error, after its retries: decisions.py says what
        it means."""
        run = self.run
        act = decide(Call.REINSTALL, exc)
        if not committed:  # refused before the intent (a clock too far off)
            run.drop(target.id)
            run.stop_run(act, exc)
            return
        intent = committed[0]
        if act in (Act.CREDENTIALS, Act.STOP):
            # Refused before the service acted (no connection, a wrong URL, credentials).
            what = "credentials refused, nothing done" if act is Act.CREDENTIALS else "not acted on"
            await self._unsend(intent, f"{what}: {exc}")
            run.stop_run(act, exc)
        elif act is Act.DEFER:
            await run.change(
                intent,
                S.PENDING,
                f"deferred: still refused after retries: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
            )
            run.deferred += 1
            run.not_refed.add(target.id)
        elif act is Act.FAIL:
            await run.change(
                intent,
                S.FAILED,
                f"rejected: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
                finished_at=utc_now(),
            )
        else:  # DOUBT: sent, and no trustworthy answer (or the server holds a command)
            what = "refused as busy" if isinstance(exc, CommandUnderWay) else "outcome unknown"
            doubt = await run.change(
                intent,
                S.IN_DOUBT,
                f"{what}: {exc}",
                error_code=exc.code,
                fail_reason=str(exc),
            )
            run.schedule(doubt, run.settings.settle_delay)

    async def _answered(self, intent: Target, job_id: str) -> None:
        """The service returned a job id: logged first (if the commit fails, the log
        still has it), then committed; never lost (`_answer_not_recorded`)."""
        run = self.run
        fields = {"project_id": intent.project_id, "server_id": intent.server_id}
        log.info(
            "%s/%s accepted as job %s",
            intent.project_id,
            intent.server_id,
            job_id,
            extra={**fields, "job_id": job_id},
        )
        submitted_at = utc_now()
        try:
            target = await run.change(
                intent,
                S.SUBMITTED,
                f"accepted as job {job_id}",
                job_id=job_id,
                submitted_at=submitted_at,
            )
        except StateError as exc:
            self._answer_not_recorded(intent, job_id, submitted_at, exc)
            return
        run.schedule(target)  # the first wait: --first-poll, or what was learned

    async def _preflight(self, target: Target) -> ServerView | None:
        """Read the server before sending; None when the target was settled, deferred
        or the run stopped instead."""
        run = self.run
        try:
            # A target sent before is read singly: whether that attempt shows decides
            # whether it is sent again.
            server = await run.reads.server(target, single=bool(target.attempts), patient=True)
        except ApiError as exc:
            act = decide(Call.PREFLIGHT, exc)
            if act is Act.FAIL:
                await run.change(
                    target,
                    S.FAILED,
                    "server does not exist; nothing sent",
                    error_code=exc.code or "Ecs.0114",
                    fail_reason=str(exc),
                    finished_at=utc_now(),
                )
            elif act is Act.DEFER:
                await self.defer(target, f"could not read the server before sending: {exc}")
            else:
                run.drop(target.id)
                run.stop_run(act, exc)
            return None
        shows = _earlier_attempt_shows(target, server) if target.attempts else None
        if shows is not None:
            # Ours, most likely: an earlier attempt (this run or before a stop) was
            # acted on after all. Settle it; never send on top of it.
            target = await run.change(
                target,
                S.IN_DOUBT,
                f"an earlier attempt shows on the server ({shows}); settling, not sending",
            )
            run.schedule(target, 0.0)
            return None
        since = run.settings.skip_reinstalled_since
        launched = parse_time(server.launched_at)
        if since is not None and launched is not None and launched > since:
            await run.change(
                target,
                S.SKIPPED,
                f"skipped: launched_at {server.launched_at} is after "
                f"--skip-reinstalled-since {since.isoformat()}",
                finished_at=utc_now(),
            )
            return None
        if is_rebuilding(server) or server.task_state:
            await self.busy.found(
                target,
                f"server is busy (status {server.status}, task state {server.task_state}),"
                " not by this run; not sent",
            )
            return None
        return server

    async def _learn_service_clock(self, target: Target) -> None:
        """One read of a server, once a run, for the Date of its answer (without
        preflight, nothing else would be read before the first reinstall). Should it
        fail, the clock is learned from the next answers, reinstalls' included."""
        run = self.run
        async with self._clock_lock:
            if self._clock_probed:
                return
            self._clock_probed = True
            spec = target.spec
            with contextlib.suppress(ApiError):
                await run.query(
                    lambda: run.client.server(spec.project_id, spec.server_id, spec.region),
                    patient=True,
                )
            if not run.service_clock.known:
                log.warning(
                    "the service's answers carry no Date header: intents are stamped without"
                    " the service's time, and a lost answer whose server has no earlier"
                    " reading is reported as unverified, never sent again"
                )

    def _check_skew(self) -> None:
        skew = self.run.service_clock.skew()
        limit = self.run.settings.max_clock_skew
        if skew is not None and abs(skew) > limit:
            ahead = "ahead of" if skew > 0 else "behind"
            raise ClockSkewed(
                f"this host's clock is {abs(skew):.0f} s {ahead} the service's (the Date"
                f" header of its answers); nothing is sent while they differ by more than"
                f" --max-clock-skew {limit:g} s: set this host's clock right (NTP), then"
                " resume",
                reached=True,
            )

    async def _mark_sending(self) -> None:
        """Before the first intent of this invocation: the state file records, in its
        main file, that sending begins (and when, on the service's clock)."""
        if self._sending_marked:
            return
        async with self._mark_lock:
            if self._sending_marked:
                return
            stamp = self.run.service_clock.now()
            await self.run.writer.call(
                self.run.store.mark_sending,
                None if stamp is None else stamp.iso(),
                None if stamp is None else stamp.error,
            )
            self._sending_marked = True

    async def _unsend(self, target: Target, why: str, *, sent: bool = True) -> None:
        """An intent refused before the service acted on it: back to pending. When
        no request left at all, the attempt is not counted either."""
        attempts = target.attempts if sent else max(target.attempts - 1, 0)
        await self.run.change(target, S.PENDING, why, attempts=attempts)

    async def defer(self, target: Target, why: str) -> None:
        """Leave a target pending for a later run, and say why in its events."""
        run = self.run
        run.deferred += 1
        log.warning("%s/%s deferred: %s", target.project_id, target.server_id, why)
        await run.note(target, f"deferred: {why}")
        run.not_refed.add(target.id)
        run.drop(target.id)

    # -- answers that could not be recorded ---------------------------------------------

    def _answer_not_recorded(
        self, target: Target, job_id: str, submitted_at: str, exc: StateError
    ) -> None:
        """The service returned a job id and the state store failed to record it. The
        id must not be lost: a resume that did not know it would settle the target from
        the server alone, and a job still queued there shows nothing. It is kept here,
        recorded again before the run ends, and listed at the end if that fails too."""
        self.answers[target.id] = Answer(target, job_id, submitted_at)
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
        self.run.fail_run(f"state file: {exc}")

    async def record_answers(self) -> None:
        """Record the job ids the store refused, trying again for --drain-timeout (at
        least RECORD_PATIENCE) and asking each job meanwhile, so that what stays
        unrecorded is listed with its latest status."""
        run = self.run
        deadline = run.clock() + max(run.settings.drain_timeout, RECORD_PATIENCE)
        pause = 0.5
        while True:
            for target_id, answer in list(self.answers.items()):
                try:
                    await run.change(
                        answer.target,
                        S.SUBMITTED,
                        f"accepted as job {answer.job_id} (recorded late)",
                        job_id=answer.job_id,
                        submitted_at=answer.submitted_at,
                    )
                except StateError:
                    continue
                del self.answers[target_id]
                log.warning("%s recorded after all", answer.describe())
            if not self.answers or run.clock() >= deadline:
                return
            for answer in self.answers.values():
                t = answer.target
                with contextlib.suppress(ApiError):
                    job = await run.client.job(t.project_id, answer.job_id, t.spec.region)
                    answer.status = job.status
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


class Busy:
    """Servers busy with an operation not of this run: read again later in this run (a
    bounded number of times, further apart each time), then deferred. They hold no
    slot while they wait."""

    def __init__(self, submitting: Submitting) -> None:
        self._submitting = submitting
        self.run = submitting.run
        self.waiting: dict[int, tuple[Target, float]] = {}  # id -> (target, when due)
        self._checks: dict[int, int] = {}

    async def found(self, target: Target, why: str) -> None:
        run = self.run
        checks = self._checks.get(target.id, 0)
        if checks >= run.settings.busy_rechecks or run.stopping:
            after = f"; still busy after {checks} re-check(s)" if checks else ""
            await self._submitting.defer(target, why + after)
            return
        self._checks[target.id] = checks + 1
        delay = run.settings.busy_recheck_delay * 2**checks
        note = f"{why}; read again in {seconds_text(delay)} (re-check {checks + 1} of "
        note += f"{run.settings.busy_rechecks})"
        log.info("%s/%s %s", target.project_id, target.server_id, note)
        await run.note(target, note)
        run.not_refed.add(target.id)
        run.drop(target.id)
        self.waiting[target.id] = (target, run.clock() + delay)
        run.due.push(target.id, delay)

    def due(self, target_id: int) -> None:
        """A re-check is due: back in line for a submit worker, which reads the server
        again before sending anything."""
        run = self.run
        target, due = self.waiting[target_id]
        if run.clock() < due or run.stopping or run.abort:
            return  # an older heap entry, or the run stops: reported as deferred
        del self.waiting[target_id]
        run.requeued.append(target)
        run.work.set()

    async def give_up(self) -> None:
        """The run ends (stopped) with servers still waiting: defer them, saying why."""
        for target_id, (target, _) in list(self.waiting.items()):
            del self.waiting[target_id]
            if self.run.abort:
                self.run.deferred += 1  # the state file may be what failed: no note
                continue
            await self._submitting.defer(
                target, "server was busy, not by this run; the run stopped first"
            )


def _earlier_attempt_shows(target: Target, server: ServerView) -> str | None:
    """What shows that an earlier attempt may have run, or None: a task state, or
    launched_at or the system disk's volume other than before the first attempt.
    Either piece of evidence is enough: never send on top of a possible reinstall."""
    if is_rebuilding(server) or server.task_state:
        return f"status {server.status}, task state {server.task_state}"
    first = target.first_launched_at or target.launched_at_before
    if first is not None and server.launched_at != first:
        return f"launched_at {first} -> {server.launched_at}"
    volume = target.first_volume or target.volume_before
    if volume is not None and server.system_volume != volume:
        now = server.system_volume or "not shown"
        return f"system disk's volume {volume} -> {now}"
    return None
