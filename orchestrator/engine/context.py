"""What the parts of a run share: the targets in flight, their slots, the state
writes, the run's clocks and the ways it stops.

Every state change goes through `change` (durable when it returns, checked against
the transition table and the state the run believed the target was in); every
decision about a failed call through `orchestrator.engine.decisions`; every
duration that decides safety is read on `clock` (monotonic). Submitting
(`submitting.py`) and following (`following.py`) work on this; the loop
(`runner.py`) owns it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.cloud.interface import Cloud, JobView, ServerView
from orchestrator.cloud.retry_policy import brief, call_retrying
from orchestrator.engine.decisions import Act
from orchestrator.engine.reads import ServerReads
from orchestrator.engine.schedule import Backoff, DueQueue, JobLengths
from orchestrator.engine.settings import RunSettings
from orchestrator.engine.settle import LOCAL_INTENT_ERROR, Before, Clock, QuietPeriod
from orchestrator.errors import ClockSkewed, RunCannotGoOn, StateError, WrongEndpoint
from orchestrator.model import ACTIVE_STATES, FINAL_STATES, Target, TargetState, evolve
from orchestrator.rollout.gate import RolloutGate
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore
from orchestrator.store.writer import StateWriter

log = logging.getLogger("orchestrator.run")
T = TypeVar("T")
S = TargetState


@dataclass
class Follow:
    """How one target in flight is being followed."""

    backoff: Backoff
    started: float  # when following began (monotonic): --job-timeout counts from here
    failures: int = 0  # job queries in a row that failed
    by_server: bool = False  # no usable job: follow the server itself
    last_status: str | None = None
    previous: ServerView | None = None  # the last reading while settling a doubt
    still_since: float | None = None  # following by server: since when `previous` holds
    seen_rebuild: bool = False  # following by server: the rebuild was seen under way
    job_started: bool = False  # the job was seen past INIT
    verifying: JobView | None = None  # the job said SUCCESS: the server is being checked
    verify_reads: int = 0
    verify_since: float | None = None  # when (monotonic) verification began
    # The job cannot decide: the service no longer knows it (Common.0011). The server
    # is followed instead.
    job_unusable: bool = False
    seen_launched_at: str | None = None  # launched_at as first read after the intent
    seen_volume: str | None = None  # the system disk's volume as first read after it
    # The audit trail recorded the reinstall as received: it may wait in a queue for
    # long, so a server resting unchanged is followed until --job-timeout.
    received: bool = False
    # Followed by its project's lists (reads.py): the job is asked only when this is due,
    # or when the server cannot tell.
    job_due: float | None = None
    watched: bool = False  # its project's lists vouched for the server at the last look


class RunContext:
    """The state of one run that its parts share, and the plumbing they all use."""

    def __init__(
        self,
        store: StateStore,
        client: Cloud,
        settings: RunSettings,
        rollout: RolloutGate,
        *,
        clock: Callable[[], float],
        on_change: Callable[[dict[TargetState, int]], None] | None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.rollout = rollout
        self.clock = clock  # monotonic
        self._on_change = on_change
        self.writer = StateWriter(store, counters=self._counter_deltas)
        self.due = DueQueue(clock)  # follow-ups and re-checks, by when they are due
        self.active: dict[int, Target] = {}  # targets holding an in-flight slot
        self.follow: dict[int, Follow] = {}
        # Targets back to pending that this run sends again, before the rest of the feed.
        self.requeued: deque[Target] = deque()
        self.not_refed: set[int] = set()  # deferred this run: the feed must not send them
        self.changed = asyncio.Event()  # something the loop may want to look at
        self.work = asyncio.Event()  # a target went back to pending, or the run ends
        self.stop = asyncio.Event()  # replaced by the run's stop event
        self.abort: str | None = None
        self.deferred = 0
        self.credentials_refused = False
        self.misconfigured = False
        # In-flight slots: FIFO, one waiter woken per freed slot. Targets resumed
        # mid-way beyond the limit are owed back (`_slot_debt`) before new ones start.
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self._slot_debt = 0
        self.quiet = QuietPeriod(settings.settle_quiet)
        self.lengths = JobLengths(settings.expected_job_seconds)
        self.service_clock = client.service_clock
        self.reads = ServerReads(
            client,
            store.to_do_by_project(settings.shard),
            retry=settings.retry,
            interval=settings.first_poll,
            lists=settings.list_reads,
            rows_in_memory=settings.rows_in_memory,
            clock=clock,
        )
        # Since when (monotonic) this process watches each reinstall that may be under
        # way: its send, when made here; else when this process took it up.
        self.watched_since: dict[int, float] = {}
        self.sent_at: dict[int, float] = {}  # when (monotonic) this process sent each
        self._sent_counters: dict[str, int] = {}
        self.counts: dict[TargetState, int] = store.counts(settings.shard)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    # -- state changes -----------------------------------------------------------------

    async def change(self, target: Target, new: TargetState, detail: str, **fields: Any) -> Target:
        """Commit one state change (durable when this returns) and mirror it in memory."""
        old = target.state
        if new is S.SUCCEEDED:
            # Errors met on the way (a lost answer, a refused try) are history now.
            fields = {"error_code": None, "fail_reason": None, **fields}
        ok = await self.writer.change(Change(target.id, old, new, detail, fields))
        if not ok:
            raise StateError(
                f"target {target.project_id}/{target.server_id} was not {old.value}"
                " in the state file"
            )
        updated = evolve(target, state=new, **fields)
        if updated.id in self.active:
            self.active[updated.id] = updated
        if new in FINAL_STATES:
            self.rollout.record_final(updated)
            self.work.set()  # a wave, a project's cap or a budget may have moved
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
        self.changed.set()
        return updated

    async def note(self, target: Target, detail: str) -> None:
        """An event that explains something without changing the state."""
        await self.writer.call(self.store.note, target.id, target.state, detail)

    def unchanged(self, target: Target) -> bool:
        """True while the run goes on and nobody changed this target since it was read."""
        return not self.abort and self.active.get(target.id) is target

    # -- slots -------------------------------------------------------------------------

    async def take_slot(self) -> None:
        if self.slots.locked():
            self._slot_debt += 1  # more were mid-way than the limit allows now
        else:
            await self.slots.acquire()  # free: returns at once

    def release_slot(self) -> None:
        if self._slot_debt:
            self._slot_debt -= 1
        else:
            self.slots.release()

    def drop(self, target_id: int) -> None:
        """The target no longer needs this run's attention: free its slot."""
        if self.active.pop(target_id, None) is not None:
            self.follow.pop(target_id, None)
            self.watched_since.pop(target_id, None)
            self.sent_at.pop(target_id, None)
            self.release_slot()
            self.changed.set()

    async def step(self, target: Target, work: Awaitable[None]) -> None:
        """One step of one target; then free its slot if it left the active states."""
        try:
            await work
        except StateError as exc:
            self.fail_run(f"state file: {exc}")
        except Exception as exc:
            # A bug must not leave a target holding its slot while the run waits
            # for it forever: stop the run; the state file stays consistent.
            log.exception("internal error on %s/%s", target.project_id, target.server_id)
            self.fail_run(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            current = self.active.get(target.id)
            if current is not None and current.state not in ACTIVE_STATES:
                self.drop(target.id)

    # -- following ----------------------------------------------------------------------

    def schedule(
        self, target: Target, delay: float | None = None, *, by_server: bool | None = None
    ) -> None:
        """Look at the target again after `delay` (None: its polling cadence)."""
        self.watched_since.setdefault(target.id, self.clock())
        info = self.follow.get(target.id)
        if info is None:
            backoff = self.lengths.backoff(self.settings.first_poll, self.settings.poll_cap)
            info = self.follow[target.id] = Follow(backoff, self.clock())
        if by_server is not None:
            info.by_server = by_server
        self.due.push(target.id, info.backoff.next() if delay is None else delay)

    def timed_out(self, target: Target) -> bool:
        return self.clock() - self.follow[target.id].started > self.settings.job_timeout

    def watched(self, target_id: int) -> float:
        """Seconds this process has watched a reinstall that may be under way: since its
        send when this process made it, else since it took it up (monotonic)."""
        since = self.watched_since.get(target_id)
        return 0.0 if since is None else self.clock() - since

    def clock_for(self, target: Target) -> Clock:
        """The times the decisions about this target's reinstall may use."""
        intent_at: str | None
        if target.intent_service_at is not None and target.intent_error is not None:
            intent_at, error = target.intent_service_at, target.intent_error
            error += self.settings.clock_margin
        else:
            # Stamped on this host's clock only (no Date seen, or an older version).
            intent_at, error = target.intent_at, LOCAL_INTENT_ERROR
        sent = self.sent_at.get(target.id)
        # Sent by this process: its moment on the service's clock, as known now.
        known = None if sent is None else self.service_clock.at(sent)
        if known is not None:
            intent_at, error = known.iso(), known.error + self.settings.clock_margin
        return Clock(
            intent_at=intent_at,
            intent_error=error,
            watched=self.watched(target.id),
            quiet=self.quiet.seconds,
        )

    def before(self, target: Target) -> Before:
        """What was read of the server before the request (and after it, where nothing
        was read before)."""
        info = self.follow.get(target.id)
        return Before(
            launched_at=target.launched_at_before,
            status=target.status_before,
            updated=target.updated_before,
            first_launched_at=target.first_launched_at,
            seen_launched_at=None if info is None else info.seen_launched_at,
            volume=target.volume_before,
            first_volume=target.first_volume,
            seen_volume=None if info is None else info.seen_volume,
        )

    async def query(self, call: Callable[[], Awaitable[T]], *, patient: bool = False) -> T:
        """A read, retried briefly (a poll comes round again anyway) or, when `patient`,
        with the full budget a reinstall gets (nothing else will retry it this run)."""
        settings = self.settings.retry
        return await call_retrying(settings if patient else brief(settings), call)

    # -- stopping the run --------------------------------------------------------------

    def stop_run(self, act: Act, exc: Exception) -> None:
        """CREDENTIALS or STOP (decisions.py): the fault is not one target's."""
        if act is Act.CREDENTIALS:
            self.credentials_refused = True
            self.fail_run(f"credentials refused by the API: {exc}")
            return
        # Exit 2 when the fault is surely the configuration: a wrong URL, a clock far
        # off the service's, or an endpoint that never answered this run; else 3.
        if isinstance(exc, WrongEndpoint | ClockSkewed) or (
            isinstance(exc, RunCannotGoOn) and not exc.reached
        ):
            self.misconfigured = True
        self.fail_run(str(exc))

    def fail_run(self, why: str) -> None:
        if self.abort is None:
            log.error("stopping the run: %s", why)
            self.abort = why
        self.changed.set()
        self.work.set()

    def _counter_deltas(self) -> dict[str, int]:
        current = {f"requests.{k}": v for k, v in self.client.requests.items()}
        current["throttled"] = self.client.throttled
        deltas = {k: v - self._sent_counters.get(k, 0) for k, v in current.items()}
        self._sent_counters = current
        return deltas
