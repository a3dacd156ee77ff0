"""Settling a reinstall whose outcome is unknown, from what the server itself shows.

Pure decisions, no I/O: the runner reads the server and stores the verdict.

A real ECS does not show an accepted reinstall at once: its job may wait in
`INIT` with the server untouched, and with `withStopServer` the server is first
powered off (`ACTIVE`, task state `powering-off`, then `SHUTOFF`) before it shows
`REBUILD`. So the rules are asymmetric:

* any sign of activity since the intent (a task state, a status other than the
  one read before sending, `updated` moved, `launched_at` moved, a job id) means
  "maybe accepted": follow the server, never resend;
* "reinstalled" rests on two pieces of evidence (`reinstalled_since`): the system
  disk replaced (the volume at boot index 0 has a new ID: the one change the
  reference promises) and `launched_at` moved (not documented either way). Where
  they disagree the disk decides: replaced with `launched_at` unchanged is a
  reinstall; `launched_at` moved on the same disk is not (a start moves it too).
  Without a volume reading (none before the request, or a list that does not say
  which volume is the system disk) `launched_at` alone decides, as it always did;
* "not accepted" (the only verdict that allows sending again) needs a quiet
  period watched by this process (on its monotonic clock, from the intent when
  this process made it, else from when it took the doubt up), and at least two
  readings that agree and show that nothing moved.

Times the service wrote (`launched_at`, `updated`) are compared only with times
on the service's clock (the intent is stamped on it, see `orchestrator.clocks`),
each with the error that clock may have: within it, the answer is "cannot tell",
never a guess either way.

The assumption this rests on, stated in docs/safety.md: a reinstall the service acts
on shows activity on the server within the quiet period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from orchestrator.clocks import UNSYNCED_ERROR
from orchestrator.cloud.interface import ServerView

REBUILD_TASK_STATES = frozenset({"rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"})
# How far an intent stamped on this host's wall clock rather than the service's (no
# Date seen, or an older version) may be off the service's clock.
LOCAL_INTENT_ERROR = UNSYNCED_ERROR
# The quiet period is raised by what jobs are seen to take, up to this many times
# the period given (--settle-quiet).
CEILING_FACTOR = 4.0
# Statuses a server rests in; anything else is a server in transition.
STABLE_STATUSES = frozenset({"ACTIVE", "SHUTOFF"})


class Verdict(StrEnum):
    FOLLOW = "follow"  # maybe accepted (rebuilding, or activity since the intent): follow it
    SUCCEEDED = "succeeded"  # accepted and finished well
    FAILED = "failed"  # accepted and finished badly (server in ERROR)
    NOT_ACCEPTED = "not_accepted"  # never acted on: may be sent again
    WAIT = "wait"  # nothing moved yet, but the quiet period is not over: read again later
    UNVERIFIED = "unverified"  # cannot tell: reported as failed, never resent


@dataclass(frozen=True, slots=True)
class Settlement:
    verdict: Verdict
    reason: str  # for the event log: how it was decided


@dataclass(frozen=True, slots=True)
class Before:
    """What was read from the server before the request, where known."""

    launched_at: str | None = None  # before the latest attempt
    status: str | None = None
    updated: str | None = None
    first_launched_at: str | None = None  # before the first attempt, never overwritten
    # Without any of those (no preflight): launched_at as this process first read it
    # after the intent. A newer value since then is a relaunch after the intent.
    seen_launched_at: str | None = None
    # The system disk's volume ID (boot index 0): before the latest attempt, before the
    # first (never overwritten), and as first read after the intent (no preflight).
    volume: str | None = None
    first_volume: str | None = None
    seen_volume: str | None = None


@dataclass(frozen=True, slots=True)
class Clock:
    """The times a decision about one reinstall may use."""

    intent_at: str | None  # the intent, on the service's clock (see orchestrator.clocks)
    intent_error: float  # seconds intent_at may be off the service's clock, either way
    watched: float  # seconds this process has watched since the intent (monotonic)
    quiet: float  # the quiet period, seconds


def is_rebuilding(server: ServerView) -> bool:
    return server.status == "REBUILD" or (server.task_state or "") in REBUILD_TASK_STATES


def parse_time(value: str | None) -> datetime | None:
    """Parse the API's ISO 8601 times, with or without fraction and zone (UTC assumed)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def same_reading(a: ServerView, b: ServerView) -> bool:
    """Two readings that show the same server, with nothing moved between them."""
    return (a.status, a.task_state, a.updated, a.launched_at, a.system_volume) == (
        b.status,
        b.task_state,
        b.updated,
        b.launched_at,
        b.system_volume,
    )


