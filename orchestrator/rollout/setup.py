"""Setting a run's rollout up from its state file: the fixed plan, the ack, the replayed ledger.

At the first run the waves are assigned (inventory order) and the plan is
written to the state file; every later invocation reads it back, so a resume
after a kill, the next night or from another shell continues the same plan.
The failure ledger is rebuilt by replaying every final target in the order it
became final, so a trip survives a restart; `--ack-failures` records the
point up to which failures stop counting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.model import TargetState
from orchestrator.rollout.budget import FailureLedger, Outcome
from orchestrator.rollout.gate import Confirm, RolloutGate
from orchestrator.rollout.options import PLAN_META_KEY, RolloutOptions
from orchestrator.rollout.waves import WaveCounts, assign_waves, wave_sizes
from orchestrator.state import FinalRecord

__all__ = ["ACK_META_KEY", "Prepared", "RolloutSource", "fixed_plan", "prepare_rollout"]

ACK_META_KEY = "rollout_acked_through"  # events up to this id no longer count as failures


class RolloutSource(Protocol):
    """What the rollout needs of a state store (StateStore, or the PostgreSQL one)."""

    def meta_value(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def waves_fixed(self) -> bool: ...
    def fix_waves(self, waves: list[int]) -> None: ...
    def sizes(self, column: str) -> dict[Any, int]: ...
    def final_records(self) -> Iterable[FinalRecord]: ...
    def last_event_id(self) -> int: ...


@dataclass(frozen=True)
class Prepared:
    gate: RolloutGate
    options: RolloutOptions  # on the fixed plan


def fixed_plan(store: RolloutSource) -> dict[str, Any] | None:
    raw = store.meta_value(PLAN_META_KEY)
    return json.loads(raw) if raw else None


def prepare_rollout(
    store: RolloutSource,
    options: RolloutOptions,
    *,
    ack: bool = False,
    confirm: Confirm | None = None,
    now: datetime | None = None,
) -> Prepared:
    """Fix (or read back) the plan, apply --ack-failures, and build the run's gate."""
    plan = fixed_plan(store)
    options = options.check() if plan is None else options.with_plan(plan).check()
    waves, canary = options.wave_sizes()
    if plan is None or not store.waves_fixed():
        total = sum(store.sizes("wave").values())
        store.fix_waves(assign_waves(total, waves, canary))
        store.set_meta(
            PLAN_META_KEY,
            json.dumps({**options.plan(), "sizes": wave_sizes(total, waves, canary)}),
        )
    run_limit, project_limit, consecutive = options.budgets()
    projects = store.sizes("project_id")
    acked = int(store.meta_value(ACK_META_KEY) or 0)

    def replayed(acked_through: int) -> _Replayed:
        book = FailureLedger(
            sum(projects.values()),
            projects,
            max_failures=run_limit,
            max_failures_per_project=project_limit,
            max_consecutive=consecutive,
            acked_through=acked_through,
        )
        return _replay(store.final_records(), book, acked_through)

    past = replayed(acked)
    acknowledged = None
    if ack:
        acknowledged = (past.book.failures, past.book.trips())
        acked = store.last_event_id()
        store.set_meta(ACK_META_KEY, str(acked))
        past = replayed(acked)
    gate = RolloutGate(
        options.settings(),
        past.book,
        past.wave_counts(store.sizes("wave")),
        durations=past.durations,
        fallback_seconds=options.expected_job_seconds,
        started_at=now or datetime.now(UTC),
        acked_through=acked,
        next_seq=max(store.last_event_id(), acked) + 1,
        started_waves=past.started_waves,
        confirm=confirm,
    )
    if acknowledged is not None:
        gate.note_ack(*acknowledged)
    return Prepared(gate, options)


@dataclass
class _Replayed:
    """What one pass over the final targets, in the order they ended, gives the gate."""

    book: FailureLedger
    final: dict[int, int] = field(default_factory=dict)  # per wave
    failed: dict[int, int] = field(default_factory=dict)  # per wave, after the ack
    last: dict[int, datetime] = field(default_factory=dict)  # per wave: the latest end
    durations: list[float] = field(default_factory=list)  # intent to end, succeeded ones
    started_waves: set[int] = field(default_factory=set)

    def wave_counts(self, totals: dict[Any, int]) -> dict[int, WaveCounts]:
        counts = {int(w or 1): WaveCounts(total=n) for w, n in totals.items()}
        return {
            w: WaveCounts(c.total, self.final.get(w, 0), self.failed.get(w, 0), self.last.get(w))
            for w, c in counts.items()
        }


def _replay(finals: Iterable[FinalRecord], book: FailureLedger, acked: int) -> _Replayed:
    """One pass over the final targets (streamed from the store, never held together):
    the failure ledger, the per-wave counts, the durations, the waves already begun."""
    past = _Replayed(book)
    for r in finals:
        if r.state is not TargetState.SKIPPED:
            book.record(
                Outcome(
                    r.seq, r.target_id, r.project_id, r.state is TargetState.SUCCEEDED,
                    r.error_code,
                )
            )  # fmt: skip
        w = r.wave or 1
        past.started_waves.add(w)
        past.final[w] = past.final.get(w, 0) + 1
        if r.state is TargetState.FAILED and r.seq > acked:
            past.failed[w] = past.failed.get(w, 0) + 1
        end = _parse(r.finished_at)
        if end is not None and (w not in past.last or end > past.last[w]):
            past.last[w] = end
        # Intent to end of every succeeded target: what the cutoff has to predict.
        start = _parse(r.intent_at)
        if r.state is TargetState.SUCCEEDED and start is not None and end is not None:
            past.durations.append((end - start).total_seconds())
    return past


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
