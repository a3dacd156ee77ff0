"""Targets and their states: plain data, and the one table of legal transitions.

A target is one (project_id, server_id) pair of the inventory. Its state moves
only along `TRANSITIONS`; the state store refuses anything else, so a bug in the
runner can never, say, send a reinstall for a server that already succeeded.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class TargetState(StrEnum):
    PENDING = "pending"  # nothing sent, or settled as "not accepted": may be sent
    SUBMITTING = "submitting"  # intent is durable; the request may be on the wire
    SUBMITTED = "submitted"  # the service answered with a job_id
    RUNNING = "running"  # the job (or, without a job, the server) shows work in progress
    IN_DOUBT = "in_doubt"  # a reinstall may have been accepted: settle from the server
    SUCCEEDED = "succeeded"  # reinstalled, once
    FAILED = "failed"  # will not be reinstalled by this run; see error_code/fail_reason
    SKIPPED = "skipped"  # left alone on purpose (reinstalled since --skip-reinstalled-since)


FINAL_STATES: frozenset[TargetState] = frozenset(
    {TargetState.SUCCEEDED, TargetState.FAILED, TargetState.SKIPPED}
)

# States in which a reinstall for the target may be under way at the service.
# A server in one of these is never sent another reinstall.
ACTIVE_STATES: frozenset[TargetState] = frozenset(
    {TargetState.SUBMITTING, TargetState.SUBMITTED, TargetState.RUNNING, TargetState.IN_DOUBT}
)

TRANSITIONS: dict[TargetState, frozenset[TargetState]] = {
    TargetState.PENDING: frozenset(
        {
            TargetState.SUBMITTING,
            TargetState.FAILED,
            TargetState.SKIPPED,
            # An earlier attempt of this run shows on the server: settle it, never resend.
            TargetState.IN_DOUBT,
        }
    ),
    TargetState.SUBMITTING: frozenset(
        {
            TargetState.SUBMITTED,  # job_id received
            TargetState.FAILED,  # the service refused it for good (4xx)
            TargetState.IN_DOUBT,  # no usable answer after sending
            TargetState.PENDING,  # refused before acting (throttled, busy): deferred
        }
    ),
    TargetState.SUBMITTED: frozenset(
        {TargetState.RUNNING, TargetState.SUCCEEDED, TargetState.FAILED, TargetState.IN_DOUBT}
    ),
    TargetState.RUNNING: frozenset(
        {TargetState.SUCCEEDED, TargetState.FAILED, TargetState.IN_DOUBT}
    ),
    TargetState.IN_DOUBT: frozenset(
        {
            TargetState.PENDING,  # the server shows it was not accepted
            TargetState.RUNNING,  # the server is rebuilding: follow it
            TargetState.SUCCEEDED,
            TargetState.FAILED,
        }
    ),
    TargetState.SUCCEEDED: frozenset(),
    TargetState.FAILED: frozenset(),
    TargetState.SKIPPED: frozenset(),
}

# Operator-only: `orchestrator retry` reopens failed targets for a new attempt.
# Kept out of TRANSITIONS on purpose, so that no run can ever take this path by
# itself: only `StateStore.reopen`, called by the retry command, checks against
# it (with `check_reopen`), and it writes a "retry requested" event each time.
OPERATOR_TRANSITIONS: dict[TargetState, frozenset[TargetState]] = {
    TargetState.FAILED: frozenset({TargetState.PENDING}),
}


class IllegalTransition(ValueError):
    """A state change that the transition table does not allow."""


def plain_id(value: str) -> bool:
    """An ID the API could have issued (a job's, a server's, a project's): 1 to 128
    ASCII letters, digits, '-' and '_', nothing that could change a URL or a line."""
    return 0 < len(value) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def check_transition(old: TargetState, new: TargetState) -> None:
    """Raise IllegalTransition unless old -> new is in the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"illegal state change {old.value} -> {new.value}")