def settle(
    server: ServerView,
    before: Before,
    clock: Clock,
    *,
    previous: ServerView | None = None,
    job_id: str | None = None,
) -> Settlement:
    """Decide what became of a reinstall that may or may not have been accepted.

    `previous` is an earlier reading taken while settling this same doubt.
    """
    if is_rebuilding(server):
        return Settlement(Verdict.FOLLOW, f"server is rebuilding (status {server.status})")
    reinstalled, how = reinstalled_since(server, before, clock)
    if reinstalled:
        if server.status == "ERROR":
            return Settlement(Verdict.FAILED, f"accepted ({how}), server now in ERROR")
        return Settlement(Verdict.SUCCEEDED, f"accepted and finished ({how})")
    if server.status == "ERROR":
        # A failed reinstall leaves launched_at as it was, so an ERROR server may well
        # be our reinstall failing: never resend to it, report it.
        return Settlement(
            Verdict.FAILED, f"server is in ERROR after an uncertain reinstall ({how})"
        )
    signs = activity(server, before, clock)
    if job_id is not None:
        signs.append(f"job {job_id} was accepted")
    if signs:
        return Settlement(Verdict.FOLLOW, "maybe accepted: " + "; ".join(signs))
    if reinstalled is None:
        return Settlement(
            Verdict.UNVERIFIED, f"cannot tell whether it was accepted ({how}); not sent again"
        )
    if clock.watched < clock.quiet:
        left = clock.quiet - clock.watched
        return Settlement(Verdict.WAIT, f"nothing moved yet; the quiet period ends in {left:.0f} s")
    if previous is None or not same_reading(previous, server):
        return Settlement(Verdict.WAIT, "nothing moved; a second, agreeing reading is needed")
    return Settlement(
        Verdict.NOT_ACCEPTED,
        f"nothing moved in {clock.watched:.0f} s watched since the intent (quiet period"
        f" {clock.quiet:.0f} s), two readings agree ({how})",
    )


def follow(
    server: ServerView,
    before: Before,
    clock: Clock,
    *,
    seen_rebuild: bool,
    still_for: float = 0.0,
) -> Settlement:
    """Verdict on a server followed without a job to ask.

    `seen_rebuild`: this follow has seen the server rebuilding. A rebuild that
    ended without a new launched_at is a failed one (a failed job leaves the
    server as it was), never a success. `still_for`: how long the server has
    shown this same reading. A resting server that has not moved for the quiet
    period is not about to be rebuilt: whatever happened has ended without a
    relaunch (a follow taken up after a restart never saw the rebuild itself).
    """
    if is_rebuilding(server):
        return Settlement(Verdict.FOLLOW, "server still rebuilding")
    reinstalled, how = reinstalled_since(server, before, clock)
    if server.status == "ERROR":
        return Settlement(Verdict.FAILED, f"rebuild ended with the server in ERROR ({how})")
    if reinstalled:
        return Settlement(Verdict.SUCCEEDED, f"rebuild ended (status {server.status}, {how})")
    resting = server.status in STABLE_STATUSES and not server.task_state
    if resting and seen_rebuild:
        return Settlement(
            Verdict.FAILED, f"rebuild ended but the server shows no reinstall ({how})"
        )
    if resting and still_for >= clock.quiet:
        return Settlement(
            Verdict.FAILED,
            f"server resting ({server.status}) and unchanged for {still_for:.0f} s without"
            f" a reinstall showing ({how}): the reinstall ended without one, or never ran",
        )
    return Settlement(Verdict.FOLLOW, f"waiting for the rebuild (status {server.status}, {how})")


def activity(server: ServerView, before: Before, clock: Clock) -> list[str]:
    """Signs that something happened to the server since the intent."""
    signs: list[str] = []
    if server.task_state:
        signs.append(f"task state {server.task_state}")
    if before.status is not None and server.status != before.status:
        signs.append(f"status {before.status} -> {server.status}")
    launched = before.launched_at or before.first_launched_at
    if launched is not None and server.launched_at != launched:
        # Not a reinstall on the same disk (a start moves it too), but something ran.
        signs.append(f"launched_at {launched} -> {server.launched_at}")
    if server.updated is not None:
        if before.updated is not None:
            if server.updated != before.updated:
                signs.append(f"updated {before.updated} -> {server.updated}")
        else:
            updated = parse_time(server.updated)
            intent = parse_time(clock.intent_at)
            # Without an earlier value, anything updated near or after the intent
            # (within the error of the clocks) may be our reinstall at work.
            error = timedelta(seconds=clock.intent_error)
            if updated is None or intent is None or updated >= intent - error:
                signs.append(f"updated {server.updated}, near or after the intent")
    return signs


