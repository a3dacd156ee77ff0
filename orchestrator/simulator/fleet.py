"""The simulated servers: which exist, how they start, and how a reinstall changes them.

A server's initial properties are drawn from (seed, server_id) on first sight,
so they do not depend on request order. Its stored state changes only when a
job ends (applied lazily, see `World.settle`); while a job is under way, what a
read shows is computed from the job's phase at that moment (`Server.view`), so
there is no timer per server.

Which servers a project has, for the list APIs (`Fleet.listing`): the fleet's
servers of that project that exist, plus `extra_servers` more that the fleet does
not name (IDs drawn from the seed and the project); without a fleet, where every
canonical UUID exists, the ones met so far (read, reinstalled) plus the extras.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.simulator import draws, timefmt
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.jobs import Job
from orchestrator.simulator.phases import Phase

SERVER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# A fixed epoch, not the clock, anchors initial timestamps: they stay identical
# from run to run and lie well in the past of any real clock.
EPOCH = 1_577_836_800.0  # 2020-01-01T00:00:00Z
_YEAR = 365 * 86_400.0

_VM_STATES = {"ACTIVE": "active", "SHUTOFF": "stopped", "ERROR": "error"}


@dataclass(frozen=True, slots=True)
class View:
    """What a read of the server shows at one moment."""

    status: str
    vm_state: str
    task_state: str | None
    updated: float
    key_name: str


@dataclass(frozen=True, slots=True)
class Traits:
    """What a server is before anyone touches it."""

    missing: bool
    locked: bool
    no_disk: bool
    running: bool
    name: str
    created: float
    launched_at: float
    image_id: str
    volume_id: str


def traits_for(config: SimulatorConfig, server_id: str) -> Traits:
    seed = config.seed
    created = EPOCH + _YEAR * draws.unit(seed, "created", server_id)
    return Traits(
        missing=draws.unit(seed, "missing", server_id) < config.missing_rate,
        locked=draws.unit(seed, "locked", server_id) < config.locked_rate,
        no_disk=draws.unit(seed, "no_disk", server_id) < config.no_disk_rate,
        running=draws.unit(seed, "running", server_id) < config.running_rate,
        name=f"ecs-{server_id[:4]}",
        created=created,
        launched_at=created + 30 + 600 * draws.unit(seed, "launched", server_id),
        image_id=draws.uuid_like(seed, "image", server_id),
        volume_id=draws.uuid_like(seed, "volume", server_id),
    )


@dataclass(slots=True)
class Server:
    """One server's state between jobs; `job` is the reinstall under way, if any."""

    project_id: str
    server_id: str
    traits: Traits
    status: str
    vm_state: str
    launched_at: float
    updated: float
    key_name: str = ""
    volume_id: str = ""  # the system disk's volume (boot index 0)
    # Booting after a reinstall until then (SHUTOFF, powering-on); launched_at shows
    # its earlier value until then.
    back_at: float | None = None
    launched_before_back: float = 0.0
    job: Job | None = None  # the reinstall under way (not yet ended)
    last_job: Job | None = None  # the latest accepted reinstall, ended or not
    reinstalls: int = 0  # accepted reinstalls
    successes: int = 0  # reinstalls whose job ended SUCCESS

    @classmethod
    def new(cls, project_id: str, server_id: str, traits: Traits) -> Server:
        running = traits.running
        return cls(
            project_id=project_id,
            server_id=server_id,
            traits=traits,
            status="ACTIVE" if running else "SHUTOFF",
            vm_state="active" if running else "stopped",
            launched_at=traits.launched_at,
            updated=traits.launched_at,
            key_name=f"KeyPair-{server_id[:4]}",
            volume_id=traits.volume_id,
        )

    def view(self, now: float) -> View:
        """Status, vm_state, task_state and `updated` as a read at `now` shows them.

        Call after `World.settle(now)`, so a job that has ended is already applied.
        """
        base = View(self.status, self.vm_state, None, self.updated, self.key_name)
        job = self.job
        if job is None:
            if self.back_at is not None and now < self.back_at:
                assert self.last_job is not None
                return View("SHUTOFF", "stopped", "powering-on", self.last_job.end, self.key_name)
            return base
        phase = job.phase_at(now)
        changed = job.timeline.changed_at(phase)
        if phase is Phase.POWERING_OFF and changed is not None:
            return View("ACTIVE", "active", "powering-off", changed, self.key_name)
        if phase is Phase.STOPPED and changed is not None:
            return View("SHUTOFF", "stopped", None, changed, self.key_name)
        if phase is Phase.REBUILDING and changed is not None:
            # vm_state is kept (the reference maps active, stopped and error alike
            # to REBUILD while task_state is `rebuilding`); a powered-off server is stopped.
            vm_state = "stopped" if job.timeline.stops_server else self.vm_state
            return View("REBUILD", vm_state, "rebuilding", changed, job.key_name)
        return base  # queued: untouched

    def begin_job(self, job: Job) -> None:
        # Nothing visible changes yet: the job's phases decide what reads show.
        self.job = self.last_job = job
        self.reinstalls += 1

    def end_job(self, job: Job) -> None:
        self.job = None
        back = job.end + job.back_after
        self.updated = back
        self.status = job.end_status
        self.vm_state = _VM_STATES[job.end_status]
        self.launched_before_back = self.launched_at
        self.back_at = back if job.back_after > 0 else None
        if job.launches:
            self.launched_at = back
        if job.new_volume is not None:
            self.volume_id = job.new_volume
        if not job.fails:
            self.key_name = job.key_name
            self.successes += 1

    def launched_at_on(self, now: float) -> float:
        """launched_at as a read at `now` shows it: the earlier one while still booting."""
        if self.back_at is not None and now < self.back_at:
            return self.launched_before_back
        return self.launched_at

    def start(self, now: float, *, moves_launched_at: bool) -> None:
        """Someone starts the stopped server (not a reinstall: the disk stays)."""
        self.status, self.vm_state, self.updated = "ACTIVE", "active", now
        if moves_launched_at:
            self.launched_at = now


