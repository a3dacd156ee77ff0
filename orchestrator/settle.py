"""Settling a reinstall whose outcome is unknown, from what the server itself shows.

Pure decisions, no I/O: the runner fetches the server and stores the verdict.

A reinstall was accepted if the server is rebuilding now, or if it has been
relaunched since the request (its `OS-SRV-USG:launched_at` moved). Where the
launch time before the request is known, "moved" is exact; where it is not, the
launch time is compared with when the intent was recorded, less an allowance for
clock skew between this machine and the cloud — erring towards "accepted",
because a server wrongly taken as reinstalled is reported, while one wrongly
taken as untouched would be wiped twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from orchestrator.client import ServerView

REBUILD_TASK_STATES = frozenset({"rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"})
DEFAULT_SKEW = timedelta(minutes=5)


class Verdict(StrEnum):
    REBUILDING = "rebuilding"  # accepted and still running: follow the server
    SUCCEEDED = "succeeded"  # accepted and finished well
    FAILED = "failed"  # accepted and finished badly (server in ERROR)
    NOT_ACCEPTED = "not_accepted"  # never acted on: may be sent again
    UNVERIFIED = "unverified"  # cannot tell: reported as failed, never resent


@dataclass(frozen=True, slots=True)
class Settlement:
    verdict: Verdict
    reason: str  # for the event log: how it was decided


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


def settle(
    server: ServerView,
    launched_at_before: str | None,
    intent_at: str | None,
    skew: timedelta = DEFAULT_SKEW,
    *,
    job_id: str | None = None,
) -> Settlement:
    """Decide what became of a reinstall that may or may not have been accepted.

    "Not accepted" (the only verdict that allows sending again) needs positive
    evidence: a readable launched_at that did not move. A job id proves the
    service accepted the request, so a target that has one is never "not accepted".
    """
    if is_rebuilding(server):
        return Settlement(Verdict.REBUILDING, f"server is rebuilding (status {server.status})")
    relaunched, how = _relaunched(server.launched_at, launched_at_before, intent_at, skew)
    if relaunched:
        return _finished(server, how)
    if server.status == "ERROR":
        # A failed reinstall leaves launched_at as it was, so an ERROR server may well
        # be our reinstall failing: never resend to it, report it.
        return Settlement(
            Verdict.FAILED, f"server is in ERROR after an uncertain reinstall ({how})"
        )
    if job_id is not None:
        return Settlement(
            Verdict.UNVERIFIED,
            f"job {job_id} was accepted but its result is unknown: server {server.status}, {how}",
        )
    if relaunched is None:
        return Settlement(
            Verdict.UNVERIFIED, f"cannot tell whether it was accepted ({how}); not sent again"
        )
    return Settlement(Verdict.NOT_ACCEPTED, f"server not rebuilding and {how}")


def follow(server: ServerView, launched_at_before: str | None) -> Settlement:
    """Verdict on a server we follow because it was rebuilding (no job to ask)."""
    if is_rebuilding(server):
        return Settlement(Verdict.REBUILDING, "server still rebuilding")
    if server.status == "ERROR":
        return Settlement(Verdict.FAILED, "rebuild ended with the server in ERROR")
    if launched_at_before and server.launched_at == launched_at_before:
        return Settlement(
            Verdict.SUCCEEDED,
            f"rebuild ended (status {server.status}); launched_at unchanged, so unverified",
        )
    return Settlement(
        Verdict.SUCCEEDED,
        f"rebuild ended (status {server.status}, launched_at {server.launched_at})",
    )


def _relaunched(
    now_launched: str | None,
    before: str | None,
    intent_at: str | None,
    skew: timedelta,
) -> tuple[bool | None, str]:
    """Whether the server was relaunched since the intent: True, False, or None
    when the evidence does not allow telling."""
    current = parse_time(now_launched)
    if before is not None:
        if now_launched == before:
            return False, f"launched_at unchanged ({now_launched})"
        if current is None:
            return None, f"launched_at was {before!r} and is now unreadable ({now_launched!r})"
        previous = parse_time(before)
        if previous is None:
            # Changed, but not comparable as times: a change is a relaunch.
            return True, f"launched_at changed from {before!r} to {now_launched!r}"
        if current > previous:
            return True, f"launched_at moved from {before} to {now_launched}"
        return False, f"launched_at not newer ({before} then {now_launched})"
    intent = parse_time(intent_at)
    if current is None or intent is None:
        return None, "launched_at or the intent time unknown, and no earlier value recorded"
    if current >= intent - skew:
        return True, (
            f"launched_at {now_launched} is after the intent {intent_at} less "
            f"{int(skew.total_seconds())} s allowed for clock skew (no earlier value recorded)"
        )
    return False, (
        f"launched_at {now_launched} is before the intent {intent_at} less "
        f"{int(skew.total_seconds())} s of clock skew (no earlier value recorded)"
    )


def _finished(server: ServerView, how: str) -> Settlement:
    if server.status == "ERROR":
        return Settlement(Verdict.FAILED, f"accepted ({how}), server now in ERROR")
    return Settlement(Verdict.SUCCEEDED, f"accepted and finished ({how})")
