"""Counters of what the simulator saw and did, for tests and benchmarks to assert on."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

API_KINDS = ("reinstall", "job", "server")
# Arrival times kept per API kind: enough for a benchmark's window, bounded for a long run.
REQUEST_TIMES_KEPT = 100_000


def _request_times() -> dict[str, deque[float]]:
    return {kind: deque(maxlen=REQUEST_TIMES_KEPT) for kind in API_KINDS}


@dataclass(slots=True)
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # every request, by API
    throttled: int = 0
    unauthorized: int = 0
    errors_injected: int = 0  # error_rate faults (500/503)
    busy: int = 0  # busy_rate faults (501 Ecs.0603)
    dropped: int = 0  # accepted reinstalls whose answer was never sent
    rejected_while_rebuilding: int = 0
    reinstalls_after_success: int = 0  # must stay 0 for a correct orchestrator
    reinstalls_by_server: Counter[str] = field(default_factory=Counter)
    successful_reinstalls_by_server: Counter[str] = field(default_factory=Counter)
    jobs_ended: Counter[str] = field(default_factory=Counter)  # by final status
    errors_by_code: Counter[str] = field(default_factory=Counter)  # every error answer
    # Clock reading at each request's arrival, by API: pacing measured at the service.
    request_times: dict[str, deque[float]] = field(default_factory=_request_times)
    max_concurrent_rebuilding: int = 0  # most servers in REBUILD at once, seen at accepts
    tokens_issued: Counter[str] = field(default_factory=Counter)  # IAM, by project
    token_refusals: int = 0  # IAM token requests answered with an error
    denied: int = 0  # ECS requests refused by a project's policy (403 Pdp.0001)

    def arrived(self, kind: str, now: float) -> None:
        """Count one request of `kind` and note when it came (the hot path: two appends)."""
        self.requests[kind] += 1
        self.request_times[kind].append(now)

    def rebuilding(self, now_rebuilding: int) -> None:
        """Note how many servers are in REBUILD right after a reinstall was accepted."""
        if now_rebuilding > self.max_concurrent_rebuilding:
            self.max_concurrent_rebuilding = now_rebuilding

    def as_dict(self, jobs_in_progress: int) -> dict[str, Any]:
        ended = {status: self.jobs_ended.get(status, 0) for status in ("SUCCESS", "FAIL")}
        return {
            "requests": {kind: self.requests.get(kind, 0) for kind in API_KINDS},
            "throttled": self.throttled,
            "unauthorized": self.unauthorized,
            "errors_injected": self.errors_injected,
            "busy": self.busy,
            "dropped": self.dropped,
            "rejected_while_rebuilding": self.rejected_while_rebuilding,
            "reinstalls_after_success": self.reinstalls_after_success,
            "reinstalls_total": sum(self.reinstalls_by_server.values()),
            "reinstalls_by_server": dict(self.reinstalls_by_server),
            "successful_reinstalls_by_server": dict(self.successful_reinstalls_by_server),
            "jobs": {**ended, "in_progress": jobs_in_progress},
            "errors_by_code": dict(self.errors_by_code),
            "request_times": {kind: list(self.request_times[kind]) for kind in API_KINDS},
            "max_concurrent_rebuilding": self.max_concurrent_rebuilding,
            "rebuilding_now": jobs_in_progress,
            "tokens_issued": dict(self.tokens_issued),
            "token_refusals": self.token_refusals,
            "denied": self.denied,
        }
