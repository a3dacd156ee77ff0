"""Duration statistics of any number of targets, in bounded memory, exactly as a sort gives them.

The report shows nearest-rank percentiles, the max, the mean and a histogram
of the final targets' durations. Keeping one float per target and sorting them
costs about 40 bytes per target (60 MB at a million); these figures only need
the values in order, twice. So `DurationCollector` keeps the first `SPILL_AT`
values in a list and, beyond that, moves them to a private scratch database that
sorts them on disk (`orchestrator.store.scratch`: the store owns every query).
Both paths walk the sorted values through the same code (`stats_of_sorted`), so
every figure is the same whichever path was taken: the percentiles are observed
values, the mean is `math.fsum` (exactly rounded whatever the order), the
histogram counts each value into the same bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from orchestrator.store.scratch import ScratchSort

__all__ = [
    "HISTOGRAM_BINS",
    "PERCENTILES",
    "SPILL_AT",
    "DurationCollector",
    "DurationStats",
    "duration_stats",
    "histogram",
    "nearest_rank",
    "stats_of_sorted",
]

# Nearest-rank percentiles reported for target durations, as whole percents.
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)

# Bars of the duration histogram.
HISTOGRAM_BINS = 24

# Values kept in memory before they move to the scratch database (~160 KB of floats).
SPILL_AT = 4096


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Seconds from submission (or intent) to the end, over final targets."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    # (low, high, count) per bar; the last bar also holds everything above `high`.
    histogram: tuple[tuple[float, float, int], ...] = ()
    from_job_times: int = 0  # durations taken from the job's own begin/end times


def _rank_index(n: int, percent: int) -> int:
    """Index of the nearest-rank percentile in `n` sorted values (integer arithmetic)."""
    rank = -(-percent * n // 100)  # ceil without floats
    return max(rank, 1) - 1


def nearest_rank(sorted_values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent`%
    of the values at or below it, i.e. `sorted_values[ceil(percent/100 * n) - 1]`.

    Always one of the observed values, never interpolated; integer arithmetic
    keeps e.g. p90 of 1..100 at exactly 90 instead of drifting on float error.
    """
    if not sorted_values:
        raise ValueError("no values")
    return sorted_values[_rank_index(len(sorted_values), percent)]


def _bars(
    low: float, top: float, p99: float, n: int, values: Iterable[float], bins: int
) -> tuple[tuple[float, float, int], ...]:
    """Equal-width bars from `low` up to p99 (or the max), counting `values`.

    A few stragglers (one job that hit --job-timeout among thousands of 2 s
    jobs) would otherwise squeeze every other job into the first bar, so when
    the max is far above p99 the last bar is open-ended and holds them.
    """
    high = p99 if top > 2 * p99 and p99 > low else top
    width = (high - low) / bins
    if width <= 0:  # one value, or a spread too small for a float to divide
        return ((round(low, 3), round(top, 3), n),)
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return tuple(
        (round(low + i * width, 3), round(low + (i + 1) * width, 3), count)
        for i, count in enumerate(counts)
    )


def histogram(
    sorted_values: Sequence[float], bins: int = HISTOGRAM_BINS
) -> tuple[tuple[float, float, int], ...]:
    """Equal-width bars of `sorted_values` (see `_bars`)."""
    if not sorted_values:
        return ()
    low, top = sorted_values[0], sorted_values[-1]
    return _bars(low, top, nearest_rank(sorted_values, 99), len(sorted_values), sorted_values, bins)


def stats_of_sorted(
    n: int, ordered: Callable[[], Iterable[float]], *, from_job_times: int = 0
) -> DurationStats:
    """Percentiles, max, mean and histogram of `n` values that `ordered()` yields in
    ascending order (called at most twice), rounded to milliseconds."""
    if n == 0:
        return DurationStats(count=0)
    indexes = {p: _rank_index(n, p) for p in PERCENTILES}
    wanted = {0, n - 1, *indexes.values()}
    found: dict[int, float] = {}

    def noting(values: Iterable[float]) -> Iterator[float]:
        for i, value in enumerate(values):
            if i in wanted:
                found[i] = value
            yield value

    total = math.fsum(noting(ordered()))  # exactly rounded: the order does not matter
    low, top = found[0], found[n - 1]
    return DurationStats(
        count=n,
        p50=round(found[indexes[50]], 3),
        p90=round(found[indexes[90]], 3),
        p95=round(found[indexes[95]], 3),
        p99=round(found[indexes[99]], 3),
        max=round(top, 3),
        mean=round(total / n, 3),
        histogram=_bars(low, top, found[indexes[99]], n, _Lazy(ordered), HISTOGRAM_BINS),
        from_job_times=from_job_times,
    )


class _Lazy:
    """`ordered()` only once the bars ask for the values (a single-bar case never does)."""

    def __init__(self, ordered: Callable[[], Iterable[float]]) -> None:
        self._ordered = ordered

    def __iter__(self) -> Iterator[float]:
        return iter(self._ordered())


class DurationCollector:
    """Collects durations one by one; `stats()` gives their `DurationStats`.

    Memory: at most `spill_at` floats, then a `ScratchSort` (a scratch SQLite file
    with a small page cache). Close it (or use `with`) to drop the file.
    """

    def __init__(self, spill_at: int = SPILL_AT) -> None:
        self._spill_at = max(spill_at, 0)
        self._values: list[float] = []
        self._scratch: ScratchSort | None = None
        self.count = 0
        self.from_job_times = 0

    def __enter__(self) -> DurationCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, value: float, *, from_job_times: bool = False) -> None:
        self._values.append(value)
        self.count += 1
        self.from_job_times += from_job_times
        if len(self._values) > self._spill_at:
            self._spill()

    def stats(self) -> DurationStats:
        if self._scratch is None:
            self._values.sort()
            values = self._values
            return stats_of_sorted(len(values), lambda: values, from_job_times=self.from_job_times)
        self._spill()
        return stats_of_sorted(
            self.count, self._scratch.ascending, from_job_times=self.from_job_times
        )

    def close(self) -> None:
        self._values = []
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def _spill(self) -> None:
        if self._scratch is None:
            self._scratch = ScratchSort()
        if self._values:
            self._scratch.add(self._values)
            self._values.clear()


def duration_stats(durations: Iterable[float], *, from_job_times: int = 0) -> DurationStats:
    """Percentiles, max, mean and histogram of `durations`, rounded to milliseconds."""
    with DurationCollector() as collector:
        for value in durations:
            collector.add(value)
        return replace(collector.stats(), from_job_times=from_job_times)
