"""Counters of what the simulator saw and did, for tests and measurements to assert on."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from orchestrator.simulator.config import API_KINDS as API_KINDS  # the stats name them too

REINSTALL_APIS = ("v1", "v2")  # without / with Cloud-Init
# Arrival times kept per API kind: enough for a pacing measurement, bounded for a long run.
REQUEST_TIMES_KEPT = 100_000


def _request_times() -> dict[str, deque[float]]:
    return {kind: deque(maxlen=REQUEST_TIMES_KEPT) for kind in API_KINDS}


def _by_api(counts: Counter[str]) -> dict[str, int]:
    return {api: counts.get(api, 0) for api in REINSTALL_APIS}


def _by_kind(counts: Counter[str]) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in API_KINDS}


@dataclass(slots=True)
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # every request, by API
    throttled: int = 0  # throttling answers: the service's (rate_limit) and the gateway's
    throttled_by_kind: Counter[str] = field(default_factory=Counter)  # the same, by API
    # The gateway's alone (api_limit: 429 APIGW.0308), by API.
    gateway_throttled_by_kind: Counter[str] = field(default_factory=Counter)
    unauthorized: int = 0
    errors_injected: int = 0  # error_rate faults (500/503)
    busy: int = 0  # busy_rate faults (501 Ecs.0603)
    dropped: int = 0  # accepted reinstalls whose answer was never sent
    errors_after_acting: int = 0  # accepted reinstalls answered 500/503
    slow_answers: int = 0  # accepted reinstalls answered late
    rejected_while_rebuilding: int = 0  # refused while the server showed REBUILD
    # Reinstall requests for a server whose job had not ended (refused, as the
    # real service does): must stay 0 for a correct orchestrator.
    overlapping_attempts: int = 0
    overlapping_by_server: Counter[str] = field(default_factory=Counter)
    reinstalls_after_success: int = 0  # must stay 0 for a correct orchestrator
    # Second reinstalls accepted while another ran (second_reinstall): must stay 0 too.
    accepted_second: int = 0
    trace_queries: int = 0  # CTS trace list queries
    reinstalled_after_success: set[str] = field(default_factory=set)  # their servers
    reinstall_requests_by_api: Counter[str] = field(default_factory=Counter)
    reinstalls_by_api: Counter[str] = field(default_factory=Counter)  # accepted
    # Jobs that said SUCCESS while the server did not come back: verification cases.
    success_but_error: set[str] = field(default_factory=set)
    success_but_stale: set[str] = field(default_factory=set)
    reinstalls_by_server: Counter[str] = field(default_factory=Counter)
    successful_reinstalls_by_server: Counter[str] = field(default_factory=Counter)
    jobs_ended: Counter[str] = field(default_factory=Counter)  # by final status
    errors_by_code: Counter[str] = field(default_factory=Counter)  # every error answer
    # Clock reading at each request's arrival, by API: pacing measured at the service.
    request_times: dict[str, deque[float]] = field(default_factory=_request_times)
    # Most jobs under way at once (queued, powering off or rebuilding), seen at accepts.
    max_concurrent_rebuilding: int = 0
    # The same per project: --project-max-in-flight measured at the service.
    max_concurrent_by_project: Counter[str] = field(default_factory=Counter)
    tokens_issued: Counter[str] = field(default_factory=Counter)  # IAM, by project
    token_refusals: int = 0  # IAM token requests answered with an error
    denied: int = 0  # ECS requests refused by a project's policy (403 Pdp.0001)
    connections: int = 0  # connections that carried API (or IAM) requests
    # Reinstalls that came on a connection which had carried a request before: must
    # stay 0, the orchestrator opens a connection for each reinstall.
    reinstalls_on_reused_connections: int = 0

    def arrived(self, kind: str, now: float) -> None:
        """Count one request of `kind` and note when it came (the hot path: two appends)."""
        self.requests[kind] += 1
        self.request_times[kind].append(now)

    def refused_for_rate(self, kind: str, *, gateway: bool) -> None:
        """Count a throttling answer to a request of `kind` (by the gateway, or the service)."""
        self.throttled += 1
        self.throttled_by_kind[kind] += 1
        if gateway:
            self.gateway_throttled_by_kind[kind] += 1

    def overlapping(self, server_id: str) -> None:
        """Count a reinstall request that came while the server's job was under way."""
        self.overlapping_attempts += 1
        self.overlapping_by_server[server_id] += 1

    def rebuilding(
        self, now_rebuilding: int, project_id: str | None = None, in_project: int = 0
    ) -> None:
        """Note how many jobs are under way (in all, and in the project of the one just
        accepted) right after a reinstall was accepted."""
        if now_rebuilding > self.max_concurrent_rebuilding:
            self.max_concurrent_rebuilding = now_rebuilding
        if project_id is not None and in_project > self.max_concurrent_by_project[project_id]:
            self.max_concurrent_by_project[project_id] = in_project

    def as_dict(self, jobs_in_progress: int) -> dict[str, Any]:
        ended = {status: self.jobs_ended.get(status, 0) for status in ("SUCCESS", "FAIL")}
        return {
            "requests": _by_kind(self.requests),
            "throttled": self.throttled,
            "throttled_by_kind": _by_kind(self.throttled_by_kind),
            "gateway_throttled_by_kind": _by_kind(self.gateway_throttled_by_kind),
            "unauthorized": self.unauthorized,
            "errors_injected": self.errors_injected,
            "busy": self.busy,
            "dropped": self.dropped,
            "errors_after_acting": self.errors_after_acting,
            "slow_answers": self.slow_answers,
            "rejected_while_rebuilding": self.rejected_while_rebuilding,
            "overlapping_attempts": self.overlapping_attempts,
            "accepted_second": self.accepted_second,
            "trace_queries": self.trace_queries,
            "overlapping_servers": sorted(self.overlapping_by_server),
            "overlapping_by_server": dict(self.overlapping_by_server),
            "reinstalls_after_success": self.reinstalls_after_success,
            "reinstalled_after_success": sorted(self.reinstalled_after_success),
            "reinstall_requests_by_api": _by_api(self.reinstall_requests_by_api),
            "reinstalls_by_api": _by_api(self.reinstalls_by_api),
            "success_but_error": sorted(self.success_but_error),
            "success_but_stale": sorted(self.success_but_stale),
            "reinstalls_total": sum(self.reinstalls_by_server.values()),
            "reinstalls_by_server": dict(self.reinstalls_by_server),
            "successful_reinstalls_by_server": dict(self.successful_reinstalls_by_server),
            "jobs": {**ended, "in_progress": jobs_in_progress},
            "errors_by_code": dict(self.errors_by_code),
            "request_times": {kind: list(self.request_times[kind]) for kind in API_KINDS},
            "max_concurrent_rebuilding": self.max_concurrent_rebuilding,
            "max_concurrent_by_project": dict(self.max_concurrent_by_project),
            "rebuilding_now": jobs_in_progress,
            "tokens_issued": dict(self.tokens_issued),
            "token_refusals": self.token_refusals,
            "denied": self.denied,
            "connections": self.connections,
            "reinstalls_on_reused_connections": self.reinstalls_on_reused_connections,
        }
