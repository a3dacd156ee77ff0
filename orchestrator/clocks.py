"""The clocks a run reads, and what each one may decide.

    monotonic  every duration that decides safety: how long a doubt has been
               watched (the quiet period), job timeouts. `time.monotonic` does
               not move when the wall clock is stepped (NTP, a restored VM).
    service    the ECS service's own clock, learned from the `Date` header of its
               answers and carried forward on the monotonic clock, so a step of
               this host's wall clock does not move it either. Intents are stamped
               on it, because what they are compared with (`launched_at`,
               `updated`, a job's times) is stamped by the service.
    wall       this host's clock (`wall_now`): when something happened, for
               people (events, reports) and for the operator's windows and
               deadlines. Never compared with a time the service wrote.

A `Date` header has whole seconds and is written somewhere between the moment a
request left and the moment its answer arrived, so each answer bounds the
service's clock from both sides; the bounds of recent answers are intersected,
and the estimate's error shrinks as answers arrive at different fractions of a
second (the idea of NTP, without its statistics).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# How far the service's own clocks may disagree with each other (the gateway that
# writes `Date` and the hosts that write `launched_at`). The documentation says
# nothing; clouds run their hosts on NTP, within milliseconds. Two seconds is an
# allowance far above that and far below the minutes a reinstall takes.
SERVICE_CLOCKS_AGREE_WITHIN = 2.0
# How far a time stamped on this host's clock, not the service's, may be off the
# service's clock: a host without NTP drifts by minutes, not more, before someone
# notices (the run itself refuses to send beyond --max-clock-skew).
UNSYNCED_ERROR = 300.0
# Answers whose `Date` bounds are kept: enough to narrow the error to a few tens
# of milliseconds, few enough that a stepped service clock is forgotten quickly.
KEPT_ANSWERS = 32


def wall_now() -> datetime:
    """This host's wall clock, in UTC. Read through this one function so that a test
    can step it the way NTP or a restored VM would."""
    return datetime.fromtimestamp(wall_seconds(), UTC)


def wall_seconds() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """A moment on the service's clock, and how far the estimate may be off (seconds,
    either way; the disagreement between the service's own clocks not included)."""

    at: datetime
    error: float

    def iso(self) -> str:
        return self.at.isoformat(timespec="microseconds")


class ServiceClock:
    """The service's clock as this process has learned it from `Date` headers."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        # (lower, upper) bounds of the service's epoch seconds minus monotonic seconds.
        self._bounds: deque[tuple[float, float]] = deque(maxlen=KEPT_ANSWERS)
        self.answers = 0  # answers that carried a usable Date

    @property
    def known(self) -> bool:
        return bool(self._bounds)

    def observe(self, date: str | None, sent: float, received: float) -> None:
        """One answer: its `Date` header, and the monotonic times its request left and
        its answer arrived."""
        if not date:
            return
        try:
            stamped = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if stamped.tzinfo is None:  # RFC 7231 dates are GMT
            stamped = stamped.replace(tzinfo=UTC)
        seconds = stamped.timestamp()
        if not math.isfinite(seconds) or received < sent:
            return
        # Written at some moment m in [sent, received], showing a time in [D, D + 1).
        self._bounds.append((seconds - received, seconds + 1.0 - sent))
        self.answers += 1

    def now(self) -> ServiceTime | None:
        """The service's time now, or None before any answer told it."""
        return self.at(self._monotonic())

    def at(self, monotonic: float) -> ServiceTime | None:
        """The service's time at a moment of this process's monotonic clock, with what
        every answer so far has told (a moment already past is known better later)."""
        offset = self._offset()
        if offset is None:
            return None
        middle, error = offset
        return ServiceTime(datetime.fromtimestamp(monotonic + middle, UTC), error)

    def skew(self) -> float | None:
        """How far this host's wall clock is ahead of the service's (negative: behind)."""
        offset = self._offset()
        if offset is None:
            return None
        wall = self._wall() if self._wall is not None else wall_seconds()
        return wall - (self._monotonic() + offset[0])

    def _offset(self) -> tuple[float, float] | None:
        if not self._bounds:
            return None
        low = max(b[0] for b in self._bounds)
        high = min(b[1] for b in self._bounds)
        if low > high:
            # The answers disagree: the service's clock was stepped, or its front
            # ends disagree. Take everything they allow, and the error that implies.
            low = min(b[0] for b in self._bounds)
            high = max(b[1] for b in self._bounds)
        return (low + high) / 2, (high - low) / 2
