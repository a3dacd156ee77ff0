"""The rollout options of a run, as given on the command line and kept in the state file.

`RolloutOptions` holds the options as text (what the operator typed, so that
the state file, the report and `status` show them as typed) and parses them
into the pure modules' types. The plan part (waves, canary) is fixed in the
state file at the first run: `fixed_plan` says whether options given again
agree with it. The rest (window, budgets, caps) is taken from the latest
invocation unless given again, like every other run option.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.rollout.budget import DEFAULT_MAX_CONSECUTIVE, Limit, parse_limit
from orchestrator.rollout.decide import RolloutSettings
from orchestrator.rollout.duration import DEFAULT_EXPECTED_JOB_SECONDS
from orchestrator.rollout.waves import WaveSize, parse_canary, parse_waves
from orchestrator.rollout.window import Schedule, parse_instant, parse_window, parse_zone

__all__ = ["PLAN_META_KEY", "RolloutOptions"]

PLAN_META_KEY = "rollout_plan"  # meta key: the waves and canary fixed at the first run


@dataclass(frozen=True, slots=True)
class RolloutOptions:
    not_before: str | None = None
    deadline: str | None = None
    window: str | None = None  # HH:MM-HH:MM
    tz: str | None = None  # IANA name; None: this machine's zone
    keep_going: bool = False
    expected_job_seconds: float = DEFAULT_EXPECTED_JOB_SECONDS
    waves: str | None = None  # 1,5,10%,100%
    canary: int | None = None
    pause_between_waves: float = 0.0
    confirm_waves: bool = False
    max_failures: str | None = None  # N or N%
    max_failures_per_project: str | None = None
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE  # 0: off
    project_max_in_flight: int | None = None

    # -- parsing (every check raises UsageError naming the option) --------------

    def check(self) -> RolloutOptions:
        """Parse everything once, so a bad option stops the run before anything is sent."""
        self.settings()
        self.wave_sizes()
        self.budgets()
        # Also what a state file saved: nan passes every comparison, so it is named.
        if not (math.isfinite(self.expected_job_seconds) and self.expected_job_seconds > 0):
            raise UsageError(f"--expected-job-seconds: {self.expected_job_seconds} is not > 0")
        if not (math.isfinite(self.pause_between_waves) and self.pause_between_waves >= 0):
            raise UsageError(f"--pause-between-waves: {self.pause_between_waves} is not >= 0")
        if self.max_consecutive_failures < 0:
            raise UsageError(
                f"--max-consecutive-failures: {self.max_consecutive_failures} is not >= 0"
            )
        if self.project_max_in_flight is not None and self.project_max_in_flight < 1:
            raise UsageError(f"--project-max-in-flight: {self.project_max_in_flight} is not >= 1")
        if self.keep_going and self.window is None:
            raise UsageError("--keep-going sleeps until the next opening: it needs --window")
        return self

    def schedule(self) -> Schedule:
        if self.tz is not None and self.window is None:
            raise UsageError("--tz is the zone of --window: give --window HH:MM-HH:MM too")
        zone = parse_zone(self.tz)  # this machine's without --tz
        not_before = (
            parse_instant(self.not_before, "--not-before", zone) if self.not_before else None
        )
        deadline = parse_instant(self.deadline, "--deadline", zone) if self.deadline else None
        if not_before is not None and deadline is not None and deadline <= not_before:
            raise UsageError(
                f"--deadline {self.deadline} is not after --not-before {self.not_before}"
            )
        window = parse_window(self.window, zone) if self.window else None
        return Schedule(not_before, deadline, window, zone=zone)

    def settings(self) -> RolloutSettings:
        return RolloutSettings(
            schedule=self.schedule(),
            keep_going=self.keep_going,
            canary=self.canary is not None,
            pause_between_waves=self.pause_between_waves,
            confirm_waves=self.confirm_waves,
            project_max_in_flight=self.project_max_in_flight,
        )

    def wave_sizes(self) -> tuple[tuple[WaveSize, ...], int | None]:
        waves = parse_waves(self.waves) if self.waves else ()
        canary = parse_canary(self.canary) if self.canary is not None else None
        return waves, canary

    def budgets(self) -> tuple[Limit | None, Limit | None, int | None]:
        run = parse_limit(self.max_failures, "--max-failures") if self.max_failures else None
        per_project = (
            parse_limit(self.max_failures_per_project, "--max-failures-per-project")
            if self.max_failures_per_project
            else None
        )
        return run, per_project, self.max_consecutive_failures or None

    # -- the fixed plan -------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        """What is fixed at the first run: the wave sizes and the canary."""
        return {"waves": self.waves, "canary": self.canary}

    def with_plan(self, plan: dict[str, Any]) -> RolloutOptions:
        """These options on the plan fixed in the state file; refused when they contradict it."""
        given = self.plan()
        changed = [
            f"--{name} {given[name]} (the plan has {plan.get(name) or 'none'})"
            for name in given
            if given[name] is not None and given[name] != plan.get(name)
        ]
        if changed:
            raise UsageError(
                "the waves were fixed in the state file at the first run; a resume keeps "
                "them: drop " + ", ".join(changed)
            )
        return replace(self, waves=plan.get("waves"), canary=plan.get("canary"))

    # -- persistence ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dicts(cls, given: dict[str, Any], saved: dict[str, Any] | None) -> RolloutOptions:
        """Each option as given now (not None), else as the latest invocation had it."""
        saved = saved or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
            elif saved.get(f.name) is not None:
                values[f.name] = saved[f.name]
        return cls(**values)
