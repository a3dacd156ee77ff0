"""How a run ended: counts, why it stopped, what it could not record, and its exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.model import FINAL_STATES, Target, TargetState

# Targets by state: a run's counts (by TargetState), or a status read's (by its value).
Counts = Mapping[TargetState, int] | Mapping[str, int]


@dataclass
class Answer:
    """A job id the service returned that the state store could not record."""

    target: Target  # as it was committed: submitting
    job_id: str
    submitted_at: str
    status: str | None = None  # the job's status, as last asked while the record was retried

    def describe(self) -> str:
        where = f"{self.target.project_id}/{self.target.server_id}"
        return f"{where} job {self.job_id} ({self.status or 'status unknown'})"


@dataclass
class Outcome:
    counts: dict[TargetState, int]
    deferred: int = 0
    stopped: bool = False
    # Stopped at once (a second signal): accepted jobs were left as they were, not
    # followed; the state has them, and a resume follows and settles them.
    halted: bool = False
    aborted: str | None = None  # why the run could not go on
    credentials_refused: bool = False  # aborted because the API refused the credentials
    # Aborted for a fault of the configuration (wrong endpoint, never reachable, a
    # clock far off): nothing unsafe was done, fix and run again.
    misconfigured: bool = False
    held: str | None = None  # why the rollout stopped sending (window, canary, budget)
    # Job ids the service returned that could not be recorded: a resume must be given
    # them (--known-job), or it would settle those targets from the servers alone.
    unrecorded: list[Answer] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not unfinished(self.counts)

    @property
    def label(self) -> str:
        """How the invocation ended, as recorded in the state's runs table: aborted,
        complete, stopped (by a signal) or deferred (work left for a later run)."""
        if self.aborted:
            return "aborted"
        if self.complete:
            return "complete"
        return "stopped" if self.stopped else "deferred"

    @property
    def exit_code(self) -> int:
        return exit_code(
            self.counts,
            credentials_refused=self.credentials_refused,
            misconfigured=self.misconfigured,
        )


def unfinished(counts: Counts) -> int:
    """Targets not in a final state; `counts` by TargetState or by its value."""
    return sum(n for state, n in counts.items() if TargetState(state) not in FINAL_STATES)


def exit_code(
    counts: Counts, *, credentials_refused: bool = False, misconfigured: bool = False
) -> int:
    """The one place an exit code is worked out from a state's counts (by TargetState or
    by its value) and why its run stopped; a run, `status` and `report` all ask it.

    2  the run stopped for its configuration (credentials refused, an endpoint never
       reachable, a clock far off): nothing unsafe was done, fix it and run again
    3  targets are left to do: resume
    1  every target is final and some failed
    0  every target succeeded (or was skipped on purpose)
    """
    if credentials_refused or misconfigured:
        return 2
    if unfinished(counts):
        return 3
    failed = sum(n for state, n in counts.items() if TargetState(state) is TargetState.FAILED)
    return 1 if failed else 0
