"""Request-rate limiting: one token bucket per API, refilled from the injected clock."""

from __future__ import annotations

from dataclasses import dataclass


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
