"""What the report and `status` show of the rollout: the plan, the waves, every decision.

A plain JSON-ready dict built from the state file, so that summary.json,
report.md and `status` agree; None for a state file that never had a rollout
plan (made before rollout control existed).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from orchestrator.rollout.options import PLAN_META_KEY
from orchestrator.store.records import RolloutRecord

__all__ = ["ADAPTIVE_META_KEY", "rollout_summary"]

ADAPTIVE_META_KEY = "adaptive_rates"  # meta key: the rates pacing settled at, last run


class RolloutRecords(Protocol):
    def meta_value(self, key: str) -> str | None: ...
    def rollout_records(self) -> list[RolloutRecord]: ...
    def wave_state_counts(self) -> dict[int, dict[str, int]]: ...


def rollout_summary(store: RolloutRecords) -> dict[str, Any] | None:
    plan_text = store.meta_value(PLAN_META_KEY)
    records = store.rollout_records()
    if plan_text is None and not records:
        return None
    plan = json.loads(plan_text) if plan_text else {}
    waves = [
        {"wave": wave, "total": sum(states.values()), **dict(sorted(states.items()))}
        for wave, states in sorted(store.wave_state_counts().items())
    ]
    decisions = [
        {
            "at": r.at,
            "invocation": r.invocation,
            "kind": r.kind,
            "project_id": r.project_id,
            "wave": r.wave,
            "detail": r.detail,
        }
        for r in records
    ]
    last = _latest_invocation(records)
    rates = store.meta_value(ADAPTIVE_META_KEY)
    return {
        "plan": plan,
        "waves": waves,
        "decisions": decisions,
        "trips": [r.detail for r in _since_ack(records) if r.kind.startswith("trip:")],
        "left_pending": _last(records, "left_pending", last),
        "overran": _last(records, "overran", last),
        "adaptive_rates": json.loads(rates) if rates else {},
    }


def _since_ack(records: list[RolloutRecord]) -> list[RolloutRecord]:
    """The records after the latest --ack-failures: trips before it were acknowledged."""
    acks = [i for i, r in enumerate(records) if r.kind == "ack_failures"]
    return records[acks[-1] + 1 :] if acks else records


def _latest_invocation(records: list[RolloutRecord]) -> int | None:
    numbers = [r.invocation for r in records if r.invocation is not None]
    return max(numbers) if numbers else None


def _last(records: list[RolloutRecord], kind: str, invocation: int | None) -> str | None:
    """The latest invocation's record of `kind`: an earlier night's is history."""
    found = [r.detail for r in records if r.kind == kind and r.invocation == invocation]
    return found[-1] if found else None
