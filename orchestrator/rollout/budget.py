"""Failure budgets and the same-code breaker, fed with targets' final outcomes in order.

`FailureLedger` is an accumulator, not a store: the runner feeds it each
target that becomes final (and, on resume, every final target of the state
file in the order they became final), so replaying the state rebuilds the same
trips. Trips latch: a project paused by the breaker stays paused even if a job
that was already running then succeeds. Only `--ack-failures` clears them: the
lead records the sequence number of the last outcome at the ack, and outcomes
up to it stop counting (`acked_through`).

Budgets trip when failures *exceed* them (`--max-failures 0` stops at the
first failure, `2%` of 1,000 at the 21st). Which outcomes count is
`orchestrator.failures`' table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.errors import UsageError
from orchestrator.rollout.failures import counts_as_failure, hint

__all__ = [
    "DEFAULT_MAX_CONSECUTIVE",
    "FailureLedger",
    "Limit",
    "Outcome",
    "Trip",
    "TripKind",
    "parse_limit",
]

# Ten same-code failures in a row in one project is a pattern, not bad luck,
# and stops a wrong project ID or a missing --stop-server within ten servers.
DEFAULT_MAX_CONSECUTIVE = 10


@dataclass(frozen=True, slots=True)
class Limit:
    """A number of failures, or a percentage of the targets it applies to."""

    count: int | None = None
    percent: float | None = None

    def allowed(self, total: int) -> int:
        """The most failures within the budget among `total` targets."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(self.percent * total / 100 + 1e-9)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_limit(text: str, option: str) -> Limit:
    """`N` or `N%` for --max-failures / --max-failures-per-project."""
    item = text.strip()
    try:
        if item.endswith("%"):
            percent = float(item[:-1])
            if not (0 <= percent <= 100):
                raise ValueError
            return Limit(percent=percent)
        count = int(item)
        if count < 0:
            raise ValueError
        return Limit(count=count)
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is not a count >= 0 or a percentage in [0, 100]%"
        ) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A target that became final."""

    seq: int  # order in which targets became final (e.g. the state's event id)
    target_id: int
    project_id: str
    succeeded: bool
    error_code: str | None = None


class TripKind(StrEnum):
    RUN_BUDGET = "run_budget"  # --max-failures: nothing more is sent
    PROJECT_BUDGET = "project_budget"  # --max-failures-per-project: this project stops
    CONSECUTIVE = "consecutive"  # --max-consecutive-failures: this project is paused


@dataclass(frozen=True, slots=True)
class Trip:
    kind: TripKind
    project_id: str | None  # None for the run budget
    limit: str  # the option's value, e.g. "2%" or "10"
    failures: tuple[int, ...]  # target ids of the counted failures when it tripped
    code: str | None = None  # the repeated code, for CONSECUTIVE
    hint: str | None = None  # the likely cause, where the code tells it

    @property
    def message(self) -> str:
        if self.kind is TripKind.RUN_BUDGET:
            text = f"--max-failures {self.limit} exceeded: {len(self.failures)} failures"
        elif self.kind is TripKind.PROJECT_BUDGET:
            text = (
                f"--max-failures-per-project {self.limit} exceeded in project "
                f"{self.project_id}: {len(self.failures)} failures"
            )
        else:
            text = (
                f"project {self.project_id} paused: {len(self.failures)} failures in a row "
                f"with {self.code} (--max-consecutive-failures {self.limit})"
            )
        return f"{text}; {self.hint}" if self.hint else text


@dataclass
class _Project:
    failures: list[int] = field(default_factory=list)
    streak_code: str | None = None
    streak: list[int] = field(default_factory=list)


class FailureLedger:
    """Counts failures against the budgets and says which tripped, on which failures."""

    def __init__(
        self,
        fleet_size: int,
        project_sizes: Mapping[str, int],
        *,
        max_failures: Limit | None = None,
        max_failures_per_project: Limit | None = None,
        max_consecutive: int | None = DEFAULT_MAX_CONSECUTIVE,
        acked_through: int = 0,
    ) -> None:
        if max_consecutive is not None and max_consecutive < 1:
            raise UsageError(f"--max-consecutive-failures: {max_consecutive} is not >= 1")
        self._fleet = fleet_size
        self._sizes = dict(project_sizes)
        self._max = max_failures
        self._max_project = max_failures_per_project
        self._max_consecutive = max_consecutive
        self._acked_through = acked_through
        self._failures: list[int] = []
        self._projects: dict[str, _Project] = {}
        self._run_trip: Trip | None = None
        self._project_trips: dict[str, Trip] = {}
        self._paused: dict[str, Trip] = {}
        self.codes: Counter[str] = Counter()  # counted failures by code, for the report
        self.last_seq = 0

    # -- feeding ------------------------------------------------------------

    def record(self, outcome: Outcome) -> list[Trip]:
        """Count one final outcome; returns the trips it caused (usually none)."""
        self.last_seq = max(self.last_seq, outcome.seq)
        if outcome.seq <= self._acked_through:
            return []
        project = self._projects.setdefault(outcome.project_id, _Project())
        if outcome.succeeded:
            project.streak_code, project.streak = None, []
            return []
        if not counts_as_failure(outcome.error_code):
            return []
        self.codes[outcome.error_code or "unknown"] += 1
        self._failures.append(outcome.target_id)
        project.failures.append(outcome.target_id)
        if outcome.error_code != project.streak_code:
            project.streak_code, project.streak = outcome.error_code, []
        project.streak.append(outcome.target_id)
        return self._check(outcome.project_id, project)

    def _check(self, project_id: str, project: _Project) -> list[Trip]:
        trips: list[Trip] = []
        if (
            self._run_trip is None
            and self._max is not None
            and len(self._failures) > self._max.allowed(self._fleet)
        ):
            self._run_trip = Trip(TripKind.RUN_BUDGET, None, str(self._max), tuple(self._failures))
            trips.append(self._run_trip)
        if (
            project_id not in self._project_trips
            and self._max_project is not None
            and len(project.failures)
            > self._max_project.allowed(self._sizes.get(project_id, len(project.failures)))
        ):
            trip = Trip(
                TripKind.PROJECT_BUDGET,
                project_id,
                str(self._max_project),
                tuple(project.failures),
            )
            self._project_trips[project_id] = trip
            trips.append(trip)
        if (
            project_id not in self._paused
            and self._max_consecutive is not None
            and len(project.streak) >= self._max_consecutive
        ):
            trip = Trip(
                TripKind.CONSECUTIVE,
                project_id,
                str(self._max_consecutive),
                tuple(project.streak),
                code=project.streak_code,
                hint=hint(project.streak_code),
            )
            self._paused[project_id] = trip
            trips.append(trip)
        return trips

    # -- asking -------------------------------------------------------------

    @property
    def failures(self) -> int:
        """Failures counted since the last ack."""
        return len(self._failures)

    @property
    def run_trip(self) -> Trip | None:
        return self._run_trip

    def project_trip(self, project_id: str) -> Trip | None:
        """Why this project may not send (budget first, then the breaker), or None."""
        return self._project_trips.get(project_id) or self._paused.get(project_id)

    def trips(self) -> list[Trip]:
        """Every trip so far: for `status`, the report and the exit reason."""
        found = [self._run_trip] if self._run_trip else []
        found += self._project_trips.values()
        found += self._paused.values()
        return found
