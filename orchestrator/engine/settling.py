"""Settling doubts: a reinstall that may or may not have been acted on is decided from
its server (settle.py's rules), never resent while it may be under way:

    FOLLOW         maybe accepted: followed (by its job where the service gave one)
    SUCCEEDED      relaunched since the intent
    FAILED         the server is in ERROR (the job's own words, where it has them)
    UNVERIFIED     the evidence cannot tell: failed, never resent
    NOT_ACCEPTED   quiet for the whole period watched here, two agreeing readings:
                   sent again, within a cap that holds across resumes; with
                   --audit-trail cts, only once the cloud's audit trail, read after
                   its delivery delay, records no reinstall received since the intent
    WAIT           read again; a doubt watched past its limit is left in doubt,
                   reported, for a later run
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN
from orchestrator.cloud.interface import JobView
from orchestrator.engine.context import RunContext
from orchestrator.engine.following import Following
from orchestrator.engine.settle import Verdict, is_rebuilding, parse_time, settle
from orchestrator.errors import ApiError
from orchestrator.model import Target, TargetState
from orchestrator.store.records import utc_now

log = logging.getLogger("orchestrator.run")
S = TargetState


class Settling:
    def __init__(self, run: RunContext, following: Following) -> None:
        self.run = run
        self._following = following

    @property
    def limit(self) -> float:
        """Seconds a doubt is watched at most in one run: a job's whole time, and the
        longest quiet period learning may reach. Past it the doubt is left as it is."""
        return self.run.settings.job_timeout + self.run.quiet.ceiling

    async def settle(self, target: Target) -> None:
        """Decide an in-doubt target from the server; never resend while it may be running."""
        run = self.run
        # Singly: a reading that may send a reinstall again is the server's own answer.
        server = await self._following.read_server(
            target, "settled: the server no longer exists", single=True
        )
        if server is None:
            if run.unchanged(target):
                if run.watched(target.id) > self.limit:
                    await self._leave_in_doubt(target, "the server could not be read")
                else:
                    run.schedule(target)
            return
        info = run.follow[target.id]
        s = settle(
            server,
            run.before(target),
            run.clock_for(target),
            previous=info.previous,
            job_id=target.job_id,
        )
        info.previous = server
        if s.verdict is Verdict.FOLLOW:
            target = await run.change(target, S.RUNNING, f"settled: following, {s.reason}")
            # Where the service gave a job id, the job's own end decides, unless the
            # service has forgotten the job: asking it again would only come back here.
            info.by_server = target.job_id is None or info.job_unusable
            info.seen_rebuild = is_rebuilding(server)
            run.schedule(target)
        elif s.verdict is Verdict.WAIT:
            if run.watched(target.id) > self.limit:
                await self._leave_in_doubt(target, s.reason)
            else:
                run.schedule(target)
        elif s.verdict is Verdict.SUCCEEDED:
            await run.change(target, S.SUCCEEDED, f"settled: {s.reason}", finished_at=utc_now())
        elif s.verdict in (Verdict.FAILED, Verdict.UNVERIFIED):
            failed = s.verdict is Verdict.FAILED
            code = "Orchestrator.ServerError" if failed else "Orchestrator.Unverified"
            reason = s.reason
            job = await self._failed_job(target)
            if job is not None:
                # The job's own words say more than the server's ERROR.
                code, reason = job.error_code or code, job.fail_reason or reason
            await run.change(
                target,
                S.FAILED,
                f"settled: {s.reason}",
                error_code=code,
                fail_reason=reason,
                finished_at=utc_now(),
            )
        elif run.settings.audit_trail == "cts":
            resend = await self._audit_trail(target, s.reason)
            if resend is not None:
                await self._not_accepted(target, resend)
        else:
            await self._not_accepted(target, s.reason)

    async def _audit_trail(self, target: Target, reason: str) -> str | None:
        """Before a resend, the cloud's audit trail (CTS) as evidence independent of the
        server: a `reinstallOs` record answered 2xx since the intent means the request
        was received (a job may wait in INIT for longer than the quiet period): the
        server is followed, never sent again. No record is evidence of absence only
        once the trail's delivery delay (--audit-trail-delay) has passed since the
        intent, watched here; before that, and when the trail cannot be read, the doubt
        is read again. Returns the reason to send again, or None."""
        run = self.run
        clock = run.clock_for(target)
        intent = parse_time(clock.intent_at)
        if intent is None:
            since = datetime.now(UTC) - timedelta(days=1)  # the intent unplaced: a wide look
        else:
            since = intent - timedelta(seconds=clock.intent_error + SERVICE_CLOCKS_AGREE_WITHIN)
        try:
            traces = await run.query(
                lambda: run.client.traces(
                    target.project_id, target.server_id, since, target.spec.region
                )
            )
        except ApiError as exc:
            why = f"the audit trail could not be read ({exc}); not sent again"
            if run.watched(target.id) > self.limit:
                await self._leave_in_doubt(target, why)
            else:
                log.warning("%s/%s %s", target.project_id, target.server_id, why)
                run.schedule(target)
            return None
        received = [
            t
            for t in traces
            if t.name.lower().startswith("reinstallos") and (t.code or "").startswith("2")
        ]
        if received:
            first = received[-1]  # newest first: the earliest since the intent
            when = "?" if first.time_ms is None else _utc(first.time_ms)
            target = await run.change(
                target,
                S.RUNNING,
                f"settled: following, the audit trail (CTS) records {first.name} at {when}"
                f" (HTTP {first.code}) since the intent: the reinstall was received; not sent"
                f" again ({reason})",
            )
            info = run.follow[target.id]
            info.by_server = info.received = True
            run.schedule(target)
            return None
        delay, watched = run.settings.audit_trail_delay, run.watched(target.id)
        if watched < delay:
            # Absent so soon after the intent proves nothing: CTS delivers later.
            run.schedule(target, delay - watched)
            return None
        return (
            f"{reason}; the audit trail (CTS) records no reinstall received since the intent,"
            f" read {watched:.0f} s after it (delivery delay {delay:.0f} s)"
        )

    async def _leave_in_doubt(self, target: Target, why: str) -> None:
        """A doubt this run cannot settle: left in doubt, reported, never sent; a later
        run takes it up again (exit 3)."""
        run = self.run
        note = (
            f"still in doubt after {run.watched(target.id):.0f} s watched ({why});"
            " not sent again: a later run settles it"
        )
        log.error("%s/%s %s", target.project_id, target.server_id, note)
        await run.note(target, note)
        run.drop(target.id)

    async def _failed_job(self, target: Target) -> JobView | None:
        """The target's job, if it has one and the service says it FAILed (one try)."""
        if target.job_id is None:
            return None
        try:
            job = await self.run.client.job(target.project_id, target.job_id, target.spec.region)
        except ApiError:
            return None
        return job if job.status == "FAIL" else None

    async def _not_accepted(self, target: Target, reason: str) -> None:
        """Settled "not accepted": send again, within a cap that holds across resumes."""
        run = self.run
        count = target.not_accepted + 1
        if count > run.settings.max_resends:
            await run.change(
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
        target = await run.change(
            target, S.PENDING, f"settled: not accepted, {reason}", not_accepted=count
        )
        run.follow.pop(target.id, None)
        if run.stopping:
            return
        run.requeued.append(target)
        run.work.set()


def _utc(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")
