"""Adaptive pacing: each API's rate on each endpoint follows what the service says.

    AdaptivePacing   one limiter per (API kind, endpoint) in front of the configured
                     ones, each driven by an AdaptiveRate; the API client's hook
    AdaptiveRate     AIMD on one limiter, under a ceiling a stated limit can lower
    stated_ceiling   the fastest rate that keeps a stated "N calls per W seconds"

AIMD, the way TCP congestion control and the AWS SDK's adaptive retry mode do it: a
throttling answer cuts the rate multiplicatively, good answers raise it additively,
never above the configured rate (--rate, --poll-rate). One cut per round trip: an
answer to a request sent before the last cut was already accounted for by it, so a
burst of 429s from requests already on the wire does not collapse the rate.

Stated limits. The API gateway counts each user's calls to each API over 1-second and
1-minute windows, and its refusal names the window that was full (429 APIGW.0308,
"... limit:N,time:1 minute", no Retry-After; `answers.stated_limit`). AIMD alone
cannot keep a per-minute limit: the minute's calls go out at the configured rate
within seconds, every call after them is refused until the minute ends, and the cuts
stop at the floor (0.5/s, 30 a minute, still too fast for a smaller limit). So a
refusal that states N calls per W seconds
  - holds the API's limiter until W after the refused call was sent: whether the
    gateway's windows are fixed or sliding, the full one has ended by then, and every
    call before would only be refused (a minute at most: the run goes on, refused at
    times, rather than wait an hour in silence);
  - lowers the controller's ceiling for the rest of the run to `stated_ceiling(N, W)`:
    the rate at which its bucket never sends more than N in any window of W seconds,
    with the delivery guard's margin for the delays on the way. That is said once in
    the log. It needs no cut as well; a refusal that lowers nothing (the same user's
    other clients take part of the gateway's count) is cut as any other.
AIMD goes on below the ceiling; a throttling answer that states no limit is AIMD's
alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.engine.pacing import DELIVERY_GUARD, Limiter, RateLimiter, check_rate

__all__ = ["AdaptivePacing", "AdaptiveRate", "AimdSettings", "stated_ceiling"]

log = logging.getLogger("orchestrator.pacing")

# A stated limit never paces an API slower than one call a minute, nor holds it longer
# than a minute: a limit that low still lets the run go on (refused at times) instead
# of waiting hours between calls.
MIN_STATED_RATE = 1 / 60
MAX_STATED_HOLD = 60.0

_WINDOW_NAMES: dict[float, str] = {1: "a second", 60: "a minute", 3600: "an hour", 86400: "a day"}


def stated_ceiling(
    calls: int, seconds: float, *, burst: int = 1, guard: float = DELIVERY_GUARD
) -> float:
    """The fastest rate at which a `RateLimiter(rate, burst)` sends at most `calls` in any
    window of `seconds` at the service, while the requests' delays on the way differ by
    less than `guard * seconds`.

    A sender window of `seconds * (1 + guard)` then holds `calls - burst` whole intervals,
    and so at most `calls` sends (the limiter's bound, burst included). A limit no larger
    than the burst cannot be kept by a bucket that lets `burst` through at once; it is
    paced at half a call per window. Never below `MIN_STATED_RATE`.
    """
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError(f"calls must be a whole number >= 1, got {calls!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
    intervals = calls - burst if calls > burst else 0.5
    return max(MIN_STATED_RATE, intervals / (seconds * (1.0 + guard)))


def window_name(seconds: float) -> str:
    """'a minute' for 60; 'per 10 s' for a window without a name."""
    return _WINDOW_NAMES.get(seconds) or f"per {seconds:g} s"


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """How `AdaptiveRate` cuts and regains the rate."""

    decrease: float = 0.7  # the rate is multiplied by this on a throttling answer
    # Additive increase, per second of good answers, as a fraction of the rate set
    # by the last cut: the 30 % cut is regained in about 4 s at any scale.
    recovery: float = 0.1
    floor: float = 0.5  # requests per second: never slower than this (nor the ceiling)
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
        """Never exceeded: the configured rate (--rate / --poll-rate), or what a limit
        the service stated allows, if lower."""
        return self._ceiling

    def limit(self, ceiling: float) -> bool:
        """Lower the ceiling to `ceiling` for good (a limit the service stated); True
        when it was lower than the ceiling in force. Never raises it."""
        ceiling = check_rate(ceiling)
        if ceiling >= self._ceiling:
            return False
        self._ceiling = ceiling
        if self._rate > ceiling:
            self._rate = ceiling
            self._step = self._settings.recovery * ceiling
            self._limiter.set_rate(ceiling)
        return True

    def on_throttle(
        self,
        sent_at: float | None = None,
        *,
        ceiling: float | None = None,
        until: float | None = None,
    ) -> bool:
        """A throttling answer; True when it cut the rate or lowered the ceiling.

        `ceiling` and `until` come from a limit the answer stated: never faster than
        `ceiling` from now on, and no call before `until` (on the limiter's clock),
        when the window that was full has ended. An answer that lowers the ceiling
        needs no cut as well.
        """
        self.throttles += 1
        if until is not None:
            self._limiter.hold(until)
        if ceiling is not None and self.limit(ceiling):
            return True
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
        return sum(limiter.interrupt_spacing(error) for limiter in self._of(kind))

    def interrupt_waiting(self, kind: str, error: Callable[[], BaseException]) -> int:
        """`RateLimiter.interrupt_waiting` for every endpoint's limiter of `kind`."""
        return sum(limiter.interrupt_waiting(error) for limiter in self._of(kind))

    def _of(self, kind: str) -> list[RateLimiter]:
        return [pair[0] for (each, _), pair in self._limiters.items() if each == kind]

    def on_answer(
        self,
        kind: str,
        endpoint: str,
        throttled: bool,
        sent_at: float,
        stated: tuple[int, float] | None = None,
    ) -> None:
        """An answer (below 500) to a request of `kind` sent to `endpoint` at `sent_at`;
        `stated`: the limit a throttling answer names, (calls, window in seconds)."""
        pair = self._pair(kind, endpoint)
        if pair is None:
            return
        limiter, control = pair
        if not throttled:
            control.on_ok()
        elif stated is None:
            control.on_throttle(sent_at)
        else:
            calls, seconds = stated
            before = control.ceiling
            ceiling = stated_ceiling(calls, seconds, burst=limiter.burst)
            until = sent_at + min(seconds, MAX_STATED_HOLD)
            if control.on_throttle(sent_at, ceiling=ceiling, until=until) and (
                control.ceiling < before
            ):
                where = "" if endpoint == "-" else f" on {endpoint}"
                log.warning(
                    "The gateway allows %d %s calls %s%s: paced at %.3g/s from now on "
                    "(was %.3g/s), after a pause of %.3g s while its window is full",
                    calls, kind, window_name(seconds), where, control.ceiling, before,
                    max(0.0, until - self._clock()),
                )  # fmt: skip

    def controllers(self) -> dict[tuple[str, str], AdaptiveRate]:
        """Each (kind, endpoint)'s controller: its rate, ceiling, throttles and cuts."""
        return {key: pair[1] for key, pair in self._limiters.items()}

    def rates(self) -> dict[tuple[str, str], float]:
        """The rate in force per (kind, endpoint), for the live view and the report."""
        return {key: pair[1].rate for key, pair in self._limiters.items()}
