"""What `run`, `resume` and `retry` print when the run ends: the closing lines, where the
report went, and the job ids the state could not record (with how to give them back)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from orchestrator.console.messages import end_of_run
from orchestrator.engine.campaign import Invocation, Result
from orchestrator.engine.known_jobs import write_unrecorded
from orchestrator.engine.outcome import Answer
from orchestrator.report import ReportPaths
from orchestrator.visible import echo

__all__ = ["print_end", "print_report", "resume_args"]


def resume_args(inv: Invocation) -> str:
    """What follows `orchestrator resume` to continue this invocation's state (and shard)."""
    return inv.resume_args()


def print_report(paths: ReportPaths) -> None:
    """Where the report went: its folder, then every file written in it, as absolute
    paths (a run and its resume print the same, wherever each was started)."""
    echo(f"report: {paths.directory.absolute()}")
    for path in paths.files:
        echo(f"  {path.absolute()}")


def print_end(result: Result, inv: Invocation) -> None:
    outcome = result.outcome
    for line in end_of_run(
        outcome.counts,
        # What follows `resume --state`: the file, or the DSN with its campaign (and shard).
        state_path=resume_args(inv).removeprefix("--state "),
        requests=result.requests,
        deferred=outcome.deferred,
        stopped=outcome.stopped,
        halted=outcome.halted,
        aborted=outcome.aborted,
        credentials_refused=outcome.credentials_refused,
        held=outcome.held,
        step=result.next_step,
    ):
        echo(line.text, err=line.err)
    if result.report is not None:
        print_report(result.report)
    if result.report_error:
        echo(
            f"error: {result.report_error}\n  the state is intact; write the report later "
            f"with: orchestrator report {inv.state.resume_args()} --report-dir DIR",
            err=True,
        )
    if outcome.unrecorded:
        _list_unrecorded(outcome.unrecorded, result, inv)


def _list_unrecorded(answers: Sequence[Answer], result: Result, inv: Invocation) -> None:
    """Job ids the service returned that the state store could not record: shown, and
    written next to the report, so that a resume can be given them (--known-jobs)."""
    echo(
        f"error: {len(answers)} job id(s) the service returned could not be recorded in"
        " the state file; a resume must be given them, or it would take those servers"
        " for untouched while their jobs may still be queued:",
        err=True,
    )
    for answer in answers:
        echo(f"  {answer.describe()}", err=True)
    folder = result.report.directory if result.report is not None else inv.report_dir
    path = folder / f"unrecorded-jobs-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    rows = [(a.target.project_id, a.target.server_id, a.job_id) for a in answers]
    try:
        write_unrecorded(path, rows)
        given = f"--known-jobs {path}"
    except OSError as exc:
        echo(f"  (could not write {path}: {exc.strerror})", err=True)
        given = " ".join(f"--known-job {p}/{s}={j}" for p, s, j in rows)
    echo(f"resume with: orchestrator resume {resume_args(inv)} {given}", err=True)
