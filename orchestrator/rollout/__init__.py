"""Rollout control: windows, expected duration, waves, failure budgets, and the decision.

Pure modules the runner asks, with the clock and the counts passed in:

    window.py    --not-before, --deadline, --window/--tz: when sending is allowed
    duration.py  the expected job duration (p90 of finished jobs) and the cutoff
    waves.py     --waves/--canary: the wave of each target, and when a wave may start
    budget.py    --max-failures[-per-project], --max-consecutive-failures: FailureLedger
    decide.py    decide(): SEND, WAIT(until, why) or HOLD(why) for one target

Which answers count as failures is `orchestrator.failures`.
"""

from orchestrator.rollout.budget import (
    DEFAULT_MAX_CONSECUTIVE,
    FailureLedger,
    Limit,
    Outcome,
    Trip,
    TripKind,
    parse_limit,
)
from orchestrator.rollout.decide import (
    Action,
    Decision,
    Reason,
    RolloutSettings,
    RolloutView,
    Scope,
    TargetRef,
    decide,
)
from orchestrator.rollout.duration import (
    DEFAULT_EXPECTED_JOB_SECONDS,
    Estimate,
    expected_job_seconds,
    may_start,
)
from orchestrator.rollout.waves import (
    WaveCounts,
    WaveGate,
    WaveSize,
    assign_waves,
    parse_canary,
    parse_waves,
    wave_gate,
    wave_sizes,
)
from orchestrator.rollout.window import (
    DailyWindow,
    Opening,
    Schedule,
    parse_instant,
    parse_window,
    parse_zone,
)

__all__ = [
    "DEFAULT_EXPECTED_JOB_SECONDS",
    "DEFAULT_MAX_CONSECUTIVE",
    "Action",
    "DailyWindow",
    "Decision",
    "Estimate",
    "FailureLedger",
    "Limit",
    "Opening",
    "Outcome",
    "Reason",
    "RolloutSettings",
    "RolloutView",
    "Schedule",
    "Scope",
    "TargetRef",
    "Trip",
    "TripKind",
    "WaveCounts",
    "WaveGate",
    "WaveSize",
    "assign_waves",
    "decide",
    "expected_job_seconds",
    "may_start",
    "parse_canary",
    "parse_instant",
    "parse_limit",
    "parse_waves",
    "parse_window",
    "parse_zone",
    "wave_gate",
    "wave_sizes",
]
