"""The run summary: a pure function of the run record and its targets.

`build_summary` walks the targets once and keeps only counters; the durations go
to a `DurationCollector` (durations.py), which holds a bounded number of them in
memory and the rest in a scratch file, so a million targets cost no more memory
than a few thousand.
`summary_to_dict` is the one definition of what `summary.json` holds; the CLI's
`status --json` prints the same dict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.model import FINAL_STATES, RunInfo, Target, TargetState
from orchestrator.report.durations import DurationCollector, DurationStats

# Defined here before they had their own module: still importable from here.
from orchestrator.report.durations import histogram as histogram
from orchestrator.report.durations import nearest_rank as nearest_rank
from orchestrator.report.history import History, history_to_dict
from orchestrator.report.times import parse_timestamp, utc_now_iso

# An options key containing any of these (case-insensitive) is dropped from
# reports. Plain substrings on purpose: dropping a harmless key such as
# "max_tasks" costs a line of the report, leaking a credential costs far more.
SECRET_KEY_MARKERS: tuple[str, ...] = ("token", "secret", "sk", "password")

UNKNOWN_ERROR_CODE = "unknown"

# Distinct values counted for --group-by; the rest are counted under OTHER_GROUP,
# so grouping by a per-server column (say "name") cannot hold a million keys.
GROUP_CAP = 5000
OTHER_GROUP = "(other values)"
EMPTY_GROUP = "(empty)"

# Columns every target has, usable with --group-by besides the inventory's extras.
BUILTIN_GROUP_COLUMNS: tuple[str, ...] = ("project_id", "region", "mode", "error_code")


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
    return _duration(target)[0]


# The report's one pass asks for each target's duration three times in a row (the
# CSV row, the page's row, the summary): the latest answer is kept for that target
# object (a Target is frozen, and the slot holds it, so its identity is not reused).
_latest: tuple[Target | None, tuple[float | None, bool]] = (None, (None, False))


def _duration(target: Target) -> tuple[float | None, bool]:
    """(`target_duration`, whether it came from the job's own times)."""
    global _latest
    known, answer = _latest
    if known is target:
        return answer
    answer = (None, False)
    if target.is_final:
        own = _job_duration(target)
        if own is not None:
            answer = (own, True)
        else:
            start = parse_timestamp(target.submitted_at or target.intent_at)
            end = parse_timestamp(target.finished_at)
            if start is not None and end is not None:
                answer = ((end - start).total_seconds(), False)
    _latest = (target, answer)
    return answer


def _job_duration(target: Target) -> float | None:
    begin = parse_timestamp(target.job_begin_at)
    end = parse_timestamp(target.job_end_at)
    if begin is None or end is None or end < begin:
        return None
    return (end - begin).total_seconds()


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
    return columns_to_group_by(run.extra_columns)


def columns_to_group_by(extra_columns: Iterable[str]) -> tuple[str, ...]:
    """The columns `--group-by` accepts for targets with these inventory columns."""
    return (
        *BUILTIN_GROUP_COLUMNS,
        *(c for c in extra_columns if c not in BUILTIN_GROUP_COLUMNS),
    )


def check_group_by(run: RunInfo, column: str | None) -> None:
    """Raise UsageError unless `column` is None or a column the targets have."""
    check_group_column(run.extra_columns, column)


def check_group_column(extra_columns: Iterable[str], column: str | None) -> None:
    """The same, for an inventory being read (before its state file exists)."""
    columns = columns_to_group_by(extra_columns)
    if column is not None and column not in columns:
        raise UsageError(
            f"--group-by {column!r}: no such column; choose one of " + ", ".join(columns)
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
    # Durations go to a collector that keeps a bounded number in memory (durations.py).
    with DurationCollector() as durations:
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
            duration, from_job_times = _duration(target)
            if duration is not None:
                durations.add(duration, from_job_times=from_job_times)
        duration_s = durations.stats()

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
        duration_s=duration_s,
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
