"""What a reinstall would meet, judged from one reading of the server before the window.

Pure decisions, no I/O: `orchestrator plan --preflight` reads every server (see
preflight_run.py) and asks `classify` about each. The rules follow what the
reference documents as refusing a reinstall:

    finding           blocks  evidence
    ----------------  ------  -------------------------------------------------------
    missing           yes     the server read answered 404 Ecs.0114 (or another code)
    locked            yes     `locked: true` (the reinstall is refused, Ecs.0605)
    no_system_disk    yes     no root device and no boot volume (Ecs.0105; the
                              reference: no reinstall without a system disk)
    busy              yes     a task state is set, or REBUILD/REBOOT/MIGRATING/RESIZE...:
                              "no other operations while reinstalling"
    not_reinstallable yes     a status a reinstall does not start from: ERROR, BUILD,
                              SHELVED, DELETED, UNKNOWN, ... (only ACTIVE and SHUTOFF do)
    running           yes     ACTIVE without withStopServer (--stop-server or a `mode`
                              column): refused with Ecs.0100
    refused           yes     the project is refused (403), or the read was rejected
    unreadable        yes     the read kept failing: nothing can be promised
    would_skip        no      launched after --skip-reinstalled-since: left alone
    in_flight         no      a state file has it mid-way: a resume settles it
    done              no      a state file has it final: a resume does not send it
    ready             no      nothing in the way

Where the reference is silent, the harder assumption is taken: a status not known
to allow a reinstall blocks, and so does a failed read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orchestrator.cloud.interface import ServerView
from orchestrator.engine.settle import is_rebuilding, parse_time
from orchestrator.model import TargetSpec

WITH_STOP_SERVER = "withStopServer"
# The only statuses a reinstall starts from (ACTIVE needs withStopServer).
REINSTALLABLE_STATUSES = frozenset({"ACTIVE", "SHUTOFF"})


class Finding(StrEnum):
    MISSING = "missing"  # the server does not exist (Ecs.0114)
    LOCKED = "locked"  # locked: the service refuses the reinstall (Ecs.0605)
    NO_SYSTEM_DISK = "no_system_disk"  # nothing to reinstall onto (Ecs.0105)
    BUSY = "busy"  # another operation is under way (task state, transitional status)
    NOT_REINSTALLABLE = "not_reinstallable"  # ERROR, BUILD, SHELVED, ...: no reinstall from there
    RUNNING = "running"  # ACTIVE without withStopServer: refused (Ecs.0100)
    REFUSED = "refused"  # the read was refused (403 project, another 4xx)
    UNREADABLE = "unreadable"  # the read kept failing; nothing can be promised
    WOULD_SKIP = "would_skip"  # launched after --skip-reinstalled-since: left alone
    IN_FLIGHT = "in_flight"  # the state file has it mid-way: a resume settles it
    DONE = "done"  # the state file has it final: a resume does not send it
    READY = "ready"  # nothing in the way


BLOCKING: frozenset[Finding] = frozenset(
    {
        Finding.MISSING,
        Finding.LOCKED,
        Finding.NO_SYSTEM_DISK,
        Finding.BUSY,
        Finding.NOT_REINSTALLABLE,
        Finding.RUNNING,
        Finding.REFUSED,
        Finding.UNREADABLE,
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    finding: Finding
    reason: str  # for the operator: what the server showed

    @property
    def blocks(self) -> bool:
        return self.finding in BLOCKING


def classify(
    server: ServerView, spec: TargetSpec, *, skip_since: datetime | None = None
) -> Verdict:
    """What a reinstall of `spec` would meet, given the server as read now."""
    shown = f"status {server.status}, task state {server.task_state or '-'}"
    if server.locked:
        return Verdict(Finding.LOCKED, "the server is locked (a reinstall gets Ecs.0605)")
    if server.system_disk is False:
        return Verdict(
            Finding.NO_SYSTEM_DISK, "no system disk attached (a reinstall gets Ecs.0105)"
        )
    if is_rebuilding(server):
        return Verdict(Finding.BUSY, f"already rebuilding ({shown})")
    if server.task_state:
        return Verdict(Finding.BUSY, f"an operation is under way ({shown})")
    if server.status not in REINSTALLABLE_STATUSES:
        busy = server.status in TRANSITIONAL_STATUSES
        return Verdict(
            Finding.BUSY if busy else Finding.NOT_REINSTALLABLE,
            f"{shown}: a reinstall starts only from ACTIVE (with withStopServer) or SHUTOFF",
        )
    if server.status == "ACTIVE" and spec.mode != WITH_STOP_SERVER:
        return Verdict(
            Finding.RUNNING,
            "running (ACTIVE) and no withStopServer: a reinstall gets Ecs.0100; "
            "add --stop-server or a mode column, or stop the server first",
        )
    launched = parse_time(server.launched_at)
    if skip_since is not None and launched is not None and launched > skip_since:
        return Verdict(
            Finding.WOULD_SKIP,
            f"launched_at {server.launched_at} is after --skip-reinstalled-since "
            f"{skip_since.isoformat()}: left alone",
        )
    return Verdict(Finding.READY, f"{shown}, launched_at {server.launched_at}")


# Statuses of an operation under way: the server may be fine once it ends.
TRANSITIONAL_STATUSES = frozenset(
    {"REBUILD", "REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE", "REVERT_RESIZE", "BUILD"}
)