def server_body(server: Server, now: float) -> dict[str, Any]:
    """The answer of `GET /v1/{project_id}/cloudservers/{server_id}`."""
    return {"server": server_fields(server, now)}


def server_fields(server: Server, now: float, view: View | None = None) -> dict[str, Any]:
    """One server as the single read and both lists show it (`view`: its view at `now`,
    when the caller has it already)."""
    traits = server.traits
    volumes = (
        []
        if traits.no_disk
        else [
            {
                "id": server.volume_id,
                "delete_on_termination": "false",
                "device": "/dev/vda",
                "bootIndex": "0",
            }
        ]
    )
    if view is None:
        view = server.view(now)
    return {
        "id": server.server_id,
        "name": traits.name,
        "status": view.status,
        "progress": 0,
        "updated": timefmt.stamp(view.updated),
        "created": timefmt.stamp(traits.created),
        "metadata": {"image_name": "Simulated_Image", "os_type": "Linux"},
        "locked": traits.locked,
        "tenant_id": server.project_id,
        "key_name": view.key_name,
        "image": {"id": traits.image_id},
        "os-extended-volumes:volumes_attached": volumes,
        "OS-EXT-STS:task_state": view.task_state,
        "OS-EXT-STS:power_state": 1 if view.vm_state == "active" else 4,
        "OS-EXT-STS:vm_state": view.vm_state,
        "OS-EXT-SRV-ATTR:root_device_name": "" if traits.no_disk else "/dev/vda",
        "OS-SRV-USG:launched_at": timefmt.launched_at(server.launched_at_on(now)),
        "OS-SRV-USG:terminated_at": None,
    }


class Fleet:
    """Finds servers, creating each on first sight if it is meant to exist."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._allowed = frozenset(config.fleet) if config.fleet is not None else None
        # None records a server known not to exist, so the draw is made once.
        self._servers: dict[tuple[str, str], Server | None] = {}
        # The fleet's server IDs by project, in file order.
        self._members: dict[str, list[str]] = {}
        for project_id, server_id in config.fleet or ():
            self._members.setdefault(project_id, []).append(server_id)
        self._extras: dict[str, frozenset[str]] = {}  # by project, drawn on first need
        self._existing: dict[str, list[Server]] = {}  # servers made so far, by project
        # A project's servers in list order; dropped when a server of it is made.
        self._listed: dict[str, tuple[Server, ...]] = {}
        self._positions: dict[str, dict[str, int]] = {}  # by project: index in the listing

    def get(self, project_id: str, server_id: str) -> Server | None:
        key = (project_id, server_id)
        try:
            return self._servers[key]
        except KeyError:
            pass
        extra = server_id in self._extras_of(project_id)
        if not extra and not self._named(key):
            return None  # not cached: malformed IDs would grow the table without bound
        traits = traits_for(self._config, server_id)
        if extra:
            traits = replace(traits, missing=False)  # they are there to be listed
        server = None if traits.missing else Server.new(project_id, server_id, traits)
        self._servers[key] = server
        if server is not None:
            self._existing.setdefault(project_id, []).append(server)
            self._listed.pop(project_id, None)
            self._positions.pop(project_id, None)
        return server

    def listing(self, project_id: str) -> tuple[Server, ...]:
        """The project's servers in the order the list APIs give them: the newest
        first (`created`, then ID, descending, as Nova's default sort)."""
        listed = self._listed.get(project_id)
        if listed is not None:
            return listed
        for server_id in self._members.get(project_id, ()):
            self.get(project_id, server_id)
        for server_id in sorted(self._extras_of(project_id)):
            self.get(project_id, server_id)
        listed = tuple(
            sorted(
                self._existing.get(project_id, ()),
                key=lambda s: (s.traits.created, s.server_id),
                reverse=True,
            )
        )
        self._listed[project_id] = listed
        return listed

    def positions(self, project_id: str) -> dict[str, int]:
        """Each listed server's index in `listing(project_id)`: a Nova marker is found
        without a walk of the whole list."""
        listed = self.listing(project_id)
        found = self._positions.get(project_id)
        if found is None:
            found = {server.server_id: i for i, server in enumerate(listed)}
            self._positions[project_id] = found
        return found

    def _extras_of(self, project_id: str) -> frozenset[str]:
        """The IDs of the project's servers that the fleet does not name."""
        extras = self._extras.get(project_id)
        if extras is None:
            count = self._config.extra_servers
            if self._allowed is not None and project_id not in self._members:
                count = 0  # a project outside the fleet has no servers at all
            seed = self._config.seed
            extras = frozenset(draws.uuid_like(seed, "extra", project_id, n) for n in range(count))
            if count:  # none is made again cheaply: unknown projects do not grow the table
                self._extras[project_id] = extras
        return extras

    def _named(self, key: tuple[str, str]) -> bool:
        """Whether the fleet has this server (without a fleet: every canonical UUID)."""
        if self._allowed is None:
            return SERVER_ID.fullmatch(key[1]) is not None
        return key in self._allowed
