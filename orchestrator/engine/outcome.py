"""How a run ended: counts, why it stopped, and what it could not record."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.model import FINAL_STATES, Target, TargetState


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
        return all(n == 0 for s, n in self.counts.items() if s not in FINAL_STATES)

    @property
    def exit_code(self) -> int:
        """The one place a run's exit code is worked out."""
        if self.credentials_refused or self.misconfigured:
            return 2
        if not self.complete:
            return 3
        return 1 if self.counts.get(TargetState.FAILED, 0) else 0
