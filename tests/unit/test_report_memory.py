"""The report in bounded memory: durations beyond a few thousand go to a scratch file,
and every figure stays what a full sort of every duration gives.

The memory bounds are tracemalloc peaks (Python's own allocations) over 20,000
targets streamed from a generator, as the state store's paged reads stream them.
Before the collector, the summary kept one float per final target and sorted a
copy: 880 KiB of peak for 20,000 targets, growing by 40 bytes per target.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import build_summary, target_duration, write_report
from orchestrator.report.durations import (
    HISTOGRAM_BINS,
    PERCENTILES,
    SPILL_AT,
    DurationCollector,
    DurationStats,
    duration_stats,
)

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
FLEET = 20_000
# Peak KiB over FLEET targets: the old code needed ~880 for both; now ~150 and ~370.
SUMMARY_PEAK_KIB = 400
REPORT_PEAK_KIB = 600


def reference_stats(durations: Sequence[float]) -> DurationStats:
    """The figures as the report computed them before the collector: sort everything."""
    values = sorted(durations)
    if not values:
        return DurationStats(count=0)

    def rank(p: int) -> float:
        return values[max(-(-p * len(values) // 100), 1) - 1]

    low, top, p99 = values[0], values[-1], rank(99)
    high = p99 if top > 2 * p99 and p99 > low else top
    width = (high - low) / HISTOGRAM_BINS
    if width <= 0:
        bars: tuple[tuple[float, float, int], ...] = ((round(low, 3), round(top, 3), len(values)),)
    else:
        counts = [0] * HISTOGRAM_BINS
        for value in values:
            counts[min(int((value - low) / width), HISTOGRAM_BINS - 1)] += 1
        bars = tuple(
            (round(low + i * width, 3), round(low + (i + 1) * width, 3), n)
            for i, n in enumerate(counts)
        )
    by = {p: round(rank(p), 3) for p in PERCENTILES}
    return DurationStats(
        count=len(values),
        p50=by[50],
        p90=by[90],
        p95=by[95],
        p99=by[99],
        max=round(top, 3),
        mean=round(math.fsum(values) / len(values), 3),
        histogram=bars,
    )


durations_strategy = st.lists(
    st.one_of(
        st.floats(min_value=-5, max_value=1e6, allow_nan=False),
        # Repeats, a far straggler, and a spread too small to divide (5e-324 above 0).
        st.sampled_from([0.0, 1.5, 1.5, 2.0, 1e9, 5e-324]),
        st.integers(min_value=0, max_value=10**9).map(lambda us: us / 1_000_000),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(durations_strategy, st.sampled_from([0, 1, 7, SPILL_AT]))
def test_collector_gives_the_figures_of_a_full_sort(durations: list[float], spill_at: int) -> None:
    """In memory or spilled to the scratch file (spill_at 0: every value), the same figures."""
    with DurationCollector(spill_at=spill_at) as collector:
        for value in durations:
            collector.add(value)
        assert collector.stats() == reference_stats(durations)


def test_collector_counts_job_times_and_spills_many() -> None:
    values = [((i * 7919) % 10007) / 1000 for i in range(3 * SPILL_AT)]
    with DurationCollector() as collector:
        for i, value in enumerate(values):
            collector.add(value, from_job_times=i % 3 == 0)
        stats = collector.stats()
    assert stats.from_job_times == SPILL_AT
    assert stats == DurationStats(
        **{**_fields(reference_stats(values)), "from_job_times": SPILL_AT}
    )
    assert duration_stats(values, from_job_times=5).from_job_times == 5


def _fields(stats: DurationStats) -> dict[str, object]:
    return {name: getattr(stats, name) for name in DurationStats.__slots__}


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fleet(count: int) -> Iterator[Target]:
    """Final targets made one at a time, as `StateStore.iter_targets` pages them."""
    for n in range(1, count + 1):
        failed = n % 5000 == 0
        yield Target(
            id=n,
            spec=TargetSpec(
                project_id=f"p{n % 7}", server_id=f"s{n}", keyname="k", userid="u", line=n + 1
            ),
            state=TargetState.FAILED if failed else TargetState.SUCCEEDED,
            job_id=f"j{n}",
            intent_at=iso(n * 0.01),
            submitted_at=iso(n * 0.01 + 0.05),
            finished_at=iso(n * 0.01 + 1 + (n % 977) * 0.013),
            error_code="Ecs.0101" if failed else None,
        )


RUN = RunInfo(
    run_id="r1",
    state_path="s.db",
    inventory_path="inv.csv",
    inventory_sha256="00",
    created_at=iso(0),
    started_at=iso(0),
    ended_at=iso(300),
    invocations=1,
)


def peak_kib(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] // 1024
    finally:
        tracemalloc.stop()


def test_summary_of_20k_targets_stays_small() -> None:
    seen: list[DurationStats] = []
    peak = peak_kib(lambda: seen.append(build_summary(RUN, fleet(FLEET)).duration_s))
    assert peak < SUMMARY_PEAK_KIB
    stats = seen[0]
    assert stats.count == FLEET
    # The same figures as sorting all of them.
    durations = [target_duration(t) for t in fleet(FLEET)]
    expected = reference_stats([d for d in durations if d is not None])
    assert stats == DurationStats(**{**_fields(expected), "from_job_times": 0})


@pytest.mark.timeout(60)
def test_report_of_20k_targets_stays_small(tmp_path: Path) -> None:
    peak = peak_kib(lambda: write_report(tmp_path, RUN, lambda: fleet(FLEET)))
    assert peak < REPORT_PEAK_KIB
    lines = (tmp_path / "r1" / "targets.csv").read_text().count("\n")
    assert lines == FLEET + 1


def test_a_spread_too_small_to_divide_is_one_bar() -> None:
    with DurationCollector(spill_at=0) as collector:
        collector.add(0.0)
        collector.add(5e-324)
        stats = collector.stats()
    assert stats.count == 2 and stats.histogram == ((0.0, 0.0, 2),)
