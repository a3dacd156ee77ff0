"""The options of a run, resolved once (given now, saved in the state, defaults: see
`orchestrator.cli.resolve`) into one frozen object that the engine reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.rows import SPILL_AT
from orchestrator.engine.shard import Shard


@dataclass(frozen=True)
class RunSettings:
    rate: float = 10.0  # reinstall requests per second
    poll_rate: float = 50.0  # job and server queries per second
    max_in_flight: int = 200
    job_timeout: float = 3600.0  # a reinstall not ended by then is failed
    first_poll: float = 5.0  # first job query this long after the job_id arrived
    poll_cap: float = 60.0  # polling interval grows toward this
    settle_delay: float = 5.0  # wait before asking a server about an uncertain reinstall
    # "Not accepted" only after this long without any sign of activity since the
    # intent (never lowered; raised when jobs are seen to start later than this).
    settle_quiet: float = 600.0
    drain_timeout: float = 60.0  # after a stop, follow accepted jobs this long
    preflight: bool = True  # read the server before sending (launched_at, rebuilding)
    query_failures_to_settle: int = 5  # a job query failing this often: settle from the server
    max_resends: int = 3  # reinstalls settled as "not accepted" sent again at most this often
    # Nothing is sent while this host's wall clock is further than this (seconds) from
    # the service's, as its answers' Date headers show: a clock that far off is a host
    # to fix (its windows and deadlines would be off too) before a disk is wiped.
    max_clock_skew: float = 60.0
    # Seconds the service's own clocks (the one behind Date, those behind launched_at
    # and updated) may disagree: times closer than this to an intent "cannot tell".
    clock_margin: float = SERVICE_CLOCKS_AGREE_WITHIN
    retry: RetrySettings = field(default_factory=RetrySettings)
    # Preflight: leave servers relaunched after this time alone (reported as skipped).
    skip_reinstalled_since: datetime | None = None
    # --expected-job-seconds as given: the first job query's timing until this state
    # file has seen jobs end (then their lengths decide).
    expected_job_seconds: float | None = None
    # Run only this part of the campaign (its feed, its recovery and its counts).
    shard: Shard | None = None
    # After a job's SUCCESS, read the server: succeeded only if it is back (verify.py).
    verify: bool = True
    # How long a server still settling after SUCCESS (booting, a task state, SHUTOFF
    # where it ran before) is read again before it fails as not verified. Minutes: a
    # server may take that long to come back, and a read every --poll-cap is cheap.
    verify_within: float = 600.0
    # Before a resend on doubt, ask the cloud's audit trail (None, or "cts") whether the
    # reinstall was received; no record counts only this long after the intent (CTS
    # documents about a minute before a trace can be queried; five, to be safe).
    audit_trail: str | None = None
    audit_trail_delay: float = 300.0
    # A server busy with someone else's operation is read again this often in the
    # same run, after busy_recheck_delay, then twice that, ...; then deferred.
    busy_rechecks: int = 3
    busy_recheck_delay: float = 60.0
    # Read servers through the list APIs where that costs fewer calls (reads.py).
    list_reads: bool = True
    # Rows of the list reads held in memory before they move to disk (rows.py).
    rows_in_memory: int = SPILL_AT

    def submit_workers(self) -> int:
        # A second's worth of the rate keeps the pacer fed; a few more cover the
        # workers still reading their server before they ask for a token.
        return max(2, min(self.max_in_flight, math.ceil(self.rate) + 4, 256))

    def poll_workers(self) -> int:
        return max(4, min(math.ceil(self.poll_rate) + 4, 256))
