"""The run summary: a pure function of the run record and its targets.

`build_summary` walks the targets once and keeps only counters and the list of
durations (one float per final target), so it stays small for 100k+ targets.
`summary_to_dict` is the one definition of what `summary.json` holds; the CLI's
`status --json` prints the same dict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from orchestrator.model import FINAL_STATES, RunInfo, Target, TargetState

# Nearest-rank percentiles reported for target durations, as whole percents.
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)

# An options key containing any of these (case-insensitive) is dropped from
# reports. Plain substrings on purpose: dropping a harmless key such as
# "max_tasks" costs a line of the report, leaking a credential costs far more.
SECRET_KEY_MARKERS: tuple[str, ...] = ("token", "secret", "sk", "password")

UNKNOWN_ERROR_CODE = "unknown"


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


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything summary.json holds; plain data, built by `build_summary`."""

    run_id: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    invocations: int
    state_path: str
    inventory_path: str | None
    inventory_sha256: str
    options: Mapping[str, Any]  # secret-looking keys already dropped
    total: int
    counts: Mapping[str, int]  # every TargetState value, 0 when none
    complete: bool
    failures_by_error_code: Mapping[str, int]  # most frequent first
    duration_s: DurationStats
    requests: Mapping[str, int]
    throttled: int
    generated_at: str


def utc_now_iso() -> str:
    """Now, in the state store's timestamp format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | None) -> datetime | None:
    """An aware datetime for an ISO 8601 string, or None if absent or unreadable.

    A report must not fail over one odd timestamp, so garbage gives None (the
    target then simply has no duration). Naive values are taken as UTC, which
    is what the state store writes.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def target_duration(target: Target) -> float | None:
    """`finished_at - (submitted_at or intent_at)` in seconds, for final targets only."""
    if not target.is_final:
        return None
    start = parse_timestamp(target.submitted_at or target.intent_at)
    end = parse_timestamp(target.finished_at)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def nearest_rank(sorted_values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent`%
    of the values at or below it, i.e. `sorted_values[ceil(percent/100 * n) - 1]`.

    Always one of the observed values, never interpolated; integer arithmetic
    keeps e.g. p90 of 1..100 at exactly 90 instead of drifting on float error.
    """
    if not sorted_values:
        raise ValueError("no values")
    rank = -(-percent * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[max(rank, 1) - 1]


def duration_stats(durations: Iterable[float]) -> DurationStats:
    """Percentiles, max and mean of `durations`, rounded to milliseconds."""
    values = sorted(durations)
    if not values:
        return DurationStats(count=0)
    by_percent = {p: round(nearest_rank(values, p), 3) for p in PERCENTILES}
    return DurationStats(
        count=len(values),
        p50=by_percent[50],
        p90=by_percent[90],
        p95=by_percent[95],
        p99=by_percent[99],
        max=round(values[-1], 3),
        mean=round(math.fsum(values) / len(values), 3),
    )


def is_secret_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def safe_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` without secret-looking keys, at any depth of nested mappings."""
    return {
        str(key): safe_options(value) if isinstance(value, Mapping) else value
        for key, value in options.items()
        if not is_secret_key(key)
    }


def build_summary(
    run: RunInfo, targets: Iterable[Target], *, generated_at: str | None = None
) -> Summary:
    """Summarise a run in one pass over `targets`.

    Pure apart from `generated_at`, which defaults to the current time; pass it
    to get a reproducible result. `complete` is true when every target is final
    (so also for zero targets: there is nothing left to do).
    """
    counts: Counter[TargetState] = Counter()
    failures: Counter[str] = Counter()
    durations: list[float] = []
    for target in targets:
        counts[target.state] += 1
        if target.state == TargetState.FAILED:
            failures[target.error_code or UNKNOWN_ERROR_CODE] += 1
        duration = target_duration(target)
        if duration is not None:
            durations.append(duration)

    total = sum(counts.values())
    final = sum(counts[state] for state in FINAL_STATES)
    # Most frequent first, then by code, so the order is stable between runs.
    by_code = dict(sorted(failures.items(), key=lambda item: (-item[1], item[0])))
    return Summary(
        run_id=run.run_id,
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        invocations=run.invocations,
        state_path=run.state_path,
        inventory_path=run.inventory_path,
        inventory_sha256=run.inventory_sha256,
        options=MappingProxyType(safe_options(run.options)),
        total=total,
        counts=MappingProxyType({state.value: counts[state] for state in TargetState}),
        complete=final == total,
        failures_by_error_code=MappingProxyType(by_code),
        duration_s=duration_stats(durations),
        requests=MappingProxyType(dict(run.requests)),
        throttled=run.throttled,
        generated_at=generated_at if generated_at is not None else utc_now_iso(),
    )


def _plain(value: Any) -> Any:
    # MappingProxyType is not JSON-serialisable; callers get ordinary dicts.
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    """What summary.json contains, as JSON-ready plain data, in a fixed key order."""
    stats = summary.duration_s
    return {
        "run_id": summary.run_id,
        "created_at": summary.created_at,
        "started_at": summary.started_at,
        "ended_at": summary.ended_at,
        "invocations": summary.invocations,
        "state_path": summary.state_path,
        "inventory_path": summary.inventory_path,
        "inventory_sha256": summary.inventory_sha256,
        "options": _plain(summary.options),
        "total": summary.total,
        "counts": _plain(summary.counts),
        "complete": summary.complete,
        "failures_by_error_code": _plain(summary.failures_by_error_code),
        "duration_s": {
            "p50": stats.p50,
            "p90": stats.p90,
            "p95": stats.p95,
            "p99": stats.p99,
            "max": stats.max,
            "mean": stats.mean,
            "count": stats.count,
        },
        "requests": _plain(summary.requests),
        "throttled": summary.throttled,
        "generated_at": summary.generated_at,
    }
