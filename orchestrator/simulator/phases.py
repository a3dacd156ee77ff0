"""The timeline of one accepted reinstall: which phase it is in at any moment.

    accepted ── queue ──> [power-off ──> stopped pause ──>] rebuild ──> end
               INIT        ACTIVE/powering-off  SHUTOFF     REBUILD

A real ECS does not promise that an accepted reinstall shows at once: the job may
wait in `INIT` with the server untouched, and with `withStopServer` a running
server is first powered off (still `ACTIVE`, task state `powering-off`), then
shows `SHUTOFF` with no task state for a moment, and only then `REBUILD`. All
boundaries are fixed when the job is accepted, so the phase at any time is a
pure function of the timeline and the clock: no timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    QUEUED = "queued"  # job INIT, server untouched
    POWERING_OFF = "powering-off"  # job RUNNING, server ACTIVE / powering-off
    STOPPED = "stopped"  # job RUNNING, server SHUTOFF / no task state
    REBUILDING = "rebuilding"  # job RUNNING, server REBUILD / rebuilding
    ENDED = "ended"  # job SUCCESS or FAIL, server in its end state


@dataclass(frozen=True, slots=True)
class Timeline:
    """Phase boundaries in clock seconds; begin <= queue_end <= ... <= end."""

    begin: float  # accepted
    queue_end: float  # the job starts; with stops_server, power-off starts
    power_off_end: float  # the server shows SHUTOFF (== queue_end without stops_server)
    rebuild_start: float  # the server shows REBUILD
    end: float  # the job has ended
    stops_server: bool  # withStopServer on a running server: the power-off phases exist

    @classmethod
    def plan(
        cls,
        begin: float,
        queue: float,
        power_off: float,
        stopped: float,
        rebuild: float,
        *,
        stops_server: bool,
    ) -> Timeline:
        queue_end = begin + queue
        if not stops_server:
            power_off = stopped = 0.0
        power_off_end = queue_end + power_off
        rebuild_start = power_off_end + stopped
        end = rebuild_start + rebuild
        return cls(begin, queue_end, power_off_end, rebuild_start, end, stops_server)

    def phase_at(self, now: float) -> Phase:
        if now >= self.end:
            return Phase.ENDED
        if now < self.queue_end:
            return Phase.QUEUED
        if self.stops_server and now < self.power_off_end:
            return Phase.POWERING_OFF
        if self.stops_server and now < self.rebuild_start:
            return Phase.STOPPED
        return Phase.REBUILDING

    def changed_at(self, phase: Phase) -> float | None:
        """When the job last changed the server, seen during `phase`; None while queued."""
        if phase is Phase.POWERING_OFF:
            return self.queue_end
        if phase is Phase.STOPPED:
            return self.power_off_end
        if phase is Phase.REBUILDING:
            return self.rebuild_start
        if phase is Phase.ENDED:
            return self.end
        return None
