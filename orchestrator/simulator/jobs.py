"""Reinstall jobs: planned in full when accepted, their status read off the clock.

A job's duration and outcome are fixed the moment it is accepted (from the seed,
the server and that server's reinstall count), so nothing needs a timer: the
status at any moment is a pure function of the job and the time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.simulator import draws, timefmt
from orchestrator.simulator.config import SimulatorConfig

JOB_TYPE = "reinstallOs"
INIT_FRACTION = 0.1  # the share of a job's duration it reports INIT

# (error_code, fail_reason) of a failed reinstall: plausible system-disk failures.
FAILURES: tuple[tuple[str, str], ...] = (
    ("Ecs.0101", "EcsException: the system disk is currently unresponsive."),
    ("Ecs.0202", "EcsException: failed to create the system disk."),
)


class JobStatus(StrEnum):
    INIT = "INIT"  # accepted, not yet started
    RUNNING = "RUNNING"  # the server is being rebuilt
    SUCCESS = "SUCCESS"  # reinstalled; the server is ACTIVE
    FAIL = "FAIL"  # not reinstalled; the server is ERROR


FINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.SUCCESS, JobStatus.FAIL})


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    sub_job_id: str
    project_id: str
    server_id: str
    begin: float
    end: float
    error_code: str | None  # None: the job will succeed
    fail_reason: str | None

    @property
    def fails(self) -> bool:
        return self.error_code is not None

    @property
    def outcome(self) -> JobStatus:
        return JobStatus.FAIL if self.fails else JobStatus.SUCCESS

    def status_at(self, now: float) -> JobStatus:
        if now >= self.end:
            return self.outcome
        if now < self.begin + (self.end - self.begin) * INIT_FRACTION:
            return JobStatus.INIT
        return JobStatus.RUNNING


def plan_job(
    config: SimulatorConfig, project_id: str, server_id: str, attempt: int, now: float
) -> Job:
    """The job for a server's `attempt`-th accepted reinstall (1-based), starting now."""
    seed = config.seed
    low, high = config.job_seconds
    duration = low + (high - low) * draws.unit(seed, "duration", server_id, attempt)
    error_code = fail_reason = None
    if draws.unit(seed, "fail", server_id, attempt) < config.job_fail_rate:
        pick = int(draws.unit(seed, "failure", server_id, attempt) * len(FAILURES))
        error_code, fail_reason = FAILURES[pick]
    return Job(
        job_id=draws.hex_id(seed, "job", project_id, server_id, attempt),
        sub_job_id=draws.hex_id(seed, "sub_job", project_id, server_id, attempt),
        project_id=project_id,
        server_id=server_id,
        begin=now,
        end=now + duration,
        error_code=error_code,
        fail_reason=fail_reason,
    )


def job_body(job: Job, now: float) -> dict[str, Any]:
    """The answer of `GET /v1/{project_id}/jobs/{job_id}`, shaped like the reference."""
    status = job.status_at(now)
    ended = status in FINAL_STATUSES
    failed = status is JobStatus.FAIL
    common = {
        "status": status.value,
        "job_type": JOB_TYPE,
        "begin_time": timefmt.job_time(job.begin),
        "end_time": timefmt.job_time(job.end) if ended else None,
        "error_code": job.error_code if failed else None,
        "fail_reason": job.fail_reason if failed else None,
    }
    sub_job = {"job_id": job.sub_job_id, "entities": {"server_id": job.server_id}, **common}
    return {
        "job_id": job.job_id,
        "entities": {"server_id": job.server_id, "sub_jobs_total": 1, "sub_jobs": [sub_job]},
        **common,
    }


class JobBook:
    """Every job by ID, plus the unfinished ones ordered by end time."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._pending: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    @property
    def in_progress(self) -> int:
        return len(self._pending)

    def add(self, job: Job) -> None:
        self._jobs[job.job_id] = job
        heapq.heappush(self._pending, (job.end, job.job_id))

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def pop_ended(self, now: float) -> list[Job]:
        """The unfinished jobs whose end has come, oldest first; each is returned once."""
        ended = []
        while self._pending and self._pending[0][0] <= now:
            _, job_id = heapq.heappop(self._pending)
            ended.append(self._jobs[job_id])
        return ended
