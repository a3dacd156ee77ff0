"""The simulated service's state and rules, free of HTTP: servers, jobs, counters.

Every public method first applies the jobs that have ended by `now` (`settle`),
so servers, jobs and counters always agree with the clock when read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.simulator import draws
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault
from orchestrator.simulator.fleet import Fleet, Server
from orchestrator.simulator.jobs import Job, JobBook, plan_job
from orchestrator.simulator.reinstall import WITH_STOP_SERVER, ReinstallRequest
from orchestrator.simulator.stats import Stats


class World:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.fleet = Fleet(config)
        self.jobs = JobBook()
        self.stats = Stats()
        self._keypairs = frozenset(config.keypairs) if config.keypairs is not None else None

    def settle(self, now: float) -> None:
        """Apply the outcome of every job that has ended by `now`."""
        for job in self.jobs.pop_ended(now):
            server = self.fleet.get(job.project_id, job.server_id)
            assert server is not None and server.job is job
            server.end_rebuild(job)
            self.stats.jobs_ended[job.outcome.value] += 1
            if not job.fails:
                self.stats.successful_reinstalls_by_server[job.server_id] += 1

    def server(self, project_id: str, server_id: str, now: float) -> Server:
        self.settle(now)
        server = self.fleet.get(project_id, server_id)
        if server is None:
            raise ApiFault("Ecs.0114", f"Server {server_id} was not found.")
        return server

    def job(self, project_id: str, job_id: str, now: float) -> Job:
        self.settle(now)
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id:
            raise ApiFault("Common.0011", f"Job {job_id} was not found in this project.")
        return job

    def reinstall(
        self, project_id: str, server_id: str, request: ReinstallRequest, now: float
    ) -> Job:
        """Accept a reinstall and start its job, or raise the ApiFault the service would."""
        server = self.server(project_id, server_id, now)
        if server.traits.locked:
            raise ApiFault("Ecs.0605")
        if server.traits.no_disk:
            raise ApiFault("Ecs.0105")
        if server.rebuilding:
            self.stats.rejected_while_rebuilding += 1
            raise ApiFault("Ecs.0100", "An OS reinstallation of this ECS is in progress.")
        if server.status == "ACTIVE" and request.mode != WITH_STOP_SERVER:
            raise ApiFault(
                "Ecs.0100", f"The ECS is running; stop it or use mode '{WITH_STOP_SERVER}'."
            )
        if self._keypairs is not None and request.keyname not in self._keypairs:
            raise ApiFault("Ecs.0314", f"Key pair '{request.keyname}' does not exist.")
        return self._accept(server, request, now)

    def _accept(self, server: Server, request: ReinstallRequest, now: float) -> Job:
        job = plan_job(self.config, server.project_id, server.server_id, server.reinstalls + 1, now)
        salt = 0
        while job.job_id in self.jobs:  # a 128-bit collision: practically never
            salt += 1
            job = replace(job, job_id=draws.hex_id(self.config.seed, "job", job.job_id, salt))
        if server.successes:
            self.stats.reinstalls_after_success += 1
        server.begin_rebuild(job, request.keyname, now)
        self.jobs.add(job)
        self.stats.reinstalls_by_server[server.server_id] += 1
        # One unfinished job per rebuilding server, and ended jobs were settled above.
        self.stats.rebuilding(self.jobs.in_progress)
        return job

    def snapshot(self, now: float) -> dict[str, Any]:
        """The counters, as `GET /_sim/stats` answers them."""
        self.settle(now)
        return self.stats.as_dict(jobs_in_progress=self.jobs.in_progress)
