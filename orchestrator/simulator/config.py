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
)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the fake ECS service behaves; every field has a harmless default.

    Rates are probabilities in [0, 1]. `clock` gives wall-clock epoch seconds and
    drives every lifecycle timing, so tests can move time by hand.
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
    error_rate: float = 0.0
    drop_rate: float = 0.0
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

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        low, high = self.job_seconds
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
            raise ValueError(f"job_seconds must be (min, max), 0 <= min <= max; got {low}, {high}")
        limit = self.rate_limit
        if limit is not None and not (limit > 0 and math.isfinite(limit)):
            raise ValueError(f"rate_limit must be a positive requests/s or None, got {limit!r}")
        if self.throttle_style not in ("429", "202"):
            raise ValueError(f"throttle_style must be '429' or '202', got {self.throttle_style!r}")
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
        object.__setattr__(self, "job_seconds", (float(low), float(high)))

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None or self.ak is not None or bool(self.users)
