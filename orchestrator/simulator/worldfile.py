"""A simulated world kept in a file, so that it outlives the process that simulates it.

A rehearsal is interrupted and resumed as a real night is: the in-process simulator of
`run --simulate` ends with each invocation, and a fresh one would not know the jobs it
had accepted (a resume would then fail them as not verified). So the world's accepted
jobs go to a file, one JSON object per line:

    {"simulated_world": 1, "campaign": "<run id>", "seed": 0}      the header
    {"job_id": ..., "server_id": ..., "timeline": {...}, ...}      each accepted job

Each job is written as it was planned (its timeline in clock seconds), flushed before
the service answers, so a job the client heard of is always in the file, even after a
second Ctrl-C or a kill. A new simulator reads the file back and starts every job again
at its own times (`World.restore`): jobs accepted before run on, end and are answered
for as at a real service. Server traits come from the seed, hence kept in the header.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.nofollow import PRIVATE_FILE, open_append, replacing
from orchestrator.simulator.jobs import Job
from orchestrator.simulator.phases import Timeline

if TYPE_CHECKING:
    from orchestrator.simulator.world import World

__all__ = [
    "WORLD_FORMAT",
    "WorldFileError",
    "WorldRecord",
    "append_job",
    "keep_world",
    "read_world",
    "start_world",
]

WORLD_FORMAT = 1
_HEADER_KEY = "simulated_world"


class WorldFileError(ValueError):
    """The file is not a simulated world this version can read back."""


@dataclass(frozen=True, slots=True)
class WorldRecord:
    campaign: str  # the state's run id: a file left by another state is not this world
    seed: int
    jobs: tuple[Job, ...]


def start_world(path: Path, campaign: str, seed: int) -> None:
    """A new, empty world for `campaign` at `path` (renamed over any older file)."""
    header = {_HEADER_KEY: WORLD_FORMAT, "campaign": campaign, "seed": seed}
    with replacing(path, PRIVATE_FILE) as fh:
        fh.write(json.dumps(header) + "\n")


def append_job(path: Path, job: Job) -> None:
    """Add an accepted job to the world at `path`: one line, in one write."""
    line = (json.dumps(asdict(job), separators=(",", ":")) + "\n").encode()
    fd = open_append(path)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def keep_world(world: World, path: Path) -> None:
    """Give `world` the jobs kept at `path`, and keep each job it accepts from now on."""
    record = read_world(path)
    if record.seed != world.config.seed:
        raise WorldFileError(f"{path}: a world of seed {record.seed}, not {world.config.seed}")
    for job in record.jobs:
        try:
            world.restore(job)
        except ValueError as exc:
            raise WorldFileError(f"{path}: {exc}") from None
    world.on_accept = lambda job: append_job(path, job)


def read_world(path: Path) -> WorldRecord:
    """The world at `path`; WorldFileError naming the file and line where it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorldFileError(f"{path}: cannot be read ({exc})") from None
    # Every line ends with a newline; a last one without was cut short by a kill in
    # its write, before the service answered: that job was never heard of.
    lines.pop()
    if not lines:
        raise WorldFileError(f"{path}: empty, no header")
    header = _object(path, 1, lines[0])
    if header.get(_HEADER_KEY) != WORLD_FORMAT:
        raise WorldFileError(f"{path}, line 1: not a simulated world of format {WORLD_FORMAT}")
    campaign, seed = header.get("campaign"), header.get("seed")
    if not isinstance(campaign, str) or not isinstance(seed, int) or isinstance(seed, bool):
        raise WorldFileError(f"{path}, line 1: the header needs a campaign and a seed")
    jobs = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            jobs.append(_job(_object(path, number, line)))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorldFileError(f"{path}, line {number}: not a job ({exc})") from None
    return WorldRecord(campaign, seed, tuple(jobs))


def _object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise WorldFileError(f"{path}, line {number}: not JSON ({exc.args[0]})") from None
    if not isinstance(value, dict):
        raise WorldFileError(f"{path}, line {number}: not a JSON object")
    return value


_TEXT = ("job_id", "sub_job_id", "project_id", "server_id", "api", "key_name", "end_status")


def _job(data: dict[str, Any]) -> Job:
    times = data.pop("timeline")
    if not isinstance(times, dict):
        raise TypeError("timeline is not an object")
    stops_server = times.pop("stops_server")
    if not isinstance(stops_server, bool):
        raise TypeError("stops_server is not true or false")
    timeline = Timeline(**{k: _number(v) for k, v in times.items()}, stops_server=stops_server)
    job = Job(**data, timeline=timeline)
    if not all(isinstance(getattr(job, name), str) for name in _TEXT):
        raise TypeError(f"one of {', '.join(_TEXT)} is not text")
    if not all(isinstance(v, str | None) for v in (job.error_code, job.fail_reason)):
        raise TypeError("error_code and fail_reason are text or null")
    if not isinstance(job.launches, bool):
        raise TypeError("launches is not true or false")
    return job


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)
