"""Which failures are retried, which fail the target, which are settled from the server.

The table is a pure function (`decide`) so it can be tested row by row; the
tenacity policies built from it are what the runner wraps its calls in.

    error                     reinstall            job / server / list query
    ------------------------  -------------------  -------------------------
    Throttled (429, APIGW.    retry (Retry-After,  retry (Retry-After,
      0308, 202/0024)         else the backoff)    else the backoff)
                              until max_delay, whatever the attempt count
    ServiceBusy (501/0603)    -- (CommandUnder-    retry
                              Way: settle from
                              the server)
    NotSent (connect failed)  retry                retry
    RetryLater (5xx, timeout) -- (never raised)    retry
    OutcomeUnknown            settle from server   --
    BadResponse               settle from server   settle from server
    AuthFailed (401, APIGW.   stop the run         stop the run
      0301/0307)
    ProjectRefused (403)      fail the target      (runner: defer / settle)
    RunCannotGoOn (bare 404,  stop the run         stop the run
      endpoint unreachable)
    NotFound / Rejected (4xx) fail the target      settle / fail
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from orchestrator.errors import (
    AuthFailed,
    BadResponse,
    CommandUnderWay,
    OutcomeUnknown,
    Rejected,
    RetryLater,
    RunCannotGoOn,
    Throttled,
)

T = TypeVar("T")


class Decision(StrEnum):
    RETRY = "retry"  # refused before acting: send again after a backoff
    FAIL = "fail"  # the service means it: this target has failed
    SETTLE = "settle"  # outcome unknown: ask the server what happened, never resend blindly
    ABORT = "abort"  # the whole run cannot go on (credentials refused)


def decide(exc: BaseException) -> Decision:
    """What to do about a failed API call."""
    if isinstance(exc, RetryLater):
        return Decision.RETRY
    if isinstance(exc, (AuthFailed, RunCannotGoOn)):
        return Decision.ABORT
    if isinstance(exc, (OutcomeUnknown, BadResponse, CommandUnderWay)):
        return Decision.SETTLE
    if isinstance(exc, Rejected):
        return Decision.FAIL
    return Decision.SETTLE


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 6  # tries of one call before the target is deferred
    max_delay: float = 120.0  # seconds spent retrying one call at most
    backoff_base: float = 0.5  # first backoff, doubled each time, with full jitter
    backoff_cap: float = 30.0


@functools.cache
def brief(settings: RetrySettings) -> RetrySettings:
    """The budget of a read that comes round again anyway: at most 3 tries (made once)."""
    return dataclasses.replace(settings, attempts=min(3, settings.attempts))


class wait_retry_after:
    """Wait what the service asked for (Retry-After) or else exponential backoff with jitter."""

    def __init__(self, fallback: wait_random_exponential, cap: float) -> None:
        self._fallback = fallback
        self._cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = float(self._fallback(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return min(max(float(asked), backoff), max(self._cap, float(asked)))
        return backoff


class stop_after_attempt_unless_throttled(stop_base):
    """Give up after `attempts` tries, except while the service only throttles.

    Throttling says "slower", not "no": a target refused for it keeps its turn
    (within `max_delay`) rather than being deferred to another run.
    """

    def __init__(self, attempts: int) -> None:
        self._attempts = stop_after_attempt(attempts)

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), Throttled):
            return False
        return bool(self._attempts(retry_state))


def retrying(settings: RetrySettings) -> AsyncRetrying:
    """Retry calls whose failure `decide`s RETRY; anything else is raised at once."""
    return AsyncRetrying(
        retry=retry_if_exception(lambda e: decide(e) is Decision.RETRY),
        stop=stop_after_delay(settings.max_delay)
        | stop_after_attempt_unless_throttled(settings.attempts),
        wait=wait_retry_after(
            wait_random_exponential(multiplier=settings.backoff_base, max=settings.backoff_cap),
            settings.backoff_cap,
        ),
        reraise=True,
    )


async def call_retrying(settings: RetrySettings, call: Callable[[], Awaitable[T]]) -> T:
    """`call()` under `retrying(settings)`: its result, or the error it ends with."""
    async for attempt in retrying(settings):
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover
