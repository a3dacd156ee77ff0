"""Is the server really back after its job said SUCCESS? A pure decision from one reading.

A job's SUCCESS is the service's word; the server is the evidence. A reinstall
counts as succeeded only when the server rests in a stable state it may end in
(`ACTIVE`; `SHUTOFF` only where it was `SHUTOFF` before the request) and shows the
reinstall (`settle.reinstalled_since`): its system disk replaced (a new volume ID at
boot index 0), or, where the volume cannot be compared, its
`OS-SRV-USG:launched_at` newer than the value read before the request (or, without
one, than the intent less the clock skew allowed). `launched_at` moved on the same
disk is not a reinstall (a start moves it too).

Right after SUCCESS the server may still show the end of the work (a task state,
`REBUILD`, an old `launched_at` not yet refreshed), so anything but `ERROR` is
read again a few times (`WAIT`) before the runner gives up on it
(`Orchestrator.NotVerified`). `ERROR` fails at once: a server the job left in
`ERROR` is not back, whatever the job says.
"""

from __future__ import annotations

from orchestrator.cloud.interface import ServerView
from orchestrator.engine.settle import (
    STABLE_STATUSES,
    Before,
    Clock,
    Settlement,
    Verdict,
    is_rebuilding,
    reinstalled_since,
)

NOT_VERIFIED = "Orchestrator.NotVerified"


def check_back(server: ServerView, before: Before, clock: Clock) -> Settlement:
    """SUCCEEDED, FAILED (not back, for sure) or WAIT (read again; at the last read a
    WAIT is a failure too, with its reason)."""
    shown = f"status {server.status}, task state {server.task_state or '-'}"
    if server.status == "ERROR" and not server.task_state:
        return Settlement(Verdict.FAILED, f"the server is in ERROR ({shown})")
    if is_rebuilding(server) or server.task_state or server.status not in STABLE_STATUSES:
        return Settlement(Verdict.WAIT, f"server not back in a stable state yet ({shown})")
    if server.status == "SHUTOFF" and before.status not in (None, "SHUTOFF"):
        return Settlement(
            Verdict.WAIT, f"server is SHUTOFF, but it was {before.status} before the reinstall"
        )
    # Against the reading before this request; the first attempt's only without one.
    reference = Before(
        launched_at=before.launched_at or before.first_launched_at,
        volume=before.volume or before.first_volume,
        seen_volume=before.seen_volume,
    )
    reinstalled, how = reinstalled_since(server, reference, clock)
    if reinstalled:
        return Settlement(Verdict.SUCCEEDED, f"server back ({shown}; {how})")
    return Settlement(Verdict.WAIT, f"server shows no reinstall ({how})")