def reinstalled_since(server: ServerView, before: Before, clock: Clock) -> tuple[bool | None, str]:
    """Whether the server was reinstalled since the first or the latest attempt: True,
    False, or None when the evidence does not allow telling; and which evidence said so.

    The system disk decides where it can be told (`disk_replaced`); `launched_at`
    (`relaunched_since`) where it cannot."""
    replaced, disk = disk_replaced(server.system_volume, before)
    relaunched, launch = relaunched_since(server.launched_at, before, clock)
    if replaced:
        if relaunched:
            return True, f"{disk}; {launch}"
        return True, f"{disk}, though {launch}: the disk is what a reinstall replaces"
    if replaced is False:
        if relaunched:
            return False, (
                f"{disk}, though {launch}: a start moves launched_at too, a reinstall"
                " replaces the disk"
            )
        return False, f"{disk}; {launch}"
    return relaunched, f"{launch}; {disk}"


def disk_replaced(now_volume: str | None, before: Before) -> tuple[bool | None, str]:
    """Whether the system disk (the volume at boot index 0) was replaced since the first
    or the latest attempt: True, False, or None when there is no reading to compare."""
    first, latest = before.first_volume, before.volume
    if first is not None and latest is not None and first != latest:
        return True, (
            f"system disk replaced since the first attempt (volume {first} before it,"
            f" {latest} before the latest)"
        )
    reference = latest or first
    if reference is None:
        seen = before.seen_volume
        if seen is not None and now_volume is not None and now_volume != seen:
            return (
                True,
                f"system disk replaced: volume {seen} (read after the intent) -> {now_volume}",
            )
        return None, "the system disk's volume was not read before the request"
    if now_volume is None:
        return None, f"the system disk's volume is not shown now (it was {reference})"
    if now_volume != reference:
        return True, f"system disk replaced: volume {reference} -> {now_volume}"
    return False, f"system disk not replaced (volume {now_volume})"


def relaunched_since(
    now_launched: str | None, before: Before, clock: Clock
) -> tuple[bool | None, str]:
    """Whether the server was relaunched since the first or the latest attempt:
    True, False, or None when the evidence does not allow telling."""
    first = before.first_launched_at
    if first is not None and before.launched_at is not None and first != before.launched_at:
        # Already relaunched between the first attempt and the latest one.
        return True, f"launched_at moved from {first} (before the first attempt)"
    reference = before.launched_at or first
    current = parse_time(now_launched)
    if reference is not None:
        if now_launched == reference:
            return False, f"launched_at unchanged ({now_launched})"
        if current is None:
            return None, f"launched_at was {reference!r} and is now unreadable ({now_launched!r})"
        previous = parse_time(reference)
        if previous is None:
            # Changed, but not comparable as times: a change is a relaunch.
            return True, f"launched_at changed from {reference!r} to {now_launched!r}"
        if current > previous:
            return True, f"launched_at moved from {reference} to {now_launched}"
        return False, f"launched_at not newer ({reference} then {now_launched})"
    intent = parse_time(clock.intent_at)
    if current is None or intent is None:
        return None, "launched_at or the intent time unknown, and no earlier value recorded"
    error = timedelta(seconds=clock.intent_error)
    within = f"{clock.intent_error:.1f} s"
    seen = parse_time(before.seen_launched_at)
    if seen is not None and current > seen:
        return True, (
            f"launched_at moved from {before.seen_launched_at} (read after the intent) to"
            f" {now_launched}"
        )
    if current > intent + error:
        return True, (
            f"launched_at {now_launched} is after the intent {clock.intent_at} (service"
            f" clock, within {within}; no earlier value recorded)"
        )
    if current < intent - error:
        return False, (
            f"launched_at {now_launched} is before the intent {clock.intent_at} (service"
            f" clock, within {within}; no earlier value recorded)"
        )
    return None, (
        f"launched_at {now_launched} is within {within} of the intent {clock.intent_at}:"
        " cannot tell which came first (no earlier value recorded)"
    )


@dataclass
class QuietPeriod:
    """The quiet period: never lowered; raised when a job is seen to take longer than
    it to show activity (the service is slower than assumed), but never above
    `ceiling`, so that no evidence, right or wrong, makes a wait unbounded."""

    seconds: float
    margin: float = 2.0  # raised to this many times the slowest start seen
    ceiling: float = 0.0  # 0: CEILING_FACTOR times the period given

    def __post_init__(self) -> None:
        if self.ceiling <= 0:
            self.ceiling = self.seconds * CEILING_FACTOR

    def observe(self, seconds_to_activity: float) -> bool:
        """Record how long a job took to show activity (measured on the service's
        clock); True if the period was raised."""
        wanted = min(seconds_to_activity * self.margin, self.ceiling)
        if not wanted > self.seconds:  # also refuses NaN
            return False
        self.seconds = wanted
        return True
