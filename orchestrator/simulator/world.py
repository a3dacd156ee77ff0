"""The simulated service's state and rules, free of HTTP: servers, jobs, counters.

Every public method first applies the jobs that have ended by `now` (`settle`),
so servers, jobs and counters always agree with the clock when read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator.simulator import draws
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault
from orchestrator.simulator.fleet import Fleet, Server
from orchestrator.simulator.jobs import Job, JobBook, plan_job
from orchestrator.simulator.phases import Phase
from orchestrator.simulator.reinstall import WITH_STOP_SERVER, ReinstallRequest
from orchestrator.simulator.stats import Stats


class World:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.fleet = Fleet(config)
        self.jobs = JobBook()
        self.stats = Stats()
        self._keypairs = frozenset(config.keypairs) if config.keypairs is not None else None
        # Told of each job as it is accepted, before the answer leaves (a world file).
        self.on_accept: Callable[[Job], None] | None = None
        # The audit trail: (project, server, trace name, time, HTTP status), in order.
        self.traces: list[tuple[str, str, str, float, int]] = []

    def settle(self, now: float) -> None:
        """Apply the outcome of every job that has ended by `now`."""
        for job in self.jobs.pop_ended(now):
            if job.shadow:  # a second reinstall's own job: the server is not its
                self.stats.jobs_ended[job.outcome.value] += 1
                continue
            server = self.fleet.get(job.project_id, job.server_id)
            assert server is not None and server.job is job
            server.end_job(job)
            self.stats.jobs_ended[job.outcome.value] += 1
            if not job.fails:
                self.stats.successful_reinstalls_by_server[job.server_id] += 1
                if job.end_status != "ACTIVE":
                    self.stats.success_but_error.add(job.server_id)
                elif job.new_volume is None:
                    self.stats.success_but_stale.add(job.server_id)

    def server(self, project_id: str, server_id: str, now: float) -> Server:
        self.settle(now)
        server = self.fleet.get(project_id, server_id)
        if server is None:
            raise ApiFault("Ecs.0114", f"Server {server_id} was not found.")
        return server

    def listing(self, project_id: str, now: float) -> tuple[Server, ...]:
        """The project's servers in list order, with every job ended by `now` applied."""
        self.settle(now)
        return self.fleet.listing(project_id)

    def positions(self, project_id: str) -> dict[str, int]:
        """Each server's index in `listing(project_id, ...)` (call after it)."""
        return self.fleet.positions(project_id)

    def job(self, project_id: str, job_id: str, now: float) -> Job:
        self.settle(now)
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id:
            raise ApiFault("Common.0011", f"Job {job_id} was not found in this project.")
        if now - job.end > self.config.job_retention:
            # Jobs are kept a day after they end, then forgotten.
            raise ApiFault("Common.0011", f"Job {job_id} was not found in this project.")
        return job

    def reinstall_arrived(self, project_id: str, server_id: str, api: str, now: float) -> None:
        """Count a reinstall request as it arrives, before any check or fault.

        A request for a server whose job has not ended is an overlapping attempt
        even when auth, throttling or an injected fault answers it first: the
        client sent it, and only luck kept it from reaching the service.
        """
        self.stats.reinstall_requests_by_api[api] += 1
        self.settle(now)
        server = self.fleet.get(project_id, server_id)
        if server is not None and server.job is not None:
            self.stats.overlapping(server_id)

    def reinstall(
        self, project_id: str, server_id: str, request: ReinstallRequest, now: float
    ) -> Job:
        """Accept a reinstall and start its job, or raise the ApiFault the service would."""
        server = self.server(project_id, server_id, now)
        if server.traits.locked:
            raise ApiFault("Ecs.0605")
        if server.traits.no_disk:
            raise ApiFault("Ecs.0105")
        if server.job is not None:
            if self.config.second_reinstall == "refuse":
                raise self._busy(server.job, now)
            return self._accept_second(server, server.job, request, now)
        if server.back_at is not None and now < server.back_at:
            raise ApiFault("Ecs.0100", "The ECS is being started (task state powering-on).")
        if server.status == "ACTIVE" and request.mode != WITH_STOP_SERVER:
            raise ApiFault(
                "Ecs.0100", f"The ECS is running; stop it or use mode '{WITH_STOP_SERVER}'."
            )
        if self._keypairs is not None and request.keyname not in self._keypairs:
            raise ApiFault("Ecs.0314", f"Key pair '{request.keyname}' does not exist.")
        return self._accept(server, request, now)

    def _busy(self, job: Job, now: float) -> ApiFault:
        """The refusal of a reinstall while `job` is under way, as its phase shows."""
        phase = job.phase_at(now)
        if phase is Phase.REBUILDING:
            self.stats.rejected_while_rebuilding += 1
            return ApiFault("Ecs.0100", "An OS reinstallation of this ECS is in progress.")
        if phase is Phase.POWERING_OFF:
            return ApiFault("Ecs.0100", "The ECS is being stopped (task state powering-off).")
        # Queued, or stopped between power-off and rebuild: the server looks idle,
        # but the service holds it for the job, as for any command under way.
        return ApiFault("Ecs.0603", "Another job is under way for this ECS.")

    def _accept(self, server: Server, request: ReinstallRequest, now: float) -> Job:
        job = plan_job(
            self.config,
            server.project_id,
            server.server_id,
            server.reinstalls + 1,
            now,
            stops_server=server.status == "ACTIVE",
            prior_status=server.status,
            api=request.api,
            key_name=request.keyname,
        )
        salt = 0
        while job.job_id in self.jobs:  # a 128-bit collision: practically never
            salt += 1
            job = replace(job, job_id=draws.hex_id(self.config.seed, "job", job.job_id, salt))
        if self.on_accept is not None:
            self.on_accept(job)  # kept first: a job the client hears of is never lost
        self._start(server, job)
        return job

    def restore(self, job: Job) -> None:
        """Start again a job an earlier process accepted, at its own times (a world
        file read back in acceptance order); ValueError if it cannot have been."""
        self.settle(job.begin)
        server = self.fleet.get(job.project_id, job.server_id)
        if server is None:
            raise ValueError(f"job {job.job_id}: server {job.server_id} is not in the fleet")
        if server.job is not None:
            raise ValueError(f"job {job.job_id}: server {job.server_id} already has a job")
        if job.job_id in self.jobs:
            raise ValueError(f"job {job.job_id} twice")
        self._start(server, job)

    def _start(self, server: Server, job: Job) -> None:
        stats = self.stats
        if server.successes:
            stats.reinstalls_after_success += 1
            stats.reinstalled_after_success.add(server.server_id)
        server.begin_job(job)
        self.jobs.add(job)
        stats.reinstalls_by_server[server.server_id] += 1
        stats.reinstalls_by_api[job.api] += 1
        # One unfinished job per server, and ended jobs were settled above.
        stats.rebuilding(
            self.jobs.in_progress, job.project_id, self.jobs.in_progress_of(job.project_id)
        )

    def _accept_second(
        self, server: Server, first: Job, request: ReinstallRequest, now: float
    ) -> Job:
        """A reinstall accepted while `first` runs: its own job fails (the server is
        the first job's); with "fail-both" the first fails too, the server in ERROR."""
        second = plan_job(
            self.config,
            server.project_id,
            server.server_id,
            server.reinstalls + 1,
            now,
            prior_status=server.status,
            api=request.api,
            key_name=request.keyname,
        )
        collided = ("Ecs.0603", "EcsException: another operation on the ECS is in progress.")
        second = replace(
            second,
            error_code=collided[0],
            fail_reason=collided[1],
            end_status=server.status,
            launches=False,
            new_volume=None,
            back_after=0.0,
            shadow=True,
        )
        if second.job_id in self.jobs:
            second = replace(second, job_id=draws.hex_id(self.config.seed, "job", second.job_id))
        if self.config.second_reinstall == "fail-both" and not first.fails:
            failed = replace(
                first,
                error_code=collided[0],
                fail_reason=collided[1],
                end_status="ERROR",
                launches=False,
                new_volume=None,
                back_after=0.0,
            )
            self.jobs.replace(failed)
            server.job = server.last_job = failed
        server.reinstalls += 1
        self.jobs.add(second)
        self.stats.accepted_second += 1
        self.stats.reinstalls_by_server[server.server_id] += 1
        self.stats.reinstalls_by_api[request.api] += 1
        return second

    def trace(self, project_id: str, server_id: str, api: str, now: float, status: int) -> None:
        """Record a reinstall request the service saw, as CTS would."""
        name = "reinstallOs" if api == "v1" else "reinstallOsV2"
        self.traces.append((project_id, server_id, name, now, status))

    def traces_of(
        self, project_id: str, server_id: str | None, start: float, end: float, now: float
    ) -> list[tuple[str, str, str, float, int]]:
        """The traces delivered by `now` (trace_delay after each), newest first."""
        delivered = now - self.config.trace_delay
        return [
            t
            for t in reversed(self.traces)
            if t[0] == project_id
            and (server_id is None or t[1] == server_id)
            and start <= t[3] <= end
            and t[3] <= delivered
        ]

    def start_server(self, project_id: str, server_id: str, now: float) -> None:
        """Someone starts the server (not a reinstall: the system disk stays). It must
        be resting SHUTOFF; launched_at moves if the world says a start moves it."""
        server = self.server(project_id, server_id, now)
        if server.job is not None or server.status != "SHUTOFF":
            raise ApiFault("Ecs.0100", "The ECS is not stopped.")
        server.start(now, moves_launched_at=self.config.launched_at_on_start)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The counters, as `GET /_sim/stats` answers them."""
        self.settle(now)
        return self.stats.as_dict(jobs_in_progress=self.jobs.in_progress)
