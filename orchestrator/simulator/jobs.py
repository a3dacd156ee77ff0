"""Reinstall jobs: planned in full when accepted, their status read off the clock.

A job's phases and outcome are fixed the moment it is accepted (from the seed,
the server and that server's reinstall count), so nothing needs a timer: the
status at any moment is a pure function of the job and the time (see `phases`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.simulator import draws, timefmt
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.phases import Phase, Timeline

JOB_TYPE = "reinstallOs"

# How long a job awaiting payment waits: nobody pays while the simulator runs.
PAYMENT_WAIT = 10 * 365 * 86_400.0

# (error_code, fail_reason) of a failed reinstall: plausible system-disk failures.
FAILURES: tuple[tuple[str, str], ...] = (
    ("Ecs.0101", "EcsException: the system disk is currently unresponsive."),
    ("Ecs.0202", "EcsException: failed to create the system disk."),
)


class JobStatus(StrEnum):
    INIT = "INIT"  # accepted, queued: the server is untouched
    RUNNING = "RUNNING"  # powering the server off, or rebuilding it
    SUCCESS = "SUCCESS"  # reinstalled (the server is ACTIVE, unless a verification case)
    FAIL = "FAIL"  # not reinstalled; launched_at unchanged
    PENDING_PAYMENT = "PENDING_PAYMENT"  # a yearly/monthly server's order awaits payment


FINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.SUCCESS, JobStatus.FAIL})


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    sub_job_id: str
    project_id: str
    server_id: str
    api: str  # "v1" or "v2" (Cloud-Init)
    key_name: str  # installed by the rebuild
    timeline: Timeline
    error_code: str | None  # None: the job will say SUCCESS
    fail_reason: str | None
    end_status: str  # the server's status when the job ends: ACTIVE, SHUTOFF or ERROR
    launches: bool  # whether the end moves the server's launched_at
    awaits_payment: bool = False  # queued as PENDING_PAYMENT rather than INIT
    # The system disk's new volume ID (the reinstall replaced it); None: not replaced.
    new_volume: str | None = None
    # Seconds after the end before the server is back (ACTIVE): it boots meanwhile.
    back_after: float = 0.0
    # A second reinstall accepted while this server's job ran: a job of its own, which
    # never touches the server (second_reinstall).
    shadow: bool = False

    @property
    def begin(self) -> float:
        return self.timeline.begin

    @property
    def end(self) -> float:
        return self.timeline.end

    @property
    def fails(self) -> bool:
        return self.error_code is not None

    @property
    def outcome(self) -> JobStatus:
        return JobStatus.FAIL if self.fails else JobStatus.SUCCESS

    def phase_at(self, now: float) -> Phase:
        return self.timeline.phase_at(now)

    def status_at(self, now: float) -> JobStatus:
        phase = self.timeline.phase_at(now)
        if phase is Phase.ENDED:
            return self.outcome
        if phase is Phase.QUEUED and self.awaits_payment:
            return JobStatus.PENDING_PAYMENT
        # Never RUNNING at the instant of acceptance, even without a queue.
        if phase is Phase.QUEUED or now <= self.begin:
            return JobStatus.INIT
        return JobStatus.RUNNING


def _span(seed: int, name: str, span: tuple[float, float], *parts: object) -> float:
    low, high = span
    return low + (high - low) * draws.unit(seed, name, *parts) if high > low else low


def plan_job(
    config: SimulatorConfig,
    project_id: str,
    server_id: str,
    attempt: int,
    now: float,
    *,
    stops_server: bool = False,
    prior_status: str = "SHUTOFF",
    api: str = "v1",
    key_name: str = "",
) -> Job:
    """The job for a server's `attempt`-th accepted reinstall (1-based), accepted now.

    `stops_server`: withStopServer on a running server, so the power-off phases
    exist. `prior_status`: the server's status at acceptance, where a failed
    rebuild may put it back. Every draw is fixed by (seed, server, attempt).
    """
    seed = config.seed
    key = (server_id, attempt)
    awaits_payment = draws.unit(seed, "payment", *key) < config.pending_payment_rate
    queue = _span(seed, "queue", config.queue_seconds, *key)
    timeline = Timeline.plan(
        now,
        PAYMENT_WAIT if awaits_payment else queue,
        _span(seed, "power_off", config.power_off_seconds, *key),
        _span(seed, "stopped", config.stopped_seconds, *key),
        _span(seed, "duration", config.job_seconds, *key),
        stops_server=stops_server,
    )
    error_code = fail_reason = None
    # The ECS is started after a reinstall, unless it was stopped and the service keeps
    # it so (keep_power_state).
    kept_off = config.keep_power_state and prior_status == "SHUTOFF" and not stops_server
    end_status = "SHUTOFF" if kept_off else "ACTIVE"
    replaced = True  # the system disk is replaced: the one change the reference promises
    if draws.unit(seed, "fail", *key) < config.job_fail_rate:
        pick = int(draws.unit(seed, "failure", *key) * len(FAILURES))
        error_code, fail_reason = FAILURES[pick]
        replaced = False
        if draws.unit(seed, "fail_to_error", *key) < config.fail_to_error_rate:
            end_status = "ERROR"
        elif config.fail_restarts and prior_status == "ACTIVE":
            end_status = "ACTIVE"  # started again as it was: a start, not a reinstall
        else:
            # Back where it was: stopped (by the job, if it was running), or still ERROR.
            end_status = "ERROR" if prior_status == "ERROR" else "SHUTOFF"
    elif draws.unit(seed, "success_but_error", *key) < config.success_but_error_rate:
        end_status = "ERROR"  # rebuilt (the disk replaced) but did not come back
    elif draws.unit(seed, "success_but_stale", *key) < config.success_but_stale_rate:
        replaced = False  # says SUCCESS, yet the old system disk is still there
    # Whether launched_at moves: not documented either way, so a world of the config's.
    # Every job that ends ACTIVE booted the server: a rebuild, or a restart after a failure.
    started = end_status == "ACTIVE"
    launches = (replaced and config.launched_at_on_reinstall) or (
        started and config.launched_at_on_start
    )
    back_after = 0.0
    if replaced and end_status == "ACTIVE":
        back_after = _span(seed, "come_back", config.come_back_seconds, *key)
    return Job(
        job_id=draws.hex_id(seed, "job", project_id, server_id, attempt),
        sub_job_id=draws.hex_id(seed, "sub_job", project_id, server_id, attempt),
        project_id=project_id,
        server_id=server_id,
        api=api,
        key_name=key_name,
        timeline=timeline,
        error_code=error_code,
        fail_reason=fail_reason,
        end_status=end_status,
        launches=launches,
        awaits_payment=awaits_payment,
        new_volume=draws.uuid_like(seed, "volume", server_id, attempt) if replaced else None,
        back_after=back_after,
    )


def job_body(job: Job, now: float) -> dict[str, Any]:
    """The answer of `GET /v1/{project_id}/jobs/{job_id}`, shaped like the reference.

    The job names its server from the start; its one sub-job shows only once the
    job has left INIT ("if a sub-job is available, details are displayed"), with
    its own begin_time: when the queue ended.
    """
    status = job.status_at(now)
    ended = status in FINAL_STATUSES
    failed = status is JobStatus.FAIL
    outcome = {
        "error_code": job.error_code if failed else None,
        "fail_reason": job.fail_reason if failed else None,
    }
    end_time = timefmt.job_time(job.end) if ended else None
    entities: dict[str, Any] = {"server_id": job.server_id}
    if status is not JobStatus.INIT:
        sub_job = {
            "status": status.value,
            "entities": {"server_id": job.server_id},
            "job_id": job.sub_job_id,
            "job_type": JOB_TYPE,
            "begin_time": timefmt.job_time(job.timeline.queue_end),
            "end_time": end_time,
            **outcome,
        }
        entities.update(sub_jobs_total=1, sub_jobs=[sub_job])
    return {
        "status": status.value,
        "entities": entities,
        "job_id": job.job_id,
        "job_type": JOB_TYPE,
        "begin_time": timefmt.job_time(job.begin),
        "end_time": end_time,
        **outcome,
    }


class JobBook:
    """Every job by ID, plus the unfinished ones ordered by end time."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._pending: list[tuple[float, str]] = []
        self._by_project: Counter[str] = Counter()  # unfinished jobs per project

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    @property
    def in_progress(self) -> int:
        return len(self._pending)

    def in_progress_of(self, project_id: str) -> int:
        return self._by_project[project_id]

    def add(self, job: Job) -> None:
        self._jobs[job.job_id] = job
        heapq.heappush(self._pending, (job.end, job.job_id))
        self._by_project[job.project_id] += 1

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def replace(self, job: Job) -> None:
        """A job's planned outcome changed (same ID, same end)."""
        assert self._jobs[job.job_id].end == job.end
        self._jobs[job.job_id] = job

    def pop_ended(self, now: float) -> list[Job]:
        """The unfinished jobs whose end has come, oldest first; each is returned once."""
        ended = []
        while self._pending and self._pending[0][0] <= now:
            _, job_id = heapq.heappop(self._pending)
            self._by_project[self._jobs[job_id].project_id] -= 1
            ended.append(self._jobs[job_id])
        return ended
