"""`orchestrator probe`: reinstall one server the operator names and record what it shows.

What a reinstall changes on a real cloud is documented for one field only (the system
disk is replaced); whether `launched_at` moves, how long the server takes to come
back, and what a reinstall sent while another runs does are not. Before a first fleet
run the operator confirms them on one test server: every reading (the server's status,
task state, `launched_at`, system disk's volume, `updated`; each job's status) is
recorded with the seconds since the reinstall was sent, and the end says what moved.

The probe sends exactly one reinstall, or two with `duplicate` (the second, sent while
the first runs, is the question asked); nothing else is ever sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cloud.interface import Cloud, JobView, ServerView
from orchestrator.engine.settle import STABLE_STATUSES, is_rebuilding
from orchestrator.errors import ApiError, ReportError
from orchestrator.model import TargetSpec
from orchestrator.nofollow import PRIVATE_FILE, folder_mode, make_dir, replacing
from orchestrator.spreadsheet import CsvWriter, neutralise

FINAL = frozenset({"SUCCESS", "FAIL"})
COLUMNS = (
    "seconds",
    "at",
    "what",
    "status",
    "task_state",
    "launched_at",
    "system_volume",
    "updated",
    "job_id",
    "job_status",
    "error_code",
    "note",
)


@dataclass(frozen=True, slots=True)
class Reading:
    seconds: float  # since the (first) reinstall was sent; negative: before it
    at: str  # this host's UTC time
    what: str  # "server", "job", "duplicate job", "reinstall", "duplicate"
    status: str | None = None
    task_state: str | None = None
    launched_at: str | None = None
    system_volume: str | None = None
    updated: str | None = None
    job_id: str | None = None
    job_status: str | None = None
    error_code: str | None = None
    note: str | None = None


@dataclass
class Probe:
    """What one probe saw."""

    project_id: str
    server_id: str
    readings: list[Reading] = field(default_factory=list)
    before: ServerView | None = None
    after: ServerView | None = None
    job_id: str | None = None
    job_status: str | None = None
    job_error: str | None = None
    duplicate: str | None = None  # what the second reinstall got (None: not asked)
    duplicate_job: str | None = None
    duplicate_status: str | None = None
    ended: str = "not ended"  # why the readings stopped

    def launched_at_moved(self) -> bool | None:
        if self.before is None or self.after is None:
            return None
        return self.after.launched_at != self.before.launched_at

    def disk_replaced(self) -> bool | None:
        if self.before is None or self.after is None:
            return None
        if self.before.system_volume is None or self.after.system_volume is None:
            return None
        return self.after.system_volume != self.before.system_volume

    def findings(self) -> list[str]:
        """What the probe saw, in the words the checklist asks for."""
        b, a = self.before, self.after
        lines = [
            f"reinstall: job {self.job_id or '-'} ended {self.job_status or 'not yet'}"
            + (f" ({self.job_error})" if self.job_error else ""),
            f"readings stopped: {self.ended}",
        ]
        if b is not None and a is not None:
            moved = self.launched_at_moved()
            lines.append(
                f"launched_at moved: {_yes_no(moved)} ({b.launched_at or '-'} ->"
                f" {a.launched_at or '-'})"
            )
            lines.append(
                f"system disk replaced: {_yes_no(self.disk_replaced())} (volume"
                f" {b.system_volume or 'not shown'} -> {a.system_volume or 'not shown'})"
            )
            lines.append(f"status: {b.status} before, {a.status} at the end")
            back = self._back_after()
            if back is not None:
                lines.append(f"back in {a.status} {back:.0f} s after the job's end was seen")
        if self.duplicate is not None:
            lines.append(f"a second reinstall while the first ran: {self.duplicate}")
            if self.duplicate_job is not None:
                lines.append(
                    f"  its job {self.duplicate_job} ended {self.duplicate_status or 'not yet'}"
                )
        return lines

    def _back_after(self) -> float | None:
        ended = next(
            (r.seconds for r in self.readings if r.what == "job" and r.job_status in FINAL), None
        )
        if ended is None:
            return None
        rested = next(
            (
                r.seconds
                for r in self.readings
                if r.what == "server"
                and r.seconds >= ended
                and r.status in STABLE_STATUSES
                and not r.task_state
            ),
            None,
        )
        return None if rested is None else rested - ended

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "server_id": self.server_id,
            "job_id": self.job_id,
            "job_status": self.job_status,
            "launched_at_moved": self.launched_at_moved(),
            "system_disk_replaced": self.disk_replaced(),
            "before": None if self.before is None else _server_dict(self.before),
            "after": None if self.after is None else _server_dict(self.after),
            "duplicate": self.duplicate,
            "duplicate_job": self.duplicate_job,
            "duplicate_status": self.duplicate_status,
            "ended": self.ended,
            "findings": self.findings(),
            "readings": [asdict(r) for r in self.readings],
        }


def _yes_no(value: bool | None) -> str:
    return "cannot tell" if value is None else ("yes" if value else "no")


def _server_dict(view: ServerView) -> dict[str, Any]:
    return {
        "status": view.status,
        "task_state": view.task_state,
        "launched_at": view.launched_at,
        "system_volume": view.system_volume,
        "updated": view.updated,
    }


class Prober:
    """Reads one server and its job(s) every `interval` seconds until the job ended
    and the server rests showing a reinstall, or `after` seconds past the job's end,
    or `timeout` seconds in all."""

    def __init__(
        self,
        client: Cloud,
        spec: TargetSpec,
        *,
        interval: float,
        timeout: float,
        after: float,
        duplicate: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.spec = spec
        self.interval = interval
        self.timeout = timeout
        self.after = after
        self.duplicate = duplicate
        self._clock = clock
        self._sent = 0.0
        self.probe = Probe(spec.project_id, spec.server_id)

    async def run(self) -> Probe:
        spec, probe = self.spec, self.probe
        self._sent = self._clock()
        probe.before = await self._server()  # refused: raised, nothing sent
        self._sent = self._clock()
        probe.job_id = await self.client.reinstall(spec)
        self._record("reinstall", job_id=probe.job_id, note="the reinstall was accepted")
        if self.duplicate:
            await self._send_duplicate()
        job_end: float | None = None
        while True:
            now = self._clock()
            server = await self._server(quiet=True)
            if server is not None:
                probe.after = server
            for which in ("job", "duplicate job"):
                job_id = probe.job_id if which == "job" else probe.duplicate_job
                status = probe.job_status if which == "job" else probe.duplicate_status
                if job_id is not None and status not in FINAL:
                    job = await self._job(job_id, which)
                    if job is not None and which == "job":
                        probe.job_status, probe.job_error = job.status, job.error_code
                    elif job is not None:
                        probe.duplicate_status = job.status
            if probe.job_status in FINAL and job_end is None:
                job_end = now
            if self._done(server, job_end, now):
                break
            if now - self._sent >= self.timeout:
                probe.ended = f"--timeout {self.timeout:.0f} s reached"
                break
            await asyncio.sleep(self.interval)
        return probe

    def _done(self, server: ServerView | None, job_end: float | None, now: float) -> bool:
        probe = self.probe
        if job_end is None or server is None:
            return False
        if probe.duplicate_job is not None and probe.duplicate_status not in FINAL:
            return False
        resting = (
            server.status in STABLE_STATUSES | {"ERROR"}
            and not server.task_state
            and not is_rebuilding(server)
        )
        before = probe.before
        shows = before is not None and (
            server.system_volume != before.system_volume or server.launched_at != before.launched_at
        )
        if resting and (shows or probe.job_status == "FAIL" or server.status == "ERROR"):
            probe.ended = "the job ended and the server rests"
            return True
        if now - job_end >= self.after:
            probe.ended = (
                f"--watch-after {self.after:.0f} s past the job's end: the server"
                f" {'rests' if resting else 'does not rest'} ({server.status},"
                f" task state {server.task_state or '-'})"
            )
            return True
        return False

    async def _send_duplicate(self) -> None:
        probe = self.probe
        try:
            job_id = await self.client.reinstall(self.spec)
        except ApiError as exc:
            probe.duplicate = f"refused: {exc}"
            self._record("duplicate", error_code=exc.code, note=probe.duplicate)
            return
        probe.duplicate_job = job_id
        probe.duplicate = f"ACCEPTED as job {job_id}"
        self._record("duplicate", job_id=job_id, note="the second reinstall was accepted")

    async def _server(self, *, quiet: bool = False) -> ServerView | None:
        try:
            view = await self.client.server(
                self.spec.project_id, self.spec.server_id, self.spec.region
            )
        except ApiError as exc:
            if not quiet:
                raise
            self._record("server", error_code=exc.code, note=f"read failed: {exc}")
            return None
        self._record(
            "server",
            status=view.status,
            task_state=view.task_state,
            launched_at=view.launched_at,
            system_volume=view.system_volume,
            updated=view.updated,
        )
        return view

    async def _job(self, job_id: str, what: str) -> JobView | None:
        try:
            job = await self.client.job(self.spec.project_id, job_id, self.spec.region)
        except ApiError as exc:
            self._record(what, job_id=job_id, error_code=exc.code, note=f"read failed: {exc}")
            return None
        self._record(
            what,
            job_id=job_id,
            job_status=job.status,
            error_code=job.error_code,
            note=job.fail_reason,
        )
        return job

    def _record(self, what: str, **values: Any) -> None:
        self.probe.readings.append(
            Reading(
                seconds=round(self._clock() - self._sent, 3),
                at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                what=what,
                **values,
            )
        )


def write_probe(directory: Path, probe: Probe, mode: int = PRIVATE_FILE) -> tuple[Path, Path]:
    """probe-<server>-<time>.csv (every reading) and .json (the readings and what they
    show), each renamed into place when complete."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"probe-{probe.server_id}-{stamp}"
    csv_path, json_path = directory / f"{base}.csv", directory / f"{base}.json"
    try:
        make_dir(directory, folder_mode(mode), link_ok=False)
        with replacing(csv_path, mode) as fh:
            writer = CsvWriter(fh)
            writer.writerow(COLUMNS)
            for reading in probe.readings:
                row = asdict(reading)
                # A cell opened by a spreadsheet must not run as a formula.
                writer.writerow(
                    [neutralise("" if row[c] is None else str(row[c])) for c in COLUMNS]
                )
        with replacing(json_path, mode) as fh:
            json.dump(probe.to_dict(), fh, indent=2)
            fh.write("\n")
    except OSError as exc:
        raise ReportError(f"cannot write the probe's readings in {directory}: {exc}") from exc
    return csv_path, json_path
