"""Is the server really back after its job said SUCCESS? A pure decision from one reading.

A job's SUCCESS is the service's word; the server is the evidence. A reinstall
counts as succeeded only when the server rests in a stable state it may end in
(`ACTIVE`; `SHUTOFF` only where it was `SHUTOFF` before the request) and its
`OS-SRV-USG:launched_at` is newer than the value read before the request (or,
without one, than the intent less the clock skew allowed).

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
    relaunched_since,
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
    reference = Before(launched_at=before.launched_at or before.first_launched_at)
    relaunched, how = relaunched_since(server.launched_at, reference, clock)
    if relaunched:
        return Settlement(Verdict.SUCCEEDED, f"server back ({shown}; {how})")
    return Settlement(Verdict.WAIT, f"server not relaunched by the reinstall ({how})")
