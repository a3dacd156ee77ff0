"""Request-rate limiting, both kinds the real cloud has, read off the injected clock.

    RateLimiter      the ECS service's own flow control (`rate_limit`): a token bucket
                     per API; its refusals say when to come back (429 Common.1503 with
                     Retry-After, or 202 Common.0024)
    GatewayLimiter   the API gateway in front of it (`api_limit`): per API, at most N
                     calls in each clock second and M in each clock minute; its
                     refusal is 429 APIGW.0308, naming the limit and the window, and
                     no Retry-After (Huawei Cloud's API-gateway documentation)

The gateway counts fixed windows (the calls since the current second, or minute,
began on the service's clock), and only the calls it lets through: a refused call
does not use up the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.simulator.config import ApiLimit
from orchestrator.simulator.errors import GatewayFault


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    last: float | None = None

    def take(self, now: float) -> float:
        """0.0 when a token was taken; otherwise the seconds until one will be there."""
        if self.last is not None and now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets by API kind; a limit of None lets everything through."""

    def __init__(self, rate: float | None) -> None:
        self._rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, kind: str, now: float) -> float:
        if self._rate is None:
            return 0.0
        bucket = self._buckets.get(kind)
        if bucket is None:
            # Capacity of one second's worth (at least one request) bounds the burst.
            capacity = max(1.0, self._rate)
            bucket = self._buckets[kind] = TokenBucket(self._rate, capacity, capacity)
        return bucket.take(now)


@dataclass(slots=True)
class _Window:
    """Calls let through in the current window of `length` seconds."""

    length: float
    limit: int
    index: float = -1.0  # which window (clock // length) the count is of
    count: int = 0

    def full(self, now: float) -> bool:
        index = now // self.length
        if index != self.index:  # a new window (or the clock stepped back): start afresh
            self.index, self.count = index, 0
        return self.count >= self.limit


class GatewayLimiter:
    """The API gateway's limits: per API kind, a per-second and a per-minute window."""

    def __init__(self, limit_of: Callable[[str], ApiLimit | None], request_id: Callable[[], str]):
        """`limit_of(kind)`: the limit on that API, None for none; `request_id()`: the ID
        the gateway gives each answer it writes."""
        self._limit_of = limit_of
        self._request_id = request_id
        self._windows: dict[str, tuple[_Window, ...]] = {}

    def take(self, kind: str, now: float) -> GatewayFault | None:
        """None when a call of `kind` at `now` passes (and is counted); else the refusal."""
        windows = self._windows.get(kind)
        if windows is None:
            windows = self._windows[kind] = self._make(kind)
        for window in windows:
            if window.full(now):
                unit = "second" if window.length == 1.0 else "minute"
                detail = f"policy user over ratelimit,limit:{window.limit},time:1 {unit}"
                return GatewayFault("APIGW.0308", detail, self._request_id())
        for window in windows:
            window.count += 1
        return None

    def _make(self, kind: str) -> tuple[_Window, ...]:
        limit = self._limit_of(kind)
        if limit is None:
            return ()
        windows = []
        if limit.per_second is not None:
            windows.append(_Window(1.0, limit.per_second))
        if limit.per_minute is not None:
            windows.append(_Window(60.0, limit.per_minute))
        return tuple(windows)
