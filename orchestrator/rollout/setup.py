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
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.model import TargetState
from orchestrator.report.times import parse_timestamp
from orchestrator.rollout.budget import FailureLedger, Outcome
from orchestrator.rollout.gate import DURATIONS_KEPT, Confirm, RolloutGate
from orchestrator.rollout.options import PLAN_META_KEY, RolloutOptions
from orchestrator.rollout.waves import WaveCounts, assign_waves, wave_sizes
from orchestrator.store.records import FinalRecord

__all__ = ["ACK_META_KEY", "Prepared", "RolloutSource", "fixed_plan", "prepare_rollout"]

ACK_META_KEY = "rollout_acked_through"  # events up to this id no longer count as failures


class RolloutSource(Protocol):
    """What the rollout needs of a state store (StateStore, or the PostgreSQL one)."""

    def meta_value(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def waves_fixed(self) -> bool: ...
    def fix_waves(self, waves: list[int]) -> None: ...
    def sizes(self, column: str) -> dict[Any, int]: ...
    def final_records(self) -> Iterator[FinalRecord]: ...
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

    def ledger(acked_through: int) -> FailureLedger:
        return FailureLedger(
            sum(projects.values()),
            projects,
            max_failures=run_limit,
            max_failures_per_project=project_limit,
            max_consecutive=consecutive,
            acked_through=acked_through,
        )

    # One pass over the finals (a cursor: a resumed million-target run does not hold
    # them all), replaying the ledger and counting waves and durations as it goes.
    replay = _Replay.of(store, ledger(acked), acked)
    acknowledged = None
    if ack:
        acknowledged = (replay.book.failures, replay.book.trips())
        acked = store.last_event_id()
        store.set_meta(ACK_META_KEY, str(acked))
        replay = _Replay.of(store, ledger(acked), acked)
    gate = RolloutGate(
        options.settings(),
        replay.book,
        replay.wave_counts(store.sizes("wave")),
        durations=replay.durations(),
        fallback_seconds=options.expected_job_seconds,
        started_at=now or datetime.now(UTC),
        acked_through=acked,
        next_seq=max(store.last_event_id(), acked) + 1,
        started_waves=replay.started_waves,
        canary_failures=replay.canary_failures if options.canary is not None else (),
        confirm=confirm,
    )
    if acknowledged is not None:
        gate.note_ack(*acknowledged)
    return Prepared(gate, options)


class _Replay:
    """What a run needs from the targets already final, gathered in one pass in the
    order they became final: the ledger, each wave's counts, the latest durations."""

    def __init__(self, book: FailureLedger, acked: int) -> None:
        self.book = book
        self.acked = acked
        self.final: dict[int, int] = {}
        self.failed: dict[int, int] = {}
        self.last: dict[int, datetime] = {}
        self.started_waves: set[int] = set()
        # Wave 1's failures since the ack: the canaries' when there is a canary.
        self.canary_failures: list[tuple[str, str, str | None]] = []
        # Intent and end of the latest succeeded targets, parsed only at the end.
        self._times: deque[tuple[str | None, str | None]] = deque(maxlen=DURATIONS_KEPT)

    @classmethod
    def of(cls, store: RolloutSource, book: FailureLedger, acked: int) -> _Replay:
        replay = cls(book, acked)
        for r in store.final_records():
            replay.add(r)
        return replay

    def add(self, r: FinalRecord) -> None:
        if r.state is not TargetState.SKIPPED:
            succeeded = r.state is TargetState.SUCCEEDED
            self.book.record(Outcome(r.seq, r.target_id, r.project_id, succeeded, r.error_code))
        w = r.wave or 1
        self.started_waves.add(w)
        self.final[w] = self.final.get(w, 0) + 1
        if r.state is TargetState.FAILED and r.seq > self.acked:
            self.failed[w] = self.failed.get(w, 0) + 1
            if w == 1:
                self.canary_failures.append((r.project_id, r.server_id, r.error_code))
        at = parse_timestamp(r.finished_at)
        if at is not None and (w not in self.last or at > self.last[w]):
            self.last[w] = at
        if r.state is TargetState.SUCCEEDED:
            self._times.append((r.intent_at, r.finished_at))

    def wave_counts(self, totals: dict[Any, int]) -> dict[int, WaveCounts]:
        counts = {int(w or 1): WaveCounts(total=n) for w, n in totals.items()}
        return {
            w: WaveCounts(c.total, self.final.get(w, 0), self.failed.get(w, 0), self.last.get(w))
            for w, c in counts.items()
        }

    def durations(self) -> list[float]:
        """Intent to end of the latest succeeded targets: what the cutoff has to predict."""
        found = []
        for intent, finished in self._times:
            start, end = parse_timestamp(intent), parse_timestamp(finished)
            if start is not None and end is not None:
                found.append((end - start).total_seconds())
        return found
