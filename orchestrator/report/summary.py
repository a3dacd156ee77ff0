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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.model import FINAL_STATES, RunInfo, Target, TargetState
from orchestrator.report.history import History, history_to_dict
from orchestrator.report.times import parse_timestamp, utc_now_iso

# Nearest-rank percentiles reported for target durations, as whole percents.
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)

# An options key containing any of these (case-insensitive) is dropped from
# reports. Plain substrings on purpose: dropping a harmless key such as
# "max_tasks" costs a line of the report, leaking a credential costs far more.
SECRET_KEY_MARKERS: tuple[str, ...] = ("token", "secret", "sk", "password")

UNKNOWN_ERROR_CODE = "unknown"

# Bars of the duration histogram.
HISTOGRAM_BINS = 24

# Distinct values counted for --group-by; the rest are counted under OTHER_GROUP,
# so grouping by a per-server column (say "name") cannot hold a million keys.
GROUP_CAP = 5000
OTHER_GROUP = "(other values)"
EMPTY_GROUP = "(empty)"

# Columns every target has, usable with --group-by besides the inventory's extras.
BUILTIN_GROUP_COLUMNS: tuple[str, ...] = ("project_id", "region", "mode", "error_code")


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
    failures_by_project: Mapping[str, int] = field(default_factory=dict)  # most frequent first
    group_by: str | None = None
    # group value -> counts by state (non-zero only), largest groups first
    groups: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    history: History | None = None  # every invocation, when the caller read them
    # --only-project/--exclude/--limit of the run: what was left out ({}: nothing)
    selection: Mapping[str, Any] = field(default_factory=dict)
    rollout: Mapping[str, Any] | None = None  # orchestrator.rollout.report.rollout_summary


def target_duration(target: Target) -> float | None:
    """How long the reinstall took, in seconds, for final targets only.

    The job's own `job_begin_at`/`job_end_at` when the service gave both: they
    measure the reinstall, not how soon we happened to poll. Otherwise
    `finished_at - (submitted_at or intent_at)`, as the orchestrator saw it.
    """
    if not target.is_final:
        return None
    own = _job_duration(target)
    if own is not None:
        return own
    start = parse_timestamp(target.submitted_at or target.intent_at)
    end = parse_timestamp(target.finished_at)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _job_duration(target: Target) -> float | None:
    begin = parse_timestamp(target.job_begin_at)
    end = parse_timestamp(target.job_end_at)
    if begin is None or end is None or end < begin:
        return None
    return (end - begin).total_seconds()


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


def duration_stats(durations: Iterable[float], *, from_job_times: int = 0) -> DurationStats:
    """Percentiles, max, mean and histogram of `durations`, rounded to milliseconds."""
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
        histogram=histogram(values),
        from_job_times=from_job_times,
    )


def histogram(
    sorted_values: Sequence[float], bins: int = HISTOGRAM_BINS
) -> tuple[tuple[float, float, int], ...]:
    """Equal-width bars from the smallest value up to p99 (or the max).

    A few stragglers (one job that hit --job-timeout among thousands of 2 s
    jobs) would otherwise squeeze every other job into the first bar, so when
    the max is far above p99 the last bar is open-ended and holds them.
    """
    if not sorted_values:
        return ()
    low, top = sorted_values[0], sorted_values[-1]
    p99 = nearest_rank(sorted_values, 99)
    high = p99 if top > 2 * p99 and p99 > low else top
    if high <= low:
        return ((round(low, 3), round(top, 3), len(sorted_values)),)
    width = (high - low) / bins
    counts = [0] * bins
    for value in sorted_values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return tuple(
        (round(low + i * width, 3), round(low + (i + 1) * width, 3), n)
        for i, n in enumerate(counts)
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


def group_columns(run: RunInfo) -> tuple[str, ...]:
    """The columns `--group-by` accepts for this run."""
    return (
        *BUILTIN_GROUP_COLUMNS,
        *(c for c in run.extra_columns if c not in BUILTIN_GROUP_COLUMNS),
    )


def check_group_by(run: RunInfo, column: str | None) -> None:
    """Raise UsageError unless `column` is None or a column the targets have."""
    if column is not None and column not in group_columns(run):
        raise UsageError(
            f"--group-by {column!r}: no such column; choose one of " + ", ".join(group_columns(run))
        )


def group_value(target: Target, column: str) -> str:
    """The target's value in `column` (a built-in one or an inventory extra)."""
    if column == "project_id":
        value: str | None = target.project_id
    elif column == "region":
        value = target.spec.region
    elif column == "mode":
        value = target.spec.mode
    elif column == "error_code":
        value = target.error_code
    else:
        value = target.spec.extra.get(column)
    return value if value else EMPTY_GROUP


def _by_count(counter: Mapping[str, int]) -> dict[str, int]:
    # Most frequent first, then by key, so the order is stable between runs.
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def build_summary(
    run: RunInfo,
    targets: Iterable[Target],
    *,
    generated_at: str | None = None,
    group_by: str | None = None,
    history: History | None = None,
    rollout: Mapping[str, Any] | None = None,
) -> Summary:
    """Summarise a run in one pass over `targets`.

    Pure apart from `generated_at`, which defaults to the current time; pass it
    to get a reproducible result. `complete` is true when every target is final
    (so also for zero targets: there is nothing left to do). `group_by` names a
    column (see `group_columns`) to count states by; `history` is passed through.
    """
    check_group_by(run, group_by)
    counts: Counter[TargetState] = Counter()
    failures: Counter[str] = Counter()
    failed_projects: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = {}
    durations: list[float] = []
    from_job_times = 0
    for target in targets:
        counts[target.state] += 1
        if target.state == TargetState.FAILED:
            failures[target.error_code or UNKNOWN_ERROR_CODE] += 1
            failed_projects[target.project_id] += 1
        if group_by is not None:
            key = group_value(target, group_by)
            if key not in groups and len(groups) >= GROUP_CAP:
                key = OTHER_GROUP
            groups.setdefault(key, Counter())[target.state.value] += 1
        duration = target_duration(target)
        if duration is not None:
            durations.append(duration)
            if _job_duration(target) is not None:
                from_job_times += 1

    total = sum(counts.values())
    final = sum(counts[state] for state in FINAL_STATES)
    ordered_groups = sorted(groups.items(), key=lambda item: (-item[1].total(), item[0]))
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
        failures_by_error_code=MappingProxyType(_by_count(failures)),
        duration_s=duration_stats(durations, from_job_times=from_job_times),
        requests=MappingProxyType(dict(run.requests)),
        throttled=run.throttled,
        generated_at=generated_at if generated_at is not None else utc_now_iso(),
        failures_by_project=MappingProxyType(_by_count(failed_projects)),
        group_by=group_by,
        groups=MappingProxyType(
            {
                key: MappingProxyType({s.value: c[s.value] for s in TargetState if c[s.value]})
                for key, c in ordered_groups
            }
        ),
        history=history,
        selection=MappingProxyType(dict(run.selection)),
        rollout=rollout,
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
        "failures_by_project": _plain(summary.failures_by_project),
        "duration_source": {
            "job_times": stats.from_job_times,
            "observed": stats.count - stats.from_job_times,
        },
        "group_by": summary.group_by,
        "groups": _plain(summary.groups),
        "campaign": history_to_dict(summary.history) if summary.history else None,
        "selection": _plain(summary.selection) or None,
        "rollout": _plain(summary.rollout) if summary.rollout is not None else None,
    }