def check_reopen(old: TargetState, new: TargetState = TargetState.PENDING) -> None:
    """Raise IllegalTransition unless an operator may move old -> new (retry)."""
    if new not in OPERATOR_TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"a retry cannot move a target {old.value} -> {new.value}")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One validated inventory row, with defaults already applied."""

    project_id: str
    server_id: str
    keyname: str
    userid: str
    line: int  # 1-based line (CSV) or entry number (JSON) in the inventory
    region: str | None = None
    mode: str | None = None  # None or "withStopServer"
    byol: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)  # columns we do not interpret
    cloud_init: bool = False  # send the Cloud-Init API (v2), which takes user data

    @property
    def api(self) -> str:
        """Which reinstall API the target is sent to: "v1", or "v2" (Cloud-Init)."""
        return "v2" if self.cloud_init else "v1"

    @property
    def key(self) -> tuple[str, str]:
        return (self.project_id, self.server_id)

    def reinstall_body(self, user_data: str | None = None) -> dict[str, Any]:
        """The request body of POST .../reinstallos for this target.

        `user_data` (already base64, see `orchestrator.userdata`) goes into
        `metadata.user_data`, and only on the Cloud-Init API: v1 has no such field.
        """
        spec: dict[str, Any] = {"keyname": self.keyname, "userid": self.userid}
        metadata: dict[str, str] = {}
        if self.byol is not None:
            metadata["BYOL"] = "true" if self.byol else "false"
        if self.cloud_init and user_data is not None:
            metadata["user_data"] = user_data
        if metadata:
            spec["metadata"] = metadata
        if self.mode:
            spec["mode"] = self.mode
        return {"os-reinstall": spec}


@dataclass(frozen=True, slots=True)
class Target:
    """One target as the state store holds it."""

    id: int
    spec: TargetSpec
    state: TargetState
    job_id: str | None = None
    attempts: int = 0  # reinstall requests sent (or possibly sent) for this target
    error_code: str | None = None
    fail_reason: str | None = None
    launched_at_before: str | None = None  # server's OS-SRV-USG:launched_at before sending
    # Evidence read before the FIRST attempt, never overwritten: a resend compares
    # with it, so a reinstall that succeeded earlier is never sent again.
    first_launched_at: str | None = None
    status_before: str | None = None  # server status read before the latest attempt
    updated_before: str | None = None  # server `updated` read before the latest attempt
    not_accepted: int = 0  # times settled "not accepted" (the resend cap), across resumes
    intent_at: str | None = None  # when the latest intent to send was committed
    # The same moment on the service's clock (orchestrator.clocks), for comparisons with
    # the times the service writes, and how far that may be off, in seconds. None where
    # the service's clock was not known (or the intent is older than this field).
    intent_service_at: str | None = None
    intent_error: float | None = None
    # The system disk's volume ID (the volume at boot index 0) read before the latest
    # attempt, and before the first (never overwritten): a reinstall replaces the disk.
    volume_before: str | None = None
    first_volume: str | None = None
    submitted_at: str | None = None  # when the job_id arrived
    finished_at: str | None = None
    updated_at: str | None = None
    job_begin_at: str | None = None  # the job's own begin_time, where the service gave it
    job_end_at: str | None = None  # the job's own end_time
    wave: int | None = None  # rollout wave (from 1), fixed at the first run

    @property
    def project_id(self) -> str:
        return self.spec.project_id

    @property
    def server_id(self) -> str:
        return self.spec.server_id

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


_TARGET_FIELDS = tuple(f.name for f in fields(Target))
_TARGET_INDEX = {name: i for i, name in enumerate(_TARGET_FIELDS)}
_target_values = operator.attrgetter(*_TARGET_FIELDS)


def evolve(target: Target, **changes: Any) -> Target:
    """`dataclasses.replace(target, **changes)` without its per-call look at the fields
    (they are read once, above): the runner makes one per state change."""
    values = list(_target_values(target))
    for name, value in changes.items():
        index = _TARGET_INDEX.get(name)
        if index is None:
            raise TypeError(f"Target has no field {name!r}")
        values[index] = value
    return Target(*values)


@dataclass(frozen=True, slots=True)
class InvocationInfo:
    """One invocation (run or resume) of a state file: one row of its runs table."""

    number: int  # 1 for the first invocation, then 2, 3, ...
    started_at: str | None
    ended_at: str | None  # None: still running, or killed before it could record its end
    outcome: str | None  # complete, stopped, deferred, aborted, interrupted; None as ended_at
    options: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a state file knows about its run, for status and reports."""

    run_id: str  # fixed when the state file is created; names the report folder
    state_path: str
    inventory_path: str | None
    inventory_sha256: str
    created_at: str  # ISO 8601 UTC
    started_at: str | None  # start of the latest invocation
    ended_at: str | None  # end of the latest invocation, None while running
    invocations: int  # how many times run/resume was started on this state
    options: dict[str, Any] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()  # inventory columns kept for the report
    requests: dict[str, int] = field(default_factory=dict)  # sent, by kind: reinstall/job/server
    throttled: int = 0  # throttling answers received (429, 202 Common.0024)
    # What --only-project/--limit/--exclude left out of the inventory ({}: nothing).
    selection: dict[str, Any] = field(default_factory=dict)
