"""--output json: one JSON document on stdout when a command ends, for scripts.

    run, resume, retry   `run_to_dict`   schema orchestrator.run/1
    plan                 `plan_to_dict`  schema orchestrator.plan/1
    status               the status document (console.status_view), orchestrator.status/1

While the command runs, whatever it would print on stdout goes to stderr instead
(`json_output`): stdout holds the document and nothing else, so a pipeline (AWX,
Rundeck, CI) reads it with one `json.loads`. A command ends with `Ended` (its exit
code and its document); one stopped by the project's own errors before it could
run (exit 2: bad input, an unusable state, refused credentials) still prints a
document, of its schema, with `outcome` "error" and the message in `error`. Only
click's own refusal of the command line (an unknown option, a bad value) prints
none: that is a usage error on stderr, exit 2, before the command starts.

The keys are a format: listed in docs/reference/report-files.md, kept as they are;
a new one may be added, none renamed or dropped without a new schema version.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import click

from orchestrator.model import TargetState

if TYPE_CHECKING:  # the engine is loaded by the commands that run; `backup` needs none
    from orchestrator.engine.campaign import Invocation, Result

__all__ = [
    "OUTPUT_OPTION",
    "PLAN_SCHEMA",
    "RUN_SCHEMA",
    "Ended",
    "error_document",
    "json_output",
    "plan_to_dict",
    "run_to_dict",
]

RUN_SCHEMA = "orchestrator.run/1"
PLAN_SCHEMA = "orchestrator.plan/1"

OUTPUT_OPTION = click.option(
    "--output",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout at the end (outcome, exit code, counts, report,"
    " what holds the run), nothing else there; what is printed for people goes to stderr."
    " Its keys: docs/reference/report-files.md.",
)


@dataclass(frozen=True)
class Ended:
    """How a command ended: its exit code, and what --output json prints."""

    code: int
    document: dict[str, Any]


def all_counts(counts: Mapping[TargetState, int] | Mapping[str, int]) -> dict[str, int]:
    """Targets by state, every state named (0 when none), in the states' order."""
    by_value = {getattr(state, "value", state): n for state, n in counts.items()}
    return {state.value: int(by_value.get(state.value, 0)) for state in TargetState}


def run_to_dict(
    command: str,
    code: int,
    *,
    inv: Invocation | None = None,
    result: Result | None = None,
    outcome: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The document of `run`, `resume` and `retry` (see docs: report files)."""
    ended = result.outcome if result is not None else None
    report = result.report if result is not None else None
    counts = all_counts(ended.counts) if ended is not None else None
    return {
        "schema": RUN_SCHEMA,
        "command": command,
        "outcome": outcome or (ended.label if ended is not None else "error"),
        "exit_code": code,
        "state": inv.state.label if inv is not None else None,
        "shard": str(inv.settings.shard) if inv is not None and inv.settings.shard else None,
        "run_id": (result.run_id or None) if result is not None else None,
        "total": sum(counts.values()) if counts is not None else None,
        "counts": counts,
        "held": ended.held if ended is not None else None,
        "deferred": ended.deferred if ended is not None else None,
        "stopped": ended.stopped if ended is not None else False,
        "aborted": ended.aborted if ended is not None else None,
        "requests": dict(result.requests) if result is not None else {},
        "report": None
        if report is None
        else {"directory": str(report.directory), "files": [str(p) for p in report.files]},
        "report_error": result.report_error if result is not None else None,
        "unrecorded_jobs": []
        if ended is None
        else [
            {
                "project_id": a.target.project_id,
                "server_id": a.target.server_id,
                "job_id": a.job_id,
            }
            for a in ended.unrecorded
        ],
        "error": error,
    }


def plan_to_dict(
    code: int,
    *,
    inventory: Mapping[str, Any] | None = None,
    projects: Mapping[str, int] | None = None,
    modes: Mapping[str, int] | None = None,
    apis: Mapping[str, int] | None = None,
    estimate: list[str] | None = None,
    problems: list[str] | None = None,
    resume: Mapping[str, int] | None = None,
    preflight: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The document of `plan` (see docs: report files)."""
    outcome = "error" if error is not None else ("ok" if code == 0 else "problems")
    return {
        "schema": PLAN_SCHEMA,
        "command": "plan",
        "outcome": outcome,
        "exit_code": code,
        "inventory": dict(inventory) if inventory is not None else None,
        "projects": dict(sorted((projects or {}).items())),
        "modes": dict(sorted((modes or {}).items())),
        "apis": dict(sorted((apis or {}).items())),
        "estimate": list(estimate or []),
        "problems": list(problems or []),
        "resume": dict(resume) if resume is not None else None,
        "preflight": dict(preflight) if preflight is not None else None,
        "error": error,
    }


def error_document(command: str, message: str) -> dict[str, Any]:
    """The document of a command that a project error stopped before it could run."""
    if command == "plan":
        return plan_to_dict(2, error=message)
    if command == "status":
        from orchestrator.console.status_view import status_error_dict

        return status_error_dict(message)
    return run_to_dict(command, 2, error=message)


@contextlib.contextmanager
def json_output(enabled: bool) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """With --output json: stdout goes to stderr inside; the callable yielded writes
    the document to the real stdout (after the block, or at once)."""
    real: TextIO = sys.stdout

    def write(document: Mapping[str, Any]) -> None:
        real.write(json.dumps(document, indent=2) + "\n")
        real.flush()

    if not enabled:
        yield write
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield write
