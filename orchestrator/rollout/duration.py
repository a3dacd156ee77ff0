"""How long a reinstall is expected to take, and whether one may still start.

The estimate is a high percentile of this state file's finished jobs once
there are enough of them (one fleet, one image, one region behave alike), and
the operator's `--expected-job-seconds` before that. The cutoff is the
duration-aware rule of maintenance windows: send only what can be expected to
end before the window (or the deadline) closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_EXPECTED_JOB_SECONDS",
    "MIN_SAMPLES",
    "PERCENTILE",
    "Estimate",
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


def may_start(now: datetime, expected_seconds: float, closes_at: datetime | None) -> bool:
    """Whether a reinstall started at `now` can be expected to end by `closes_at`."""
    # In UTC: same-zone aware arithmetic is wall-clock arithmetic, wrong across DST.
    if closes_at is None:
        return True
    return now.astimezone(UTC) + timedelta(seconds=expected_seconds) <= closes_at
