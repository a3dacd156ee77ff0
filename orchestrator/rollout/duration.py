"""How long a reinstall is expected to take, and whether one may still start.

The estimate is a high percentile of this state file's finished jobs once
there are enough of them (one fleet, one image, one region behave alike), and
the operator's `--expected-job-seconds` before that. The cutoff is the
duration-aware rule of maintenance windows: send only what can be expected to
end before the window (or the deadline) closes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_EXPECTED_JOB_SECONDS",
    "MIN_SAMPLES",
    "PERCENTILE",
    "Estimate",
    "RunningPercentile",
    "expected_job_seconds",
    "may_start",
]

# An ECS reinstall typically takes a few minutes; 15 minutes errs on the side
# of not starting one that would overrun the window.
DEFAULT_EXPECTED_JOB_SECONDS = 900.0
MIN_SAMPLES = 20  # finished jobs before the learned figure replaces the default
PERCENTILE = 0.9


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float
    source: str  # for the log and the report: where the figure comes from


def expected_job_seconds(
    durations: Sequence[float],
    fallback: float = DEFAULT_EXPECTED_JOB_SECONDS,
    *,
    min_samples: int = MIN_SAMPLES,
    percentile: float = PERCENTILE,
) -> Estimate:
    """The p90 (nearest rank) of finished jobs' durations, or `fallback` with too few."""
    usable = sorted(d for d in durations if math.isfinite(d) and d >= 0)
    if len(usable) < min_samples:
        return Estimate(
            fallback,
            f"--expected-job-seconds {fallback:g} (fewer than {min_samples} finished jobs: "
            f"{len(usable)})",
        )
    rank = max(1, math.ceil(percentile * len(usable)))
    return Estimate(usable[rank - 1], f"p{round(percentile * 100)} of {len(usable)} finished jobs")


class RunningPercentile:
    """The nearest-rank percentile of a growing set of durations, kept as they come.

    `expected_job_seconds` sorts every duration; a gate asking again and again
    during a million-target run would sort a million floats every few seconds
    (CPU per target growing with the fleet). Two heaps split the values at the
    rank instead: `_low` (a max-heap, negated) holds the `rank` smallest, `_high`
    the rest, so an add costs O(log n) and the answer is `_low`'s top: the same
    value as `expected_job_seconds` gives for the same durations.
    """

    def __init__(self, durations: Iterable[float] = (), percentile: float = PERCENTILE) -> None:
        self.percentile = percentile
        self._low: list[float] = []  # negated: the largest of the low part on top
        self._high: list[float] = []
        self._said: tuple[tuple[int, float, int], Estimate] | None = None  # the last answer, reused
        for value in durations:
            self.add(value)

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def add(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            return  # not a usable duration, as in expected_job_seconds
        if self._low and value <= -self._low[0]:
            heapq.heappush(self._low, -value)
        else:
            heapq.heappush(self._high, value)
        rank = max(1, math.ceil(self.percentile * len(self)))
        while len(self._low) > rank:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        while len(self._low) < rank and self._high:
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def estimate(self, fallback: float, *, min_samples: int = MIN_SAMPLES) -> Estimate:
        """What `expected_job_seconds(durations, fallback)` says, without sorting."""
        n = len(self)
        key = (n, fallback, min_samples)
        if self._said is not None and self._said[0] == key:
            return self._said[1]  # asked once per target sent: no new text each time
        if n < min_samples:
            estimate = Estimate(
                fallback,
                f"--expected-job-seconds {fallback:g} (fewer than {min_samples} finished jobs: "
                f"{n})",
            )
        else:
            estimate = Estimate(
                -self._low[0], f"p{round(self.percentile * 100)} of {n} finished jobs"
            )
        self._said = (key, estimate)
        return estimate


def may_start(now: datetime, expected_seconds: float, closes_at: datetime | None) -> bool:
    """Whether a reinstall started at `now` can be expected to end by `closes_at`."""
    # In UTC: same-zone aware arithmetic is wall-clock arithmetic, wrong across DST.
    if closes_at is None:
        return True
    return now.astimezone(UTC) + timedelta(seconds=expected_seconds) <= closes_at
