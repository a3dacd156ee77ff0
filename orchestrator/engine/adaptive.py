"""Adaptive pacing: each API's rate on each endpoint follows the service's throttling.

    AdaptivePacing   one limiter per (API kind, endpoint) in front of the configured
                     ones, each driven by an AdaptiveRate; the API client's hook
    AdaptiveRate     AIMD on one limiter, never above its ceiling

AIMD, the way TCP congestion control and the AWS SDK's adaptive retry mode do it: a
throttling answer cuts the rate multiplicatively, good answers raise it additively,
never above the configured rate (--rate, --poll-rate). One cut per round trip: an
answer to a request sent before the last cut was already accounted for by it, so a
burst of 429s from requests already on the wire does not collapse the rate.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.engine.pacing import Limiter, RateLimiter, check_rate

__all__ = ["AdaptivePacing", "AdaptiveRate", "AimdSettings"]


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """How `AdaptiveRate` cuts and regains the rate."""

    decrease: float = 0.7  # the rate is multiplied by this on a throttling answer
    # Additive increase, per second of good answers, as a fraction of the rate set
    # by the last cut: the 30 % cut is regained in about 4 s at any scale.
    recovery: float = 0.1
    floor: float = 0.5  # requests per second: never slower than this
    # With no send time for an answer, cuts are at least this far apart (seconds).
    hold: float = 0.2
    # Good answers after a silence raise the rate by at most this many seconds' worth.
    max_step_seconds: float = 1.0
    # A cut never goes below this share of what the service accepted over the last
    # `window` seconds: on loopback a throttled answer comes back within milliseconds,
    # so "once per round trip" alone could cut dozens of times before the service's
    # bucket refills, down to the floor, from where additive increase takes minutes.
    keep_accepted: float = 0.9
    window: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {self.decrease!r}")
        if not (self.recovery > 0 and self.floor > 0 and self.hold >= 0):
            raise ValueError("recovery and floor must be > 0, hold >= 0")


class AdaptiveRate:
    """AIMD control of one limiter: cut on throttling, regain while answers are good.

    `clock` must be the clock the caller's `sent_at` times come from
    (time.monotonic by default, as in the API client).
    """

    def __init__(
        self,
        limiter: Limiter,
        ceiling: float | None = None,
        *,
        settings: AimdSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._ceiling = check_rate(limiter.rate if ceiling is None else ceiling)
        self._settings = settings or AimdSettings()
        self._clock = clock
        self._rate = min(limiter.rate, self._ceiling)
        self._step = self._settings.recovery * self._rate
        self._last_cut = -math.inf
        self._last_step = -math.inf
        self._accepted: deque[float] = deque()  # times of good answers, last `window` s
        self.throttles = 0  # throttling answers seen
        self.cuts = 0  # of which cut the rate
        if self._rate != limiter.rate:
            limiter.set_rate(self._rate)

    def __repr__(self) -> str:
        return f"AdaptiveRate(rate={self._rate:.3g}, ceiling={self._ceiling:g}, cuts={self.cuts})"

    @property
    def rate(self) -> float:
        """The rate now in force, for the live view and the report."""
        return self._rate

    @property
    def ceiling(self) -> float:
        """The configured rate (--rate / --poll-rate): never exceeded."""
        return self._ceiling

    def on_throttle(self, sent_at: float | None = None) -> bool:
        """A throttling answer; True when it cut the rate."""
        self.throttles += 1
        now = self._clock()
        if sent_at is not None:
            if sent_at < self._last_cut:
                return False  # sent before the last cut: that cut answered it
        elif now - self._last_cut < self._settings.hold:
            return False
        accepted = self._accepted_rate(now)
        self._rate = max(
            self._settings.floor,
            self._rate * self._settings.decrease,
            min(self._rate, accepted * self._settings.keep_accepted),
        )
        self._rate = min(self._rate, self._ceiling)
        self._step = self._settings.recovery * self._rate
        self._last_cut = self._last_step = now
        self.cuts += 1
        self._limiter.set_rate(self._rate)
        return True

    def _accepted_rate(self, now: float) -> float:
        """Good answers per second over the last `window` seconds."""
        horizon = now - self._settings.window
        while self._accepted and self._accepted[0] < horizon:
            self._accepted.popleft()
        return len(self._accepted) / self._settings.window

    def on_ok(self) -> None:
        """A good answer: regain rate additively, by the time since the last step."""
        now = self._clock()
        self._accepted.append(now)
        if len(self._accepted) > 4 * self._rate * self._settings.window + 16:
            self._accepted_rate(now)  # keep the deque to about one window
        if self._rate >= self._ceiling:
            return
        elapsed = min(now - self._last_step, self._settings.max_step_seconds)
        self._last_step = now
        if elapsed <= 0:
            return
        self._rate = min(self._ceiling, self._rate + self._step * elapsed)
        self._limiter.set_rate(self._rate)


class AdaptivePacing:
    """Adaptive limiters per API kind and endpoint, in front of the configured limiters.

    The service limits each API on each endpoint on its own (the simulator's
    `--rate-limit` too), while `--poll-rate` is one budget shared by job and
    server queries. So the configured limiters stay as they are (the ceiling
    that is never exceeded), and each (kind, endpoint) gets its own limiter,
    started at its kind's ceiling and driven by an `AdaptiveRate` from that
    kind's answers on that endpoint. The client awaits `acquire(kind,
    endpoint)` before its usual limiter and reports every answer to
    `on_answer`. Kinds without a ceiling are not adapted.
    """

    def __init__(
        self,
        ceilings: Mapping[str, float | None],
        *,
        settings: AimdSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ceilings = {
            kind: check_rate(rate)
            for kind, rate in ceilings.items()
            if rate is not None and math.isfinite(rate)
        }
        self._settings = settings or AimdSettings()
        self._clock = clock
        self._limiters: dict[tuple[str, str], tuple[RateLimiter, AdaptiveRate]] = {}

    def _pair(self, kind: str, endpoint: str) -> tuple[RateLimiter, AdaptiveRate] | None:
        key = (kind, endpoint)
        pair = self._limiters.get(key)
        if pair is None:
            ceiling = self._ceilings.get(kind)
            if ceiling is None:
                return None
            # Tokens on the loop's clock (time.monotonic, like the send times).
            limiter = RateLimiter(ceiling)
            pair = (limiter, AdaptiveRate(limiter, settings=self._settings, clock=self._clock))
            self._limiters[key] = pair
        return pair

    async def acquire(self, kind: str, endpoint: str) -> None:
        """Wait for this API's adapted rate on this endpoint."""
        pair = self._pair(kind, endpoint)
        if pair is not None:
            await pair[0].acquire()

    async def space(self, kind: str, endpoint: str) -> None:
        """Right before the request leaves: its send slot at this API's adapted rate."""
        pair = self._pair(kind, endpoint)
        if pair is not None:
            await pair[0].space()

    def interrupt_spacing(self, kind: str, error: Callable[[], BaseException]) -> int:
        """`RateLimiter.interrupt_spacing` for every endpoint's limiter of `kind`."""
        return sum(
            pair[0].interrupt_spacing(error)
            for (each, _), pair in self._limiters.items()
            if each == kind
        )

    def on_answer(self, kind: str, endpoint: str, throttled: bool, sent_at: float) -> None:
        """An answer (below 500) to a request of `kind` sent to `endpoint` at `sent_at`."""
        pair = self._pair(kind, endpoint)
        if pair is None:
            return
        if throttled:
            pair[1].on_throttle(sent_at)
        else:
            pair[1].on_ok()

    def controllers(self) -> dict[tuple[str, str], AdaptiveRate]:
        """Each (kind, endpoint)'s controller: its rate, ceiling, throttles and cuts."""
        return {key: pair[1] for key, pair in self._limiters.items()}

    def rates(self) -> dict[tuple[str, str], float]:
        """The rate in force per (kind, endpoint), for the live view and the report."""
        return {key: pair[1].rate for key, pair in self._limiters.items()}
