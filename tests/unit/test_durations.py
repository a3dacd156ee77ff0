"""Seconds as printed to the operator: rounded to what matters, never 11.4072 s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.durations import seconds_text
from orchestrator.rollout import (
    FailureLedger,
    RolloutSettings,
    RolloutView,
    Schedule,
    TargetRef,
    decide,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (11.4072, "11.4 s"),
        (3.0, "3 s"),
        (9.96, "10 s"),
        (0.25, "0.25 s"),
        (0.004321, "0.0043 s"),
        (0.0, "0 s"),
        (99.94, "99.9 s"),
        (899.6, "900 s"),
        (3600.2, "3600 s"),
        (-2.46, "-2.5 s"),
        (float("inf"), "inf s"),
    ],
)
def test_seconds_text(seconds: float, text: str) -> None:
    assert seconds_text(seconds) == text


def test_the_cutoff_says_the_learned_duration_rounded() -> None:
    closes = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)
    settings = RolloutSettings(schedule=Schedule(deadline=closes))
    view = RolloutView(
        started_at=datetime(2026, 6, 10, 0, 0, tzinfo=UTC),
        expected_seconds=11.4072,  # a p90 of measured jobs
        ledger=FailureLedger(10, {"a": 10}),
    )
    decision = decide(datetime(2026, 6, 10, 2, 59, 55, tzinfo=UTC), TargetRef("a"), settings, view)
    assert "(expected 11.4 s)" in decision.why, decision.why
