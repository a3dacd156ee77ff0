"""The rollout gate: the runner's one object for "may this target go now?".

`decide()` (decide.py) is pure; this class owns what it is asked with: the
failure ledger, the per-wave counts, the finished jobs' durations, the
targets parked behind --project-max-in-flight, the operator's wave
confirmations. The runner calls four things:

    decide(target, active)   before sending: SEND, WAIT or HOLD (decide.Decision)
    still_allowed(target)    right before the request leaves: no trip since decide()
    keep(target, d)          a target that may not go: put back (True), parked or left
    wait(target, d, wake)    until it is worth asking again (asks the operator if need be)
    unpark(active)           a parked target whose project has room again, if any
    record_final(target)     when a target became final: counts, budgets, durations

Every decision that changes something (a wave starts, the window is not open,
a budget trips, the run is held) becomes a `RolloutRecord`, logged once and
handed to the state file by `take_records()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from orchestrator.durations import seconds_text
from orchestrator.engine.schedule import wait_event
from orchestrator.model import Target, TargetState
from orchestrator.rollout.budget import FailureLedger, Outcome, Trip
from orchestrator.rollout.decide import (
    Action,
    Decision,
    Reason,
    RolloutSettings,
    RolloutView,
    Scope,
    TargetRef,
    decide,
)
from orchestrator.rollout.duration import Estimate, expected_job_seconds
from orchestrator.rollout.failures import hint
from orchestrator.rollout.waves import WaveCounts
from orchestrator.store.records import RolloutRecord

__all__ = ["Confirm", "RolloutGate"]

log = logging.getLogger("orchestrator.rollout")

# Asks the operator whether wave `wave` (of `size` targets) may start.
Confirm = Callable[[int, int], Awaitable[bool]]

# A submitter waiting for a time looks again at least this often (a stop, a clock jump).
LONGEST_WAIT = 30.0
# One waiting for an event (a wave becoming final) looks again this often: the wake-up
# event is shared by every submitter, and one of them may clear it before another waits.
EVENT_WAIT = 1.0
# Nothing under way and nothing done for this long while a wave waits: it cannot finish.
STUCK_AFTER = 5.0
# The learned duration is re-sorted at most this often (many asks per second).
ESTIMATE_EVERY = 5.0
# It is the p90 of the latest this many: recent jobs say most about the next ones, and a
# million-target run neither keeps nor sorts a million durations.
DURATIONS_KEPT = 2000


class RolloutGate:
    def __init__(
        self,
        settings: RolloutSettings,
        ledger: FailureLedger,
        waves: Mapping[int, WaveCounts],
        *,
        durations: Iterable[float] = (),
        fallback_seconds: float,
        started_at: datetime,
        acked_through: int = 0,
        next_seq: int = 1,
        started_waves: Iterable[int] = (),
        confirm: Confirm | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.waves: dict[int, WaveCounts] = dict(waves)
        self._durations: deque[float] = deque(durations, maxlen=DURATIONS_KEPT)
        self._fallback = fallback_seconds
        self._estimate: Estimate | None = None
        self._estimated_at = -1e18
        self.started_at = started_at
        self._acked_through = acked_through
        self._seq = next_seq
        self._started_waves = set(started_waves)
        self._confirm = confirm
        self._confirmed = 0
        self._confirm_lock = asyncio.Lock()
        self._now = now
        self._parked: deque[Target] = deque()
        self._seen: set[tuple[object, ...]] = set()
        self._records: list[RolloutRecord] = []
        self.held: Decision | None = None  # the run-wide HOLD, once there is one
        self.held_projects: dict[str, Decision] = {}
        self.closes_at: datetime | None = None  # end of the opening of the latest send
        self._progress_at = now()  # the latest send or final target
        self._blocked: set[int] = set()  # asked and told "earlier wave" since then
        self.last_final_at: datetime | None = None

    @classmethod
    def unrestricted(cls) -> RolloutGate:
        """A gate that always says SEND: for runners built without rollout options."""
        return cls(
            RolloutSettings(),
            FailureLedger(0, {}, max_consecutive=None),
            {},
            fallback_seconds=0.0,
            started_at=datetime.now(UTC),
        )

    # -- asking ---------------------------------------------------------------------

    @property
    def expected(self) -> Estimate:
        clock = time.monotonic()
        if self._estimate is None or clock - self._estimated_at >= ESTIMATE_EVERY:
            self._estimate = expected_job_seconds(self._durations, self._fallback)
            self._estimated_at = clock
        return self._estimate

    def decide(self, target: Target, active: Mapping[int, Target]) -> Decision:
        """May `target` be sent now? Records and logs each new kind of answer once."""
        if self.held is not None:
            return self.held
        now = self._now()
        in_flight: Counter[str] = Counter()
        if self.settings.project_max_in_flight is not None:
            in_flight.update(t.project_id for t in active.values())
        view = RolloutView(
            started_at=self.started_at,
            expected_seconds=self.expected.seconds,
            ledger=self.ledger,
            waves=self.waves,
            project_in_flight=in_flight,
            confirmed_wave=self._confirmed,
        )
        wave = target.wave or 1
        decision = decide(now, TargetRef(target.project_id, wave), self.settings, view)
        if decision.reason is Reason.CANARY_FAILED and self.ledger.codes:
            # Name the likely cause, as the breaker does: the canary is the first to see it.
            likely = hint(self.ledger.codes.most_common(1)[0][0])
            if likely:
                decision = replace(decision, why=f"{decision.why}: {likely}")
        if decision.reason is Reason.WAVE_NOT_READY and self._stuck(now, target, active):
            decision = Decision(
                Action.HOLD,
                Reason.WAVE_NOT_READY,
                f"{decision.why}, and none of it is under way: its other targets were "
                "deferred in this run; resume later to finish it",
                scope=Scope.RUN,
            )
        if decision.send:
            self._progress(now)
            self.closes_at = self.settings.schedule.closes_at(now)
            if wave not in self._started_waves:
                self._started_waves.add(wave)
                total = self.waves[wave].total if wave in self.waves else 0
                self._note("wave_started", f"wave {wave} started ({total} targets)", wave=wave)
            return decision
        self._remember(decision, target, wave)
        return decision

    def still_allowed(self, target: Target) -> bool:
        """Right before a request leaves: no trip or hold came since `decide` said SEND
        (a target may wait for the pacer a while, and failures keep coming meanwhile)."""
        if self.held is not None or self.ledger.run_trip is not None:
            return False
        if self.ledger.project_trip(target.project_id) is not None:
            return False
        first = self.waves.get(1)
        return not (self.settings.canary and first is not None and first.failed > 0)

    def _progress(self, now: datetime) -> None:
        self._progress_at = now
        self._blocked.clear()

    def _stuck(self, now: datetime, target: Target, active: Mapping[int, Target]) -> bool:
        """An earlier wave is not final, yet nothing runs, waits for a cap, or happened
        for a while, and this target came round again (every queued one was tried in
        between): the wave's unfinished targets were deferred (server busy, retries
        spent) and are not sent again in this run, so later waves would wait forever."""
        again = target.id in self._blocked
        self._blocked.add(target.id)
        quiet = (now - self._progress_at).total_seconds()
        return again and not active and not self._parked and quiet >= STUCK_AFTER

    def _remember(self, decision: Decision, target: Target, wave: int) -> None:
        project = target.project_id if decision.scope is Scope.PROJECT else None
        in_wave = wave if decision.scope is Scope.WAVE else 0
        # `until` too: with --keep-going each night's "next opening" is its own record.
        key = (decision.action, decision.reason, project, in_wave, decision.until)
        if decision.action is Action.HOLD:
            if decision.scope is Scope.RUN:
                self.held = decision
            elif decision.scope is Scope.PROJECT:
                self.held_projects.setdefault(target.project_id, decision)
        if key in self._seen:
            return
        self._seen.add(key)
        if decision.reason is Reason.PROJECT_IN_FLIGHT:
            return  # routine: the cap doing its job, not a decision worth a record
        kind = f"{decision.action.value}:{decision.reason.value if decision.reason else '-'}"
        self._note(
            kind,
            decision.why,
            project_id=project,
            wave=wave if decision.scope is Scope.WAVE else None,
            level=logging.WARNING if decision.action is Action.HOLD else logging.INFO,
        )

    # -- what a submitter does with a target that may not go ---------------------------

    def keep(self, target: Target, decision: Decision) -> bool:
        """Keep `target` for later as `decision` says; True when the caller should put
        it back at the head of its queue (a run-wide or wave-wide wait or hold)."""
        if decision.action is Action.HOLD and decision.scope is Scope.PROJECT:
            return False  # stays pending for a later run; the feed moves on
        if decision.reason is Reason.PROJECT_IN_FLIGHT:
            self._parked.append(target)  # others go meanwhile; unparked when it has room
            return False
        return True

    async def wait(self, target: Target, decision: Decision, wake: asyncio.Event) -> None:
        """Until asking again is worth it: a time, an event (`wake`), or the operator's yes."""
        if decision.action is Action.HOLD or decision.reason is Reason.PROJECT_IN_FLIGHT:
            return
        if decision.reason is Reason.WAVE_NOT_CONFIRMED:
            await self._ask(target.wave or 1)
            return
        timeout = LONGEST_WAIT if decision.until is not None else EVENT_WAIT
        if decision.until is not None:
            timeout = min(timeout, max((decision.until - self._now()).total_seconds(), 0.0))
        with contextlib.suppress(TimeoutError):
            await wait_event(wake, timeout)

    async def _ask(self, wave: int) -> None:
        async with self._confirm_lock:
            if self._confirmed >= wave or self.held is not None:
                return
            size = self.waves[wave].total if wave in self.waves else 0
            if self._confirm is not None and await self._confirm(wave, size):
                self._confirmed = wave
                self._note("wave_confirmed", f"wave {wave} confirmed by the operator", wave=wave)
                return
            self.held = Decision(
                Action.HOLD,
                Reason.WAVE_NOT_CONFIRMED,
                f"wave {wave} was not confirmed (--confirm-waves); the rest stays pending",
                scope=Scope.RUN,
            )
            self._note("hold:wave_not_confirmed", self.held.why, wave=wave, level=logging.WARNING)

    @property
    def parked(self) -> int:
        """Targets waiting for their project's --project-max-in-flight: the run is not done."""
        return len(self._parked)

    def unpark(self, active: Mapping[int, Target]) -> Target | None:
        """A parked target whose project is below --project-max-in-flight now."""
        cap = self.settings.project_max_in_flight
        if not self._parked or cap is None:
            return None
        in_flight = Counter(t.project_id for t in active.values())
        for i, target in enumerate(self._parked):
            if in_flight[target.project_id] < cap:
                del self._parked[i]
                return target
        return None

    # -- what happened ------------------------------------------------------------------

    def record_final(self, target: Target) -> None:
        """A target became final: wave counts, the failure ledger, the learned duration."""
        now = self._now()
        self.last_final_at = now
        self._progress(now)
        seq, self._seq = self._seq, self._seq + 1
        wave = target.wave or 1
        counted = seq > self._acked_through
        failed = target.state is TargetState.FAILED
        counts = self.waves.get(wave)
        if counts is not None:
            self.waves[wave] = replace(
                counts,
                final=counts.final + 1,
                failed=counts.failed + (1 if failed and counted else 0),
                last_final_at=now,
            )
        if target.state is TargetState.SUCCEEDED:
            took = _seconds(target.intent_at, now)
            if took is not None:
                self._durations.append(took)
        if target.state is TargetState.SKIPPED:
            return
        trips = self.ledger.record(
            Outcome(seq, target.id, target.project_id, not failed, target.error_code)
        )
        for trip in trips:
            self._tripped(trip)

    def _tripped(self, trip: Trip) -> None:
        self._note(f"trip:{trip.kind.value}", trip.message, project_id=trip.project_id,
                   level=logging.WARNING)  # fmt: skip

    def finish(self, left_pending: int) -> None:
        """The run ends: say how many were left and why, and by how much it overran."""
        if (
            self.closes_at is not None
            and self.last_final_at is not None
            and self.last_final_at > self.closes_at
        ):
            over = (self.last_final_at - self.closes_at).total_seconds()
            self._note(
                "overran",
                f"accepted jobs ran {seconds_text(over)} past the close of the window at "
                f"{self.closes_at.isoformat()}",
            )
        if left_pending:
            why = self.why_held() or "not sent in this run"
            self._note("left_pending", f"{left_pending} target(s) left pending: {why}")

    def why_held(self) -> str | None:
        """Why sending stopped (the run-wide reason first, then each held project)."""
        reasons = [self.held.why] if self.held is not None else []
        reasons += [d.why for d in self.held_projects.values()]
        return "; ".join(reasons) or None

    def note_ack(self, failures: int, trips: Iterable[Trip]) -> None:
        tripped = "; ".join(t.message for t in trips) or "no budget had tripped"
        self._note(
            "ack_failures",
            f"--ack-failures: {failures} earlier failure(s) stop counting ({tripped})",
        )

    def _note(
        self,
        kind: str,
        detail: str,
        *,
        project_id: str | None = None,
        wave: int | None = None,
        level: int = logging.INFO,
    ) -> None:
        log.log(level, "rollout: %s", detail, extra={"rollout": kind, "project_id": project_id})
        self._records.append(RolloutRecord(kind, detail, project_id=project_id, wave=wave))

    def take_records(self) -> list[RolloutRecord]:
        """The decisions recorded since the last call, for the state file."""
        records, self._records = self._records, []
        return records

    def status(self) -> str:
        """One line for the live view: the waves' progress and what holds the run."""
        parts = []
        if len(self.waves) > 1:
            current = next((w for w, c in sorted(self.waves.items()) if not c.done), None)
            if current is not None:
                c = self.waves[current]
                parts.append(f"wave {current}/{len(self.waves)}: {c.final}/{c.total} final")
        why = self.why_held()
        if why:
            parts.append(why)
        return "; ".join(parts)


def _seconds(start: str | None, end: datetime) -> float | None:
    if not start:
        return None
    try:
        begun = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - begun).total_seconds()
