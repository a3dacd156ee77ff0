"""Pacing: the rate limiter handed to the API client.

`RateLimiter` is a token bucket of capacity `burst` refilled at `rate` tokens
per second, with a FIFO queue of waiters and a single timer. It owns the
guarantee the issue asks for: over any window of T seconds at most
`burst + rate * T` requests are let through (see the note on timer lateness
below for the sub-token exception), and with a queue that never runs dry the
long-run rate is `rate`, not a few percent under it.

Why not asyncio-throttle (the issue's named limiter)? Measured in
benchmarks/PACING.md: by default it releases a whole period's quota as one
burst; paced evenly (`Throttler(1, 1/R)`) every waiting task polls every
10 ms, so CPU grows with the number of queued targets, and each grant starts
its period from the moment it was noticed, so the rate falls short of R.
Here, waiters park on futures and exactly one timer is armed, at the moment
the next token is due; when it fires it releases exactly the waiters the
tokens allow.

Timer lateness: an event loop runs a timer a little after its deadline (epoll
rounds timeouts up to the millisecond). Token times are therefore kept on a
schedule accumulated from the previous token time, never re-anchored to "now"
when a wake-up is late, and a wake-up may be up to half a token interval late
without losing time. This is what lets a `burst=1` limiter reach R instead of
R / (1 + lateness * R). The price is that two grants may be as close as half an
interval apart after a late wake-up; a window of a whole number of intervals
(e.g. any 1-second window at an integer rate) still holds at most
`burst + rate * T`.

Re-spacing before the send: the token is taken before the runner commits the
intent (a durable intent must never queue in the pacer, where a crash would
leave it in doubt), so whatever stalls between the grant and the send (a slow
group commit of the state file, an IAM token fetch) holds granted requests
back and then lets them all leave at once: a window at the service then holds
far more than `burst + rate * T`. `RateLimiter.space()`, awaited right before
the request leaves, is a second bucket at the same rate and burst (it follows
`set_rate`) on the send side, so sends keep the same bound as grants. While it
spreads a bunch out, it also holds the grants back, so that the requests
granted meanwhile do not queue behind the bunch for ever: a request waits in
the spacer about the bunch's length (bunch / rate) and no more than
`_SPACING_SLACK` (plus the limiter's lead, below) after it. The time a stall
took is lost to the rate: sending it at once is exactly the bunch the service
would count against us.

Delivery guard: perfect spacing fills a closed 1-second window to exactly
`rate + burst`, so any difference in the requests' delays on the way (the
sender's own event loop, the network, the receiver's scheduling) makes a
window at the service hold more. The run's limiters (`make_limiter`) are built with
`guard=DELIVERY_GUARD` (0.01): tokens come every `(1 + guard) / rate` seconds,
so a sender window of `1 + guard` seconds holds what a 1-second window may,
and a window at the service holds at most `rate + burst` (integer rates) while
those delays differ by less than 10 ms. It costs 1 % of the rate: cheaper than
the throttled answers it avoids, each of which cuts an adaptive rate by 30 %.
`rate` stays the configured figure; the limiter sends at `rate / (1 + guard)`.

Intent lead: the re-spacing above keeps the bound, but the time a stall took
is still lost to the rate, and on a busy disk the intent's FULL sync stalls for
~100 ms several times a minute (at 200/s that was 2-4 % of the rate). So the
reinstall limiters are built with `lead=INTENT_LEAD`: a token is granted up to
that long before it is due, the intent is committed then, and the request waits
for its due slot in `space`. A stall shorter than the lead only empties part of
that queue of committed intents; sends go on at the rate. The lead never lets
more out: the send side is the same bucket with the same bound; it only moves
the grant, and with it the intent, earlier. What it costs: up to
`INTENT_LEAD * rate` more intents are durable and unsent at any moment: after a
crash each is settled from the server, as any intent in doubt is; at a stop they
are put back unsent at once (`interrupt_spacing`). The queue only builds while
targets wait for the rate, so it takes no in-flight slot from jobs when the rate
is not what limits the run.

`Unlimited` has the same interface and never waits (no `--rate`, and tests).
Both are bound to one event loop at a time.

Adaptive pacing (AIMD on the service's throttling, per API and endpoint) is in
`orchestrator.engine.adaptive`.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

__all__ = [
    "DELIVERY_GUARD",
    "INTENT_LEAD",
    "Limiter",
    "RateLimiter",
    "Unlimited",
    "check_rate",
    "make_limiter",
]

# How late (in token intervals) a wake-up may be without the bucket losing
# time. Half an interval keeps any window of a whole number of intervals within
# burst + rate * T (the half token rounds away), yet covers the ~1 ms lateness
# of epoll up to 500 requests/s at burst=1; a larger burst adds burst-1
# intervals of headroom on top.
_LATE_WAKEUP_ALLOWANCE = 0.5

# How far ahead (seconds, or intervals if more) the spacer may hold requests before the
# grants are held back: an intent waits in the spacer about this long at most once a
# bunch has been spread. It absorbs the usual jitter of a commit (tens of ms) without
# costing the rate; only a real stall holds the grants back.
_SPACING_SLACK = 0.05
_SPACING_SLACK_INTERVALS = 2.0

# The send side makes up to this much of a token of lateness (a late wake-up, a request
# that came late), on both paths: every request passes it, most of them through its
# timer, and at 200/s a loaded event loop is late by a few ms (half an interval) all the
# time; losing that at each send would cost the rate. Below one token, any window of a
# whole number of intervals still holds at most `burst + rate * T` sends.
_SPACING_ALLOWANCE = 0.9

# The run's pacers keep this share of an interval in hand for delivery jitter (see
# "Delivery guard" above): 10 ms per second.
DELIVERY_GUARD = 0.01

# Seconds ahead of its send slot a reinstall's token is granted, so its intent is
# durable before the slot comes (see "Intent lead" above): longer than the disk
# stalls seen (~100 ms), short enough that few intents wait unsent.
INTENT_LEAD = 0.5

# A wake-up this early (seconds) under an injected clock counts as on time.
_EARLY_TOLERANCE = 1e-6


class Limiter(Protocol):
    """What the API client needs from a pacer."""

    @property
    def rate(self) -> float: ...

    @property
    def burst(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def granted(self) -> int: ...

    def set_rate(self, rate: float) -> None: ...

    async def acquire(self) -> None: ...

    async def space(self) -> None: ...

    def interrupt_spacing(self, error: Callable[[], BaseException]) -> int: ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_rate(rate: float) -> float:
    """`rate` as a float; ValueError unless it is a finite number > 0."""
    # `not rate > 0` also rejects NaN.
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a finite number > 0 (requests per second), got {rate!r}")
    return float(rate)


class RateLimiter:
    """A FIFO token bucket: at most `burst` at once, `rate` per second after that."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        guard: float = 0.0,
        lead: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        `guard` slows the tokens to one every `(1 + guard) / rate` seconds (see
        "Delivery guard" in the module docstring); 0 paces at exactly `rate`.
        `lead` grants each token up to that many seconds before it is due, for
        callers that prepare a request before `space` (see "Intent lead"); the
        send side (`space`) keeps the bound. 0 grants on time.
        `clock` is a monotonic clock in seconds. With the default the event
        loop's own clock is used instead (the same clock for asyncio's default
        loop), so the wake-up is armed with `call_at` exactly at the token time;
        any other clock is read for the bucket arithmetic and the wake-up is
        armed with `call_later(due - clock())`, which lets tests drive time.
        """
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
        if not (0.0 <= guard < 1.0):  # also rejects NaN
            raise ValueError(f"guard must be in [0, 1), got {guard!r}")
        if not (0.0 <= lead < math.inf):  # also rejects NaN
            raise ValueError(f"lead must be a finite number of seconds >= 0, got {lead!r}")
        self._rate = check_rate(rate)
        self._guard = float(guard)
        self._interval = (1.0 + self._guard) / self._rate
        self._burst = burst
        self._lead = float(lead)
        self._clock: Callable[[], float] | None = None if clock is time.monotonic else clock
        # The time at which the bucket holds one whole token: a grant is possible
        # at `now` iff `_next <= now`, and each grant moves it one interval on.
        # Tokens held at `now` are 1 + (now - _next) * rate; -inf means "full",
        # clamped to `burst` tokens on first use.
        self._next = -math.inf
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._cancelled_in_queue = 0  # cancelled futures not yet popped from _waiters
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # when the pending timer was armed for: `_next - lead`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._granted = 0
        self._spacer: RateLimiter | None = None  # the send side, made by the first `space`
        # Tokens of lateness made up: after an idle spell (none, so an idle bucket
        # holds exactly `burst`) and after a late wake-up (see the module docstring).
        self._idle_allowance = 0.0
        self._late_allowance = _LATE_WAKEUP_ALLOWANCE

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self._rate:g}, burst={self._burst}, guard={self._guard:g}, "
            f"waiting={self.waiting}, granted={self._granted})"
        )

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Capacity of the bucket: the most requests let through at once."""
        return self._burst

    @property
    def guard(self) -> float:
        """Share of each interval kept in hand for delivery jitter."""
        return self._guard

    @property
    def lead(self) -> float:
        """Seconds before its send slot a token is granted."""
        return self._lead

    @property
    def waiting(self) -> int:
        """Number of callers queued in `acquire`."""
        return len(self._waiters) - self._cancelled_in_queue

    @property
    def granted(self) -> int:
        """Tokens granted so far (a token granted to a caller cancelled before it
        could use it is given back and not counted)."""
        return self._granted

    def set_rate(self, rate: float) -> None:
        """Change the refill rate, keeping the tokens (or fraction of one) held now.

        Safe while callers are queued: the pending wake-up is re-armed for the
        moment the next token is due at the new rate.
        """
        new_rate = check_rate(rate)
        if new_rate == self._rate:
            return
        if math.isfinite(self._next):
            loop = self._loop or _running_loop_or_none()
            if loop is not None or self._clock is not None:
                # Keep the tokens held now unchanged: 1 + (now - _next) * rate, counted
                # from the grant point `now + lead` (the lead stays the same in seconds).
                at = self._now(loop) + self._lead
                self._next = at + (self._next - at) * self._rate / new_rate
        self._rate = new_rate
        self._interval = (1.0 + self._guard) / new_rate
        if self._timer is not None:
            self._arm()
        if self._spacer is not None:
            self._spacer.set_rate(new_rate)  # the send side follows the rate in force

    async def acquire(self) -> None:
        """Wait, in FIFO order, for one token.

        A caller cancelled while waiting consumes nothing; one cancelled after
        its token was granted but before it resumed gives the token back.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._waiters:
                raise RuntimeError("RateLimiter is in use by another event loop")
            self._loop = loop
            self._timer = None
        if not self._waiters:
            now = self._now(loop)
            self._cap(now, allowance=self._idle_allowance)
            if self._next <= now + self._lead:
                self._grant()
                return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if self._timer is None:
            self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                self._cancelled_in_queue += 1
                self._drop_cancelled_head()
            else:
                self._refund()
            raise

    async def space(self) -> None:
        """Wait, right before a request granted by `acquire` leaves, for its send slot.

        Sends are paced by a second bucket of the same rate and burst, so a bunch
        released at once by a stall after the grant is spread out again. While a
        bunch is being spread, grants are held back until it has nearly left (see
        the module docstring), which bounds how long a request waits here.
        """
        spacer = self._spacer
        if spacer is None:
            spacer = self._spacer = RateLimiter(
                self._rate, self._burst, guard=self._guard, clock=self._clock or time.monotonic
            )
            spacer._idle_allowance = spacer._late_allowance = _SPACING_ALLOWANCE
        loop = asyncio.get_running_loop()
        now = spacer._now(loop)
        due = spacer._due(now)
        if due > now:
            slack = max(_SPACING_SLACK, _SPACING_SLACK_INTERVALS * self._interval)
            if self._next < due - slack:
                self._next = due - slack  # a queued waiter's timer re-arms for it
        await spacer.acquire()

    @property
    def spacing(self) -> int:
        """Requests waiting for their send slot in `space`."""
        return 0 if self._spacer is None else self._spacer.waiting

    def interrupt_spacing(self, error: Callable[[], BaseException]) -> int:
        """Raise `error()` in every request waiting for its send slot, at once: a stop,
        when none of them is to be sent (their intents are put back sooner than their
        slots would come). Returns how many there were; their slots are not used."""
        return 0 if self._spacer is None else self._spacer._fail_waiters(error)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- internals --------------------------------------------------------

    def _due(self, now: float) -> float:
        """When a caller arriving at `now` would be granted (behind those queued)."""
        first = max(self._next, now - (self._burst - 1 + self._idle_allowance) * self._interval)
        return first + self.waiting * self._interval

    def _now(self, loop: asyncio.AbstractEventLoop | None) -> float:
        if self._clock is not None:
            return self._clock()
        assert loop is not None
        return loop.time()

    def _cap(self, now: float, allowance: float) -> None:
        """Let the bucket hold at most `burst + allowance` tokens at `now`."""
        floor = now - (self._burst - 1 + allowance) * self._interval
        if self._next < floor:
            self._next = floor

    def _grant(self) -> None:
        # Accumulate from the previous token time, not from `now`: see the
        # module docstring on timer lateness.
        self._next += self._interval
        self._granted += 1

    def _refund(self) -> None:
        self._next -= self._interval
        self._granted -= 1
        if self._waiters:
            self._arm()

    def _arm(self) -> None:
        """Arm the single wake-up for the moment the next token is due."""
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop
        assert loop is not None
        self._timer_due = due = self._next - self._lead
        if self._clock is None:
            self._timer = loop.call_at(due, self._on_timer)
        else:
            delay = max(0.0, due - self._clock())
            self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._now(self._loop)
        if self._clock is None or self._timer_due - now <= _EARLY_TOLERANCE:
            # asyncio runs a timer up to its clock resolution before the deadline,
            # and a delay converted to another clock can come back an ulp short:
            # the timer is due, so the token is, instead of re-arming for 1e-16 s.
            now = max(now, self._timer_due)
        self._cap(now, allowance=self._late_allowance)
        waiters = self._waiters
        grant_until = now + self._lead
        while waiters and self._next <= grant_until:
            fut = waiters.popleft()
            if fut.done():  # cancelled while queued: it gets no token
                self._cancelled_in_queue -= 1
                continue
            fut.set_result(None)
            self._grant()
        self._drop_cancelled_head()
        if waiters:
            self._arm()

    def _fail_waiters(self, error: Callable[[], BaseException]) -> int:
        failed = 0
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():  # a done one was cancelled by its caller
                fut.set_exception(error())
                failed += 1
        self._cancelled_in_queue = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return failed

    def _drop_cancelled_head(self) -> None:
        # Only futures cancelled by their caller are ever done while queued.
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()
            self._cancelled_in_queue -= 1
        if not waiters and self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Unlimited:
    """A limiter that never waits: for runs without `--rate`, and for tests."""

    def __init__(self) -> None:
        self._granted = 0

    def __repr__(self) -> str:
        return f"Unlimited(granted={self._granted})"

    @property
    def rate(self) -> float:
        return math.inf

    @property
    def burst(self) -> int:
        # Nothing is limited: the bucket is as large as an int gets.
        return sys.maxsize

    @property
    def waiting(self) -> int:
        return 0

    @property
    def granted(self) -> int:
        return self._granted

    def set_rate(self, rate: float) -> None:
        """Accepted and ignored, so adaptive pacing can drive either limiter."""
        check_rate(rate)

    async def acquire(self) -> None:
        self._granted += 1

    async def space(self) -> None:
        """Nothing to re-space."""

    def interrupt_spacing(self, error: Callable[[], BaseException]) -> int:
        """No request ever waits here."""
        return 0

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def make_limiter(
    rate: float | None, burst: int = 1, *, lead: float = 0.0
) -> RateLimiter | Unlimited:
    """The limiter for a `--rate`/`--poll-rate` option, with the delivery guard (and
    `lead`, for reinstalls: `INTENT_LEAD`); None means unlimited."""
    if rate is None:
        return Unlimited()
    return RateLimiter(rate, burst, guard=DELIVERY_GUARD, lead=lead)
