"""What the store takes and gives back: a state change, an event, the records the
rollout replays, and how a row of `targets` becomes a `Target`.

Plain frozen dataclasses, so that nothing above the store ever handles a row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.model import Target, TargetSpec, TargetState, check_transition

# Columns a state change may set besides `state` (never user-supplied names).
CHANGEABLE = frozenset(
    {
        "job_id",
        "attempts",
        "error_code",
        "fail_reason",
        "launched_at_before",
        "first_launched_at",
        "status_before",
        "updated_before",
        "not_accepted",
        "intent_at",
        "intent_service_at",
        "intent_error",
        "volume_before",
        "first_volume",
        "submitted_at",
        "finished_at",
        "job_begin_at",
        "job_end_at",
    }
)

# The columns a `Target` is read from, in the order `target_from_row` takes them.
TARGET_COLUMNS = (
    "id, project_id, server_id, region, keyname, userid, mode, byol, extra, line, state, job_id,"
    " attempts, error_code, fail_reason, launched_at_before, intent_at, submitted_at,"
    " finished_at, updated_at, first_launched_at, status_before, updated_before, not_accepted,"
    " job_begin_at, job_end_at, cloud_init, wave, intent_service_at, intent_error,"
    " volume_before, first_volume"
)


def utc_now() -> str:
    """Now, as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; the seconds part is formatted once per second."""
    global _last_second
    now = time.time()
    second = int(now)
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{int((now - second) * 1_000_000):06d}Z"


_last_second: tuple[int, str] = (-1, "")


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of one target, and why it happened."""

    target_id: int
    old: TargetState
    new: TargetState
    detail: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=utc_now)


def validate(change: Change) -> None:
    """Raise unless the change is a legal transition that sets only changeable columns."""
    check_transition(change.old, change.new)
    unknown = set(change.fields) - CHANGEABLE
    if unknown:
        raise ValueError(f"not a changeable column: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Event:
    target_id: int
    at: str
    invocation: int | None
    from_state: str | None
    to_state: str
    detail: str


@dataclass(frozen=True, slots=True)
class FinalRecord:
    """A final target, for replaying the rollout's ledger in the order targets ended."""

    seq: int  # id of the target's last event: stable across resumes
    target_id: int
    project_id: str
    state: TargetState
    error_code: str | None
    wave: int | None
    intent_at: str | None
    finished_at: str | None
    server_id: str = ""  # named in the hint of a failed canary


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout decision: a wave started, a budget tripped, the window closed, ..."""

    kind: str
    detail: str
    project_id: str | None = None
    wave: int | None = None
    at: str = field(default_factory=utc_now)
    invocation: int | None = None


def target_from_row(row: Sequence[Any]) -> Target:
    """A `Target` from a row of `TARGET_COLUMNS`."""
    (
        tid,
        project_id,
        server_id,
        region,
        keyname,
        userid,
        mode,
        byol,
        extra,
        line,
        state,
        job_id,
        attempts,
        error_code,
        fail_reason,
        launched_at_before,
        intent_at,
        submitted_at,
        finished_at,
        updated_at,
        first_launched_at,
        status_before,
        updated_before,
        not_accepted,
        job_begin_at,
        job_end_at,
        cloud_init,
        wave,
        intent_service_at,
        intent_error,
        volume_before,
        first_volume,
    ) = row
    spec = TargetSpec(
        project_id=project_id,
        server_id=server_id,
        keyname=keyname,
        userid=userid,
        line=line or 0,
        region=region,
        mode=mode,
        byol=None if byol is None else bool(byol),
        extra=json.loads(extra) if extra else {},
        cloud_init=bool(cloud_init),
    )
    return Target(
        id=tid,
        spec=spec,
        state=TargetState(state),
        job_id=job_id,
        attempts=attempts,
        error_code=error_code,
        fail_reason=fail_reason,
        launched_at_before=launched_at_before,
        intent_at=intent_at,
        intent_service_at=intent_service_at,
        intent_error=intent_error,
        volume_before=volume_before,
        first_volume=first_volume,
        submitted_at=submitted_at,
        finished_at=finished_at,
        updated_at=updated_at,
        first_launched_at=first_launched_at,
        status_before=status_before,
        updated_before=updated_before,
        not_accepted=not_accepted or 0,
        job_begin_at=job_begin_at,
        job_end_at=job_end_at,
        wave=wave,
    )


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time of the state file (or the service), as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
