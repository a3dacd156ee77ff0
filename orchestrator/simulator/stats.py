"""Counters of what the simulator saw and did, for tests and benchmarks to assert on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

API_KINDS = ("reinstall", "job", "server")


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
        }
