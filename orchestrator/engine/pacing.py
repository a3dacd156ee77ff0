"""Pacing: when a request may leave, so that the service never sees more than the rate.

Every request of the run passes three layers here, and a fourth in `adaptive.py`:

    grant       `RateLimiter.acquire`: a token of the --rate / --poll-rate bucket
                (a reinstall's intent is committed after it, durable before the send)
    send slot   `RateLimiter.space`: the same bound again, right before the send
    guard       the run's pacers send at rate / (1 + DELIVERY_GUARD)
    adaptive    per API and endpoint, AIMD on the service's throttling, under the
                limit its gateway states (`orchestrator.engine.adaptive`)

Each stays because it changes what an operator sees at the rates a real gateway
allows (tens of calls per second per API); the figures are in the manual's
Measurements pages.

The grant. `RateLimiter` is a token bucket of capacity `burst` refilled at `rate`
tokens per second, with a FIFO queue of waiters parked on futures and one timer, armed
for the moment the next token is due: over any window of T seconds at most
`burst + rate * T` requests are let through, and with a queue that never runs dry the
long-run rate is `rate`. (asyncio-throttle, measured against it, releases a period's
quota as one burst, or, paced evenly, polls every 10 ms per waiting task and falls
short of the rate.) An event loop runs a timer a little late, so token times are
accumulated from the previous token, never re-anchored to "now", and a wake-up may be
half an interval late without losing time: two grants may then be half an interval
apart, but a window of a whole number of intervals still holds `burst + rate * T`.

The send slot. The token is taken before the runner commits the intent (a durable
intent must never queue in the pacer, where a crash would leave it in doubt), so a
stall between the grant and the send (a slow FULL sync of the state file, an IAM
token fetch; 0.1-1 s at times on a busy disk) holds granted requests back and then
lets them all leave at once. So `RateLimiter.space()`, awaited right before the
request leaves, is a second bucket at the same rate and burst (it follows `set_rate`):
sends keep the grants' bound. While it spreads a bunch out it holds the grants back,
so that a request waits there about the bunch's length and no more than
`_SPACING_SLACK` after it. The time a stall took is lost to the rate: making it up
would be the bunch the service counts against us. Granting reinstall tokens ahead of
their slot, so that a stall would cost nothing, was measured and removed: it gained
under a point of rate at 100/s and left a quarter more targets in doubt after a kill.
A stop fails the requests waiting for their slot at once (`interrupt_spacing`), and
those still waiting for a token (`interrupt_waiting`: during a gateway's hold of up
to a minute a stop would otherwise wait for the hold to end).

The delivery guard. Perfect spacing fills a closed 1-second window to exactly
`rate + burst`, so any difference in the requests' delays on the way (the event loop,
the network, the receiver) makes a window at the service hold more. The run's
limiters (`make_limiter`) send a token every `(1 + DELIVERY_GUARD) / rate` seconds:
a window at the service then holds at most `rate + burst` (integer rates) while those
delays differ by less than 10 ms. Measured at 10, 50 and 100 per second, it keeps the
pacer's own busiest second at rate + burst, where without it a second of 52 or 102
was common; it costs 1 % of the rate, less than one throttled answer does.

`Unlimited` has the same interface and never waits (no `--rate`, and tests). Both are
bound to one event loop at a time.
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

    def hold(self, until: float) -> None: ...

    async def acquire(self) -> None: ...

    async def space(self) -> None: ...

    def interrupt_spacing(self, error: Callable[[], BaseException]) -> int: ...

    def interrupt_waiting(self, error: Callable[[], BaseException]) -> int: ...

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        `guard` slows the tokens to one every `(1 + guard) / rate` seconds (see
        "Delivery guard" in the module docstring); 0 paces at exactly `rate`.
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
        self._rate = check_rate(rate)
        self._guard = float(guard)
        self._interval = (1.0 + self._guard) / self._rate
        self._burst = burst
        self._clock: Callable[[], float] | None = None if clock is time.monotonic else clock
        # The time at which the bucket holds one whole token: a grant is possible
        # at `now` iff `_next <= now`, and each grant moves it one interval on.
        # Tokens held at `now` are 1 + (now - _next) * rate; -inf means "full",
        # clamped to `burst` tokens on first use.
        self._next = -math.inf
        self._held = -math.inf  # no grant before this time (`hold`)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._cancelled_in_queue = 0  # cancelled futures not yet popped from _waiters
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # the `_next` the pending timer was armed for
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
                # Keep the tokens held now, 1 + (now - _next) * rate, unchanged,
                # counted from the end of a hold (which stays where it is in time).
                at = max(self._now(loop), self._held)
                self._next = at + (self._next - at) * self._rate / new_rate
        self._rate = new_rate
        self._interval = (1.0 + self._guard) / new_rate
        if self._timer is not None:
            self._arm()
        if self._spacer is not None:
            self._spacer.set_rate(new_rate)  # the send side follows the rate in force

    def hold(self, until: float) -> None:
        """Grant nothing before `until` (on this limiter's clock: the event loop's, or
        the one given), to the callers queued now as to those that come later: a
        service that said its window is full until then. After it, the bucket holds
        one token, not a hold's worth. The send side is not held: what was granted
        before goes (a reinstall's intent is committed by then)."""
        if until > self._held:
            self._held = until
        if until > self._next:
            self._next = until
            if self._timer is not None:
                self._arm()

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
            if self._next <= now:
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
        when none of them is to be sent (after a stall, a bunch of committed intents
        waits here; they go back to pending now, not when their slots would come).
        Returns how many there were; their slots are not used."""
        return 0 if self._spacer is None else self._spacer._fail_waiters(error)

    def interrupt_waiting(self, error: Callable[[], BaseException]) -> int:
        """Raise `error()` in every caller queued in `acquire`, at once: a stop, when
        none of them is to be sent (a reinstall waits for its token before its intent
        is committed, so nothing is owed for them). No token is consumed. Returns how
        many there were."""
        return self._fail_waiters(error)

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
        self._next = max(self._next - self._interval, self._held)
        self._granted -= 1
        if self._waiters:
            self._arm()

    def _arm(self) -> None:
        """Arm the single wake-up for the moment the next token is due."""
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop
        assert loop is not None
        self._timer_due = self._next
        if self._clock is None:
            self._timer = loop.call_at(self._next, self._on_timer)
        else:
            delay = max(0.0, self._next - self._clock())
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
        while waiters and self._next <= now:
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

    def hold(self, until: float) -> None:
        """Ignored: nothing is limited."""

    async def acquire(self) -> None:
        self._granted += 1

    async def space(self) -> None:
        """Nothing to re-space."""

    def interrupt_spacing(self, error: Callable[[], BaseException]) -> int:
        """No request ever waits here."""
        return 0

    def interrupt_waiting(self, error: Callable[[], BaseException]) -> int:
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


def make_limiter(rate: float | None, burst: int = 1) -> RateLimiter | Unlimited:
    """The limiter for a `--rate`/`--poll-rate` option, with the delivery guard; None
    means unlimited."""
    return Unlimited() if rate is None else RateLimiter(rate, burst, guard=DELIVERY_GUARD)
