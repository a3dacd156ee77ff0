"""Job ids the service returned that a run could not record, given back by the operator.

When the state store fails right after the service answered a reinstall with its
job id (a full disk, a lost database session), the run keeps the id, tries again to
record it, and if it cannot, lists it at the end and writes `unrecorded-jobs.csv`.
A resume is given them back, so that the target follows its job instead of being
settled from a server whose job may still be queued:

    --known-job [PROJECT/]SERVER=JOB   (repeatable)
    --known-jobs FILE                  CSV with project_id, server_id, job_id columns

A target may take a known job only where the state file shows the request may have
left and no answer was recorded (submitting or in doubt); the same job id again is
a no-op, anything else is refused before the run starts.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputProblem, InventoryError, UsageError
from orchestrator.model import Target, TargetState, plain_id
from orchestrator.store.records import Change, utc_now
from orchestrator.store.sqlite import StateStore

COLUMNS = ("project_id", "server_id", "job_id")


@dataclass(frozen=True, slots=True)
class KnownJob:
    project_id: str | None  # None: the server ID alone names the target
    server_id: str
    job_id: str
    source: str  # where it was given, for messages: the option, or FILE:LINE

    @property
    def server(self) -> str:
        return f"{self.project_id}/{self.server_id}" if self.project_id else self.server_id


def parse_option(value: str) -> KnownJob:
    """One --known-job value: [PROJECT/]SERVER=JOB."""
    where, sep, job_id = value.partition("=")
    project, slash, server = where.rpartition("/")
    ids = [job_id, server] + ([project] if slash else [])
    if not sep or not all(plain_id(i) for i in ids):
        raise UsageError(
            f"--known-job {value!r}: expected [PROJECT/]SERVER=JOB, with IDs of letters,"
            " digits, '-' and '_'"
        )
    return KnownJob(project or None, server, job_id, "--known-job")


def read_file(path: Path) -> list[KnownJob]:
    """The rows of a --known-jobs CSV file; every problem named by line and column."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise UsageError(
                    f"{path}: --known-jobs needs the columns {', '.join(COLUMNS)};"
                    f" missing {', '.join(missing)}"
                )
            jobs: list[KnownJob] = []
            problems: list[InputProblem] = []
            for row in reader:
                line = reader.line_num
                values = {c: (row.get(c) or "").strip() for c in COLUMNS}
                bad = [c for c, v in values.items() if not plain_id(v)]
                for column in bad:
                    problems.append(InputProblem(str(path), line, column, "not an ID"))
                if not bad:
                    jobs.append(
                        KnownJob(
                            values["project_id"],
                            values["server_id"],
                            values["job_id"],
                            f"{path}:{line}",
                        )
                    )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--known-jobs {path}: cannot read it ({exc})") from None
    if problems:
        raise InventoryError(problems)
    return jobs


def known_jobs(values: Iterable[str], file: Path | None) -> tuple[KnownJob, ...]:
    """--known-job values and the rows of --known-jobs FILE, checked."""
    jobs = [parse_option(v) for v in values]
    if file is not None:
        jobs += read_file(file)
    return tuple(jobs)


def apply_known_jobs(store: StateStore, jobs: Sequence[KnownJob]) -> int:
    """Give each target its known job; all are checked before any is applied.
    Returns how many targets took one."""
    changes: list[Change] = []
    for job in jobs:
        target = _target_of(store, job)
        if target.job_id == job.job_id:
            continue  # recorded after all (or given twice)
        if target.job_id is not None:
            raise UsageError(
                f"{job.source}: {job.server} has job {target.job_id} recorded already,"
                f" not {job.job_id}"
            )
        detail = f"job {job.job_id} given by the operator ({job.source})"
        if target.state is TargetState.SUBMITTING:
            fields = {"job_id": job.job_id, "submitted_at": utc_now()}
            changes.append(Change(target.id, target.state, TargetState.SUBMITTED, detail, fields))
        elif target.state is TargetState.IN_DOUBT:
            # Followed by its job from here: the job's own end decides.
            fields = {"job_id": job.job_id}
            changes.append(Change(target.id, target.state, TargetState.RUNNING, detail, fields))
        else:
            raise UsageError(
                f"{job.source}: {job.server} is {target.state.value}; a known job is taken"
                " only by a target whose request may have left without a recorded answer"
                " (submitting or in doubt)"
            )
    if changes:
        applied = store.apply(changes)
        if not all(applied):
            raise UsageError("--known-job: a target changed while the jobs were applied")
    return len(changes)


def _target_of(store: StateStore, job: KnownJob) -> Target:
    if job.project_id is not None:
        target = store.find(job.project_id, job.server_id)
        found = [] if target is None else [target]
    else:
        found = store.find_server(job.server_id)
    if not found:
        raise UsageError(f"{job.source}: no target {job.server} in {store.location}")
    if len(found) > 1:
        raise UsageError(
            f"{job.source}: server {job.server_id} is in several projects of"
            f" {store.location}; give it as PROJECT/SERVER=JOB"
        )
    return found[0]


def write_unrecorded(path: Path, rows: Iterable[tuple[str, str, str]]) -> None:
    """unrecorded-jobs.csv: created new and owner-only, never through a link."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
