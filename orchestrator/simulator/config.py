"""The simulator's settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ThrottleStyle = Literal["429", "202"]

_RATE_FIELDS = (
    "missing_rate",
    "locked_rate",
    "no_disk_rate",
    "running_rate",
    "job_fail_rate",
    "error_rate",
    "drop_rate",
    "busy_rate",
    "fail_to_error_rate",
    "error_after_acting_rate",
    "slow_answer_rate",
    "success_but_error_rate",
    "success_but_stale_rate",
)
# (min, max) seconds, drawn per job.
_SPAN_FIELDS = ("job_seconds", "queue_seconds", "power_off_seconds", "stopped_seconds")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the fake ECS service behaves; every field has a harmless default.

    Rates are probabilities in [0, 1]. `clock` gives wall-clock epoch seconds and
    drives every lifecycle timing, so tests can move time by hand.

    The defaults are instant and fault-free so that tests run fast: no queue, no
    power-off phase, a failed rebuild leaves ERROR as before. `orchestrator
    simulate` has realistic defaults instead (see its --help).
    """

    seed: int = 0
    # Allowed (project_id, server_id) pairs; None lets every canonical UUID exist.
    fleet: tuple[tuple[str, str], ...] | None = None
    missing_rate: float = 0.0
    locked_rate: float = 0.0
    no_disk_rate: float = 0.0
    running_rate: float = 0.0
    job_seconds: tuple[float, float] = (2.0, 5.0)
    job_fail_rate: float = 0.0
    # An accepted job waits this long in INIT with the server untouched.
    queue_seconds: tuple[float, float] = (0.0, 0.0)
    # withStopServer on an ACTIVE server: ACTIVE/powering-off this long, then
    # SHUTOFF (no task state) for stopped_seconds, then REBUILD for job_seconds.
    power_off_seconds: tuple[float, float] = (0.0, 0.0)
    stopped_seconds: tuple[float, float] = (0.0, 0.0)
    # Share of FAIL jobs that leave the server ERROR; the others put it back as it
    # was (SHUTOFF, or ERROR if it was ERROR). launched_at never moves on FAIL.
    fail_to_error_rate: float = 1.0
    # Verification cases: the job says SUCCESS, yet the server ends ERROR
    # (launched_at moved), or ACTIVE with the old launched_at.
    success_but_error_rate: float = 0.0
    success_but_stale_rate: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    # Acted on (job created), then answered 500/503 instead of the job ID.
    error_after_acting_rate: float = 0.0
    # Acted on at once, answered after slow_answer_seconds of real (event-loop)
    # time, so that a client's timeout fires after the service acted.
    slow_answer_rate: float = 0.0
    slow_answer_seconds: float = 0.0
    rate_limit: float | None = None  # requests per second, per API
    throttle_style: ThrottleStyle = "429"
    busy_rate: float = 0.0
    latency_ms: float = 0.0
    token: str | None = field(default=None, repr=False)
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    keypairs: tuple[str, ...] | None = None  # when set, only these key pair names exist
    # IAM: (name, password, domain) of each user; tokens live token_ttl seconds.
    users: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    token_ttl: float = 86400.0
    denied_projects: tuple[str, ...] = ()  # ECS answers 403 Pdp.0001 in these
    # Regions whose ECS endpoint the token's catalog lists: all of them this simulator.
    regions: tuple[str, ...] = ("eu-de", "eu-nl", "eu-ch2")
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    # Seconds the service's clock is ahead of `clock` (negative: behind): every time
    # it writes (Date headers, launched_at, updated, job times) and judges (a
    # signature's X-Sdk-Date, a token's expiry) is on that clock.
    clock_offset: float = 0.0

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        for name in _SPAN_FIELDS:
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
                raise ValueError(f"{name} must be (min, max), 0 <= min <= max; got {low}, {high}")
            # Lists from callers are normalised to tuples so the config stays hashable.
            object.__setattr__(self, name, (float(low), float(high)))
        slow = self.slow_answer_seconds
        if not (isinstance(slow, int | float) and math.isfinite(slow) and slow >= 0):
            raise ValueError(f"slow_answer_seconds must be >= 0, got {slow!r}")
        limit = self.rate_limit
        if limit is not None and not (limit > 0 and math.isfinite(limit)):
            raise ValueError(f"rate_limit must be a positive requests/s or None, got {limit!r}")
        if self.throttle_style not in ("429", "202"):
            raise ValueError(f"throttle_style must be '429' or '202', got {self.throttle_style!r}")
        if not math.isfinite(self.clock_offset):
            raise ValueError(f"clock_offset must be a finite number, got {self.clock_offset!r}")
        if not (self.latency_ms >= 0 and math.isfinite(self.latency_ms)):
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")
        if (self.ak is None) != (self.sk is None):
            raise ValueError("ak and sk must be given together")
        # Lists from callers are normalised to tuples so the config stays hashable.
        if self.fleet is not None:
            object.__setattr__(self, "fleet", tuple((str(p), str(s)) for p, s in self.fleet))
        if self.keypairs is not None:
            object.__setattr__(self, "keypairs", tuple(self.keypairs))
        if not (self.token_ttl > 0 and math.isfinite(self.token_ttl)):
            raise ValueError(
                f"token_ttl must be a positive number of seconds, got {self.token_ttl!r}"
            )
        object.__setattr__(self, "users", tuple(tuple(u) for u in self.users))
        object.__setattr__(self, "denied_projects", tuple(self.denied_projects))

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None or self.ak is not None or bool(self.users)
