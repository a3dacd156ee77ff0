"""Following: each target in flight is looked at when it is due (one heap, a few poll
workers), by what it has:

    a job id     the job is asked; its end decides (SUCCESS then verified from the
                 server: verify.py); a job that keeps failing to answer, or reports
                 another server, puts the target in doubt
    no job       the server itself is followed until the rebuild ends (settle.follow)
    in doubt     settled from the server (settling.py)

A timeout is judged only after the job (or the server) was asked once more: a run
paused past --job-timeout finds what ended meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from orchestrator.cloud.answers import JOB_STATUSES
from orchestrator.cloud.interface import JobView, ServerView
from orchestrator.engine.context import RunContext
from orchestrator.engine.decisions import Act, Call, decide
from orchestrator.engine.settle import (
    LOCAL_INTENT_ERROR,
    Settlement,
    Verdict,
    follow,
    is_rebuilding,
    parse_time,
    same_reading,
)
from orchestrator.engine.verify import NOT_VERIFIED, check_back
from orchestrator.errors import ApiError
from orchestrator.model import Target, TargetState
from orchestrator.store.records import utc_now

log = logging.getLogger("orchestrator.run")
S = TargetState
PENDING_PAYMENT = "PENDING_PAYMENT"
# Statuses of a job whose work has begun (for learning how long jobs take to start).
STARTED = frozenset({"RUNNING", "SUCCESS", "FAIL"})
# Ticks of its project's lists without any sign of the rebuild before a job is asked.
JOB_AFTER_TICKS = 5


class Following:
    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def poll_job(self, target: Target) -> None:
        run = self.run
        info = run.follow[target.id]
        assert target.job_id is not None
        job_id = target.job_id
        shown = run.reads.shown(target)
        info.watched = shown is not None
        if shown is not None and await self._as_shown(target, shown):
            return
        try:
            job = await run.query(
                lambda: run.client.job(target.project_id, job_id, target.spec.region)
            )
        except ApiError as exc:
            act = decide(Call.JOB, exc)
            if act is Act.FORGOTTEN:
                info.job_unusable = True  # it cannot decide anything now: the server will
                doubt = await run.change(
                    target, S.IN_DOUBT, f"the service no longer knows job {job_id}"
                )
                run.schedule(doubt, 0.0)
            elif act is not Act.AGAIN:
                run.stop_run(act, exc)
            else:
                info.failures += 1
                if run.timed_out(target):
                    await self._job_timed_out(target)
                elif info.failures >= run.settings.query_failures_to_settle:
                    doubt = await run.change(target, S.IN_DOUBT, f"job query kept failing: {exc}")
                    run.schedule(doubt, 0.0)
                else:
                    run.schedule(target)
            return
        info.failures = 0
        # The job is asked before the timeout is judged: a run that was paused (a
        # stopped process, a suspended VM) past --job-timeout finds a job that ended.
        if job.status not in ("SUCCESS", "FAIL") and run.timed_out(target):
            info.last_status = job.status
            await self._job_timed_out(target)
            return
        await self._on_job(target, job)

    async def _as_shown(self, target: Target, server: ServerView) -> bool:
        """A target with a job, as its project's lists show the server (no call): True
        when that decides this step, False when the job must be asked now. The server
        decides where it can: seen rebuilding, then back with the reinstall's evidence,
        is succeeded. The job is asked where the server cannot tell: ERROR (the job
        says why), back without the evidence, never seen rebuilding by the time the
        job's own poll is due, a timeout."""
        run = self.run
        info = run.follow[target.id]
        if run.timed_out(target) or server.status == "ERROR":
            return False
        if is_rebuilding(server):
            if not info.seen_rebuild:
                info.seen_rebuild = True
                await self._learn_quiet(target, None)
            if target.state is S.SUBMITTED:
                target = await run.change(
                    target, S.RUNNING, f"job {target.job_id}: the server is rebuilding"
                )
            run.schedule(target, run.reads.interval)
            return True
        if info.seen_rebuild:
            # Seen rebuilding, now back: its own evidence decides, or else its job.
            check = check_back(server, run.before(target), run.clock_for(target))
            if check.verdict is not Verdict.SUCCEEDED:
                return False
            await run.change(
                target,
                S.SUCCEEDED,
                f"job {target.job_id}: the server was seen rebuilding and is back: {check.reason}",
                finished_at=utc_now(),
            )
            return True
        # Nothing seen yet (the job waits in a queue, or was quicker than the lists):
        # the job is asked when its own poll is due.
        now = run.clock()
        if info.job_due is None:
            # Patient: a queued job shows nothing for a while, and the lists see the
            # rebuild start within a tick or two; a job is asked only if they do not.
            info.job_due = info.started + max(
                info.backoff.next(), JOB_AFTER_TICKS * run.reads.interval
            )
        if now < info.job_due:
            run.schedule(target, min(run.reads.interval, info.job_due - now))
            return True
        return False

    def _look_again(self, target: Target) -> None:
        """The next look at a job still going: by its project's lists at their pace where
        they vouch for the server, the job's own poll when due; else the job's poll."""
        run = self.run
        info = run.follow[target.id]
        if info.watched:
            info.job_due = run.clock() + info.backoff.next()
            run.schedule(target, run.reads.interval)
        else:
            run.schedule(target)

    async def _job_timed_out(self, target: Target) -> None:
        run = self.run
        info = run.follow[target.id]
        timeout = run.settings.job_timeout
        code, why = "Orchestrator.JobTimeout", "the server may still be rebuilding"
        if info.last_status == PENDING_PAYMENT:
            # Accepted, but held until the order of a yearly/monthly server is paid: it
            # may still run once paid, so it is never sent again by a run.
            code = "Orchestrator.PendingPayment"
            why = (
                "the job waits for the payment of this yearly/monthly server's order and"
                " may still run once it is paid: pay or cancel the order before any retry"
            )
        await run.change(
            target,
            S.FAILED,
            f"job {target.job_id} did not end within {timeout:.0f} s",
            error_code=code,
            fail_reason=(
                f"job did not end within --job-timeout {timeout:.0f} s"
                f" (last status {info.last_status or 'unknown'}); {why}"
            ),
            finished_at=utc_now(),
        )

    async def _on_job(self, target: Target, job: JobView) -> None:
        run = self.run
        info = run.follow[target.id]
        previous, info.last_status = info.last_status, job.status
        if job.status not in JOB_STATUSES:
            await self._unknown_status(target, job)
            return
        if job.status == PENDING_PAYMENT and previous != PENDING_PAYMENT:
            note = (
                f"job {job.job_id} PENDING_PAYMENT: the order of this yearly/monthly server"
                " awaits payment; the reinstall runs once it is paid. Followed until"
                " --job-timeout, never sent again"
            )
            log.warning("%s/%s %s", target.project_id, target.server_id, note)
            await run.note(target, note)
        if job.status in STARTED and not info.job_started:
            info.job_started = True
            await self._learn_quiet(target, job)
        times = {"job_begin_at": job.begin_time, "job_end_at": job.end_time}
        if job.status in ("SUCCESS", "FAIL"):
            self._observe_length(job)
        if job.server_id is not None and job.server_id != target.server_id:
            doubt = await run.change(
                target,
                S.IN_DOUBT,
                f"job {job.job_id} reports server {job.server_id[:40]!r}, not ours",
            )
            run.schedule(doubt, 0.0)
        elif job.status == "SUCCESS" and run.settings.verify:
            info.verifying = job
            await self.verify(target)
        elif job.status == "SUCCESS":
            await run.change(
                target, S.SUCCEEDED, f"job {job.job_id} SUCCESS", finished_at=utc_now(), **times
            )
        elif job.status == "FAIL" and target.not_accepted:
            await self._failed_after_a_doubt(target, job)
        elif job.status == "FAIL":
            await run.change(
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
                target = await run.change(target, S.RUNNING, f"job {job.job_id} {job.status}")
            self._look_again(target)

    async def _failed_after_a_doubt(self, target: Target, job: JobView) -> None:
        """A FAIL for a target sent again after a doubt was settled "not accepted": the
        earlier request may have been acted on after all (its job queued longer than
        the quiet period), and a cloud that accepts a reinstall while another runs may
        fail the later one for it, or both. The job cannot tell which, so the server
        decides (settled like any doubt, never sent again): reinstalled by the earlier
        attempt, in ERROR, or resting without a reinstall."""
        run = self.run
        run.follow[target.id].job_unusable = True
        why = (
            f"job {job.job_id} FAIL ({job.error_code or 'no code'}), after an earlier attempt"
            " settled as not accepted: that one may have run after all; settled from the"
            " server, never sent again"
        )
        log.warning("%s/%s %s", target.project_id, target.server_id, why)
        doubt = await run.change(
            target,
            S.IN_DOUBT,
            why,
            job_begin_at=job.begin_time,
            job_end_at=job.end_time,
        )
        run.schedule(doubt, 0.0)

    async def _unknown_status(self, target: Target, job: JobView) -> None:
        """A job status this version does not know: its meaning would be a guess, so the
        job decides nothing; reported, and the target settled from its server (the job id
        proves the reinstall was accepted: it is never sent again)."""
        run = self.run
        run.follow[target.id].job_unusable = True
        why = (
            f"job {job.job_id} reports status {job.status!r}, which this version does not"
            " know: settled from the server, never sent again"
        )
        log.warning("%s/%s %s", target.project_id, target.server_id, why)
        doubt = await run.change(
            target, S.IN_DOUBT, why, error_code="Orchestrator.UnknownJobStatus", fail_reason=why
        )
        run.schedule(doubt, 0.0)

    async def verify(self, target: Target) -> None:
        """After a job's SUCCESS: succeeded only once the server shows it is back
        (verify.py); read again while it settles, for --verify-within seconds (and at
        least twice), then failed with the last reason."""
        run = self.run
        info = run.follow[target.id]
        job = info.verifying
        assert job is not None
        times = {"job_begin_at": job.begin_time, "job_end_at": job.end_time}
        server = await self.read_server(
            target, f"job {job.job_id} SUCCESS, but the server no longer exists"
        )
        if server is None and not run.unchanged(target):
            return  # failed (gone), or the run stops
        info.verify_reads += 1
        now = run.clock()
        if info.verify_since is None:
            info.verify_since = now
        within = run.settings.verify_within
        elapsed = now - info.verify_since
        last = elapsed >= within and info.verify_reads >= 2
        if server is None:
            check = Settlement(Verdict.WAIT, "the server could not be read after SUCCESS")
        else:
            clock = run.clock_for(target)
            if parse_time(job.begin_time) is not None:
                # The job began after the request arrived, and its time is the service's
                # own: a relaunch after it is this job's, more sharply than the intent's.
                clock = replace(
                    clock, intent_at=job.begin_time, intent_error=run.settings.clock_margin
                )
            check = check_back(server, run.before(target), clock)
        if check.verdict is Verdict.SUCCEEDED:
            await run.change(
                target,
                S.SUCCEEDED,
                f"job {job.job_id} SUCCESS, verified: {check.reason}",
                finished_at=utc_now(),
                **times,
            )
        elif check.verdict is Verdict.FAILED or last:
            reads = (
                f" (not back within --verify-within {within:.0f} s: {info.verify_reads}"
                f" read(s) over {elapsed:.0f} s)"
                if check.verdict is Verdict.WAIT
                else ""
            )
            await run.change(
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
                target = await run.change(
                    target, S.RUNNING, f"job {job.job_id} SUCCESS; verifying the server"
                )
            delay = min(
                run.settings.first_poll * 2 ** (info.verify_reads - 1), run.settings.poll_cap
            )
            left = within - elapsed
            # The last read at the end of the budget, not a poll interval past it.
            run.schedule(target, min(delay, left) if left > 0 else delay)

    def _observe_length(self, job: JobView) -> None:
        """A job ended: its length, begin to end on the service's own clock, tunes later
        polling (never this host's clock against the service's)."""
        begun, ended = parse_time(job.begin_time), parse_time(job.end_time)
        if begun is not None and ended is not None:
            self.run.lengths.observe((ended - begun).total_seconds())

    async def _learn_quiet(self, target: Target, job: JobView | None) -> None:
        """A job seen started: if it took longer to start than the quiet period assumes,
        raise the period (within its ceiling). Measured on the service's clock alone, so
        a step of this host's clock teaches nothing: from the intent (stamped on that
        clock) or, for an intent stamped on this host's clock, from the job's own
        begin_time, to its start (its sub-job's begin_time, else the service's now)."""
        run = self.run
        # Seen by the lists rather than the job: the service's now is after the start.
        start = None if job is None else parse_time(job.started_time)
        if start is None:
            now = run.service_clock.now()
            start = None if now is None else now.at
        clock = run.clock_for(target)
        origin = None if clock.intent_error >= LOCAL_INTENT_ERROR else parse_time(clock.intent_at)
        if origin is not None:
            # The intent's earliest possible time: a delay is never learned short.
            origin -= timedelta(seconds=clock.intent_error)
        elif job is not None:
            origin = parse_time(job.begin_time)
        if start is None or origin is None:
            return
        took = (start - origin).total_seconds()
        if run.quiet.observe(took):
            log.warning(
                "a job took %.0f s to start; the settle quiet period is raised to %.0f s",
                took,
                run.quiet.seconds,
            )
            await run.writer.call(
                run.store.set_meta, "settle_quiet_learned", f"{run.quiet.seconds:.1f}"
            )

    async def follow_server(self, target: Target) -> None:
        """A target without a usable job: its server is followed until the rebuild ends."""
        run = self.run
        info = run.follow[target.id]
        # The server is read before the timeout is judged: a run paused past
        # --job-timeout may find the rebuild ended meanwhile.
        server = await self.read_server(target, "the server disappeared while rebuilding")
        if server is None:
            if run.unchanged(target):
                if run.timed_out(target):
                    await self._rebuild_timed_out(target)
                else:
                    run.schedule(target)
            return
        info.last_status = server.status
        now = run.clock()
        if (
            info.previous is None
            or info.still_since is None
            or not same_reading(info.previous, server)
        ):
            info.previous, info.still_since = server, now
        verdict = follow(
            server,
            run.before(target),
            run.clock_for(target),
            seen_rebuild=info.seen_rebuild,
            # Received (the audit trail says so), maybe still queued: only the job
            # timeout ends a wait that shows nothing yet.
            still_for=0.0 if info.received else now - info.still_since,
        )
        info.seen_rebuild = info.seen_rebuild or is_rebuilding(server)
        if verdict.verdict is Verdict.FOLLOW:
            if run.timed_out(target):
                await self._rebuild_timed_out(target)
            else:
                run.schedule(target)
        elif verdict.verdict is Verdict.FAILED:
            error = "ERROR" if server.status == "ERROR" else None
            await run.change(
                target,
                S.FAILED,
                verdict.reason,
                error_code="Orchestrator.ServerError" if error else NOT_VERIFIED,
                fail_reason=verdict.reason,
                finished_at=utc_now(),
            )
        else:
            await run.change(target, S.SUCCEEDED, verdict.reason, finished_at=utc_now())

    async def _rebuild_timed_out(self, target: Target) -> None:
        run = self.run
        info = run.follow[target.id]
        await run.change(
            target,
            S.FAILED,
            "server still rebuilding after --job-timeout",
            error_code="Orchestrator.JobTimeout",
            fail_reason=(
                f"no end of the rebuild seen within {run.settings.job_timeout:.0f} s"
                f" (last status {info.last_status or 'unknown'})"
            ),
            finished_at=utc_now(),
        )

    async def read_server(
        self, target: Target, gone: str, *, single: bool = False
    ) -> ServerView | None:
        """The server as it is now (its project's lists, where they vouch for it and not
        `single`), or None: then it was failed (gone), the run was stopped, or the read
        failed and the caller tries again later."""
        run = self.run
        try:
            server = await run.reads.server(target, single=single)
        except ApiError as exc:
            act = decide(Call.SERVER, exc)
            if act is Act.FAIL:
                await run.change(
                    target,
                    S.FAILED,
                    gone,
                    error_code=exc.code or "Ecs.0114",
                    fail_reason=str(exc),
                    finished_at=utc_now(),
                )
            elif act is Act.AGAIN:
                run.follow[target.id].failures += 1
                log.info("%s/%s server read failed: %s", target.project_id, target.server_id, exc)
            else:
                run.stop_run(act, exc)
            return None
        info = run.follow.get(target.id)
        if info is not None and info.seen_launched_at is None:
            info.seen_launched_at = server.launched_at
        if info is not None and info.seen_volume is None:
            info.seen_volume = server.system_volume
        return server
