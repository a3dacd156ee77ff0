"""How a command ends: its exit code, and the chain of causes of an error.

    0  every target succeeded
    1  the run finished and some targets failed
    2  invalid input or usage, an unusable state file or report directory,
       or credentials refused; nothing unsafe was done
    3  stopped before finishing (interrupted, or work deferred); resume to continue

Those are a run's (`run`, `resume`, `retry`); the commands that only read or copy
have codes of their own, each shown by its --help (the `*_EXIT_CODES` texts).
The code of a run (or of `status` and `report`, as a run would have ended) is
worked out by `orchestrator.engine.outcome.exit_code`; `guarded` maps what stops a
command before its run starts to 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from orchestrator.cli.document import Ended, error_document, json_output
from orchestrator.errors import OrchestratorError
from orchestrator.visible import echo

__all__ = [
    "BACKUP_EXIT_CODES",
    "EXIT_CODES",
    "PLAN_EXIT_CODES",
    "REPORT_EXIT_CODES",
    "SIMULATE_EXIT_CODES",
    "STATE_EXIT_CODES",
    "fail",
    "guarded",
]

EXIT_CODES = """\b
Exit codes:
  0  every target succeeded
  1  the run finished and some targets failed
  2  invalid input or usage, an unusable state file or report
     directory, or credentials refused; nothing unsafe was done
  3  stopped before finishing (interrupted, work deferred, the window
     closed, a canary failed or a failure budget tripped): resume
"""
# Each command's own codes, shown by its --help (and the reference built from it): the
# codes of a run are not those of a command that only reads.
STATE_EXIT_CODES = """\b
Exit codes, as a run ending in this state would exit:
  0  every target succeeded
  1  every target is final and some failed
  2  no state there, or it is unusable (nothing was changed)
  3  not finished: resume to continue
"""
REPORT_EXIT_CODES = """\b
Exit codes, as a run ending in this state would exit:
  0  every target succeeded
  1  every target is final and some failed
  2  no state there, or it is unusable, or the report could not be
     written (nothing was changed)
  3  not finished: resume to continue
"""
PLAN_EXIT_CODES = """\b
Exit codes:
  0  the inventory is valid (with --preflight: and nothing blocks)
  1  with --preflight: some server would fail or wait
  2  invalid input or usage (every problem listed); with --preflight
     also credentials refused or an endpoint wrong or unreachable
"""
BACKUP_EXIT_CODES = """\b
Exit codes:
  0  copied
  2  nothing copied: no state file there, an unusable one, a run
     holds it, or DESTINATION exists or cannot be written
"""
SIMULATE_EXIT_CODES = """\b
Exit codes:
  0  stopped by SIGINT or SIGTERM
  2  invalid options, or the port or certificate cannot be used
"""


def fail(exc: BaseException, code: int) -> NoReturn:
    """Print the error and its chain of causes, then exit."""
    echo(f"error: {exc}", err=True)
    cause = exc.__cause__
    while cause is not None:
        echo(f"  caused by: {type(cause).__name__}: {cause}", err=True)
        cause = cause.__cause__
    sys.exit(code)


def guarded(fn: Callable[..., int | Ended]) -> Callable[..., None]:
    """Map the project's exceptions to exit codes, keeping the command bodies plain;
    with --output json, print the command's document (`document.py`) on stdout."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        as_json = str(kwargs.get("output") or "text").lower() == "json"
        command = click.get_current_context().info_name or fn.__name__
        with json_output(as_json) as write:
            try:
                ended = fn(*args, **kwargs)
            except OrchestratorError as exc:
                # Whatever stops a command before its run starts (bad input, an unusable
                # state file or report directory) is for the operator to fix: exit 2.
                # A run that started always ends through its outcome (0, 1 or 3).
                if as_json:
                    write(error_document(command, str(exc)))
                fail(exc, 2)
        if isinstance(ended, Ended):
            if as_json:
                write(ended.document)
            sys.exit(ended.code)
        sys.exit(ended)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
