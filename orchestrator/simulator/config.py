"""The simulator's settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ThrottleStyle = Literal["429", "202"]

# The APIs the simulator serves, by the names its stats and limits use.
REINSTALL = "reinstall"  # POST /v1|v2/{project}/cloudservers/{server}/reinstallos
JOB = "job"  # GET /v1/{project}/jobs/{job}
SERVER = "server"  # GET /v1/{project}/cloudservers/{server}: the single read
LIST_V1 = "list_v1"  # GET /v1/{project}/cloudservers/detail: pages by number
LIST_NOVA = "list_nova"  # GET /v2.1/{project}/servers/detail: marker, changes-since
API_KINDS = (REINSTALL, JOB, SERVER, LIST_V1, LIST_NOVA)


@dataclass(frozen=True, slots=True)
class ApiLimit:
    """The API gateway's limit on one API: calls per clock second and per clock minute
    (None: no limit over that window)."""

    per_second: int | None = None
    per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("per_second", "per_minute"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, got {value!r}")
        if self.per_second is None and self.per_minute is None:
            raise ValueError("an API limit needs a per-second or a per-minute number")


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
    "pending_payment_rate",
)
# What the service does with a reinstall sent while another is under way.
SECOND_REINSTALL = ("refuse", "fail-second", "fail-both")
# (min, max) seconds, drawn per job.
_SPAN_FIELDS = (
    "job_seconds",
    "queue_seconds",
    "power_off_seconds",
    "stopped_seconds",
    "come_back_seconds",
)


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
    # was (SHUTOFF, or ERROR if it was ERROR; ACTIVE with fail_restarts). The system
    # disk is never replaced on FAIL.
    fail_to_error_rate: float = 1.0
    fail_restarts: bool = False  # a failed reinstall of a running server starts it again
    # Worlds the documentation allows. It promises only that a reinstall replaces the
    # system disk (a new volume ID at boot index 0); whether launched_at moves is not
    # documented: on a reinstall (True), or not (False); on any start too (True).
    launched_at_on_reinstall: bool = True
    launched_at_on_start: bool = False
    # A reinstall of a stopped server leaves it SHUTOFF (else it is started).
    keep_power_state: bool = False
    # After a successful reinstall the server boots this long (SHUTOFF, task state
    # powering-on) before it shows ACTIVE: the job's SUCCESS comes first.
    come_back_seconds: tuple[float, float] = (0.0, 0.0)
    # A reinstall sent while another is under way: "refuse" (Ecs.0603 / Ecs.0100, as
    # the reference suggests), or accepted with a job of its own that fails
    # ("fail-second"), or that fails with the first one too ("fail-both": the server
    # left in ERROR, its disk not replaced). Nothing documents which a cloud does.
    second_reinstall: str = "refuse"
    # The audit trail (CTS, GET /v3/{project_id}/traces): a reinstall request that
    # reached the service is recorded (reinstallOs / reinstallOsV2, with its HTTP status)
    # and shows in trace queries this many seconds later (CTS documents about a minute).
    trace_delay: float = 60.0
    # Verification cases: the job says SUCCESS, yet the server ends ERROR (its disk
    # replaced), or ACTIVE on the old system disk (launched_at unchanged too).
    success_but_error_rate: float = 0.0
    success_but_stale_rate: float = 0.0
    # Jobs of yearly/monthly servers whose order awaits payment: PENDING_PAYMENT with
    # the server untouched, for as long as the simulator runs (nobody pays).
    pending_payment_rate: float = 0.0
    # Seconds a job is kept after it ended; asked about later: 400 Common.0011.
    job_retention: float = 86400.0
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
    # The API gateway in front of the service: the limit of every API, and of some
    # APIs alone (kind, limit), which replaces it for them. Answers 429 APIGW.0308.
    api_limit: ApiLimit | None = None
    api_limit_by_kind: tuple[tuple[str, ApiLimit], ...] = ()
    # Per project of the fleet: servers that exist and are listed, but that the
    # fleet (the inventory) does not name.
    extra_servers: int = 0
    # APIs this cloud does not offer (a kind of API_KINDS): the gateway answers
    # 404 APIGW.0101, as for an API not published in a region.
    unoffered: tuple[str, ...] = ()
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
    # A frozen account: every ECS request answered Ecs.0003 with this status (the
    # reference says 403; it has been seen as 400 too). None: the account is fine.
    frozen_status: int | None = None
    # The API gateway locks a key pair after this many failed signatures, for
    # aksk_lock_seconds: every request signed by it is then refused, even a good one.
    aksk_lock_after: int = 5
    aksk_lock_seconds: float = 300.0
    # The reinstall APIs the gateway publishes: OTC eu-de documents only the Cloud-Init
    # one (v2). One left out is answered 404 APIGW.0101, before the service sees it.
    reinstall_apis: tuple[str, ...] = ("v1", "v2")
    # Regions whose ECS endpoint the token's catalog lists: all of them this simulator.
    regions: tuple[str, ...] = ("eu-de", "eu-nl", "eu-ch2")
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    # Seconds the service's clock is ahead of `clock` (negative: behind): every time
    # it writes (Date headers, launched_at, updated, job times) and judges (a
    # signature's X-Sdk-Date, a token's expiry) is on that clock.
    clock_offset: float = 0.0
    # A file that keeps the accepted jobs across processes (`worldfile`): read back
    # at start (its seed must be this one), each new job appended as it is accepted.
    world_file: str | None = None

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
        retention = self.job_retention
        if not (isinstance(retention, int | float) and math.isfinite(retention) and retention > 0):
            raise ValueError(f"job_retention must be a positive number of seconds: {retention!r}")
        slow = self.slow_answer_seconds
        if not (isinstance(slow, int | float) and math.isfinite(slow) and slow >= 0):
            raise ValueError(f"slow_answer_seconds must be >= 0, got {slow!r}")
        limit = self.rate_limit
        if limit is not None and not (limit > 0 and math.isfinite(limit)):
            raise ValueError(f"rate_limit must be a positive requests/s or None, got {limit!r}")
        object.__setattr__(self, "api_limit_by_kind", tuple(map(tuple, self.api_limit_by_kind)))
        for kind, api_limit in self.api_limit_by_kind:
            if kind not in API_KINDS or not isinstance(api_limit, ApiLimit):
                raise ValueError(
                    f"api_limit_by_kind: expected (kind, ApiLimit), kind one of"
                    f" {', '.join(API_KINDS)}; got {kind!r}"
                )
        object.__setattr__(self, "unoffered", tuple(self.unoffered))
        for kind in self.unoffered:
            if kind not in API_KINDS:
                raise ValueError(f"unoffered: {kind!r} is not one of {', '.join(API_KINDS)}")
        if not (isinstance(self.extra_servers, int) and self.extra_servers >= 0):
            raise ValueError(
                f"extra_servers must be a whole number >= 0, got {self.extra_servers!r}"
            )
        if self.throttle_style not in ("429", "202"):
            raise ValueError(f"throttle_style must be '429' or '202', got {self.throttle_style!r}")
        if not math.isfinite(self.clock_offset):
            raise ValueError(f"clock_offset must be a finite number, got {self.clock_offset!r}")
        if not (self.latency_ms >= 0 and math.isfinite(self.latency_ms)):
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")
        object.__setattr__(self, "reinstall_apis", tuple(self.reinstall_apis))
        if not set(self.reinstall_apis) <= {"v1", "v2"}:
            raise ValueError(f"reinstall_apis must name v1 and/or v2, got {self.reinstall_apis!r}")
        delay = self.trace_delay
        if not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
            raise ValueError(f"trace_delay must be >= 0 seconds, got {delay!r}")
        if self.second_reinstall not in SECOND_REINSTALL:
            raise ValueError(
                f"second_reinstall must be one of {', '.join(SECOND_REINSTALL)},"
                f" got {self.second_reinstall!r}"
            )
        if self.frozen_status not in (None, 400, 403):
            raise ValueError(f"frozen_status must be 400, 403 or None, got {self.frozen_status!r}")
        if not (isinstance(self.aksk_lock_after, int) and self.aksk_lock_after >= 1):
            raise ValueError(f"aksk_lock_after must be >= 1, got {self.aksk_lock_after!r}")
        lock = self.aksk_lock_seconds
        if not (isinstance(lock, int | float) and math.isfinite(lock) and lock >= 0):
            raise ValueError(f"aksk_lock_seconds must be >= 0, got {lock!r}")
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

    def api_limit_of(self, kind: str) -> ApiLimit | None:
        """The gateway's limit on `kind`: its own if given, else the one of every API."""
        for named, api_limit in self.api_limit_by_kind:
            if named == kind:
                return api_limit
        return self.api_limit

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None or self.ak is not None or bool(self.users)
