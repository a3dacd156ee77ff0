"""Whether the endpoint can be reached at all: one breaker for the whole run.

A refused connection or a failed TLS handshake is safe to retry for one target,
but when it repeats across targets the fault is the endpoint, the network or the
proxy, and retrying every target one by one only hides it for minutes. The breaker
trips after `threshold` consecutive connection failures (no answer in between)
spread over at least `min_seconds`, so a blip of a second or two does not stop a
run; any answer from the service resets it. A failure that no wait can mend (the
endpoint's TLS certificate is not trusted: a CA to add with --ca-bundle) trips it
at once: every target would meet it, and nothing was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Reachability:
    threshold: int = 20
    min_seconds: float = 10.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    reached: bool = False  # the service answered at least once this run
    failures: int = 0  # consecutive connection failures
    first_failure: float | None = None
    last_error: str = ""
    tripped: bool = False

    def answered(self) -> None:
        self.reached = True
        self.failures = 0
        self.first_failure = None

    def failed(self, error: str, *, lasting: bool = False) -> bool:
        """Record a connection failure; True once the breaker has tripped (at once for
        a `lasting` one)."""
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        self.failures += 1
        self.last_error = error
        if lasting or (
            self.failures >= self.threshold and now - self.first_failure >= self.min_seconds
        ):
            self.tripped = True
        return self.tripped

    def describe(self, url: str) -> str:
        span = 0.0 if self.first_failure is None else self.clock() - self.first_failure
        if self.failures == 1:
            what = self.last_error
        else:
            what = (
                f"{self.failures} connection attempts in a row failed over {span:.0f} s"
                f" (last: {self.last_error})"
            )
        return (
            f"cannot reach {url}: {what}; check the endpoint, the network, "
            "the proxy (HTTPS_PROXY/NO_PROXY) and TLS (http vs https, --ca-bundle)"
        )
