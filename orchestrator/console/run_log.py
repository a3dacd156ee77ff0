"""The first and last records of an invocation's log: what was started, how it ended.

    run_start   command, inventory, state, options: the options as recorded with the
                invocation in the state (where the credentials came from, never a
                secret; every line is blanked against the secrets besides)
    run_end     command, outcome, exit_code, counts, held, report (the report's
                folder, or null), error (what stopped it before a run, or null)

Both go to the log file (not the console, which has the closing lines), as lines of
their own: in JSON with `event` run_start / run_end, so that a collector can cut a
log into invocations and read each one's result without the state file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.model import TargetState

__all__ = ["RUN_END_FIELDS", "RUN_START_FIELDS", "log_run_end", "log_run_start"]

RUN_START_FIELDS = ("command", "inventory", "state", "options")
RUN_END_FIELDS = ("command", "outcome", "exit_code", "counts", "held", "report", "error")

log = logging.getLogger("orchestrator.campaign")


def log_run_start(
    command: str, *, inventory: Path | None, state: str, options: Mapping[str, Any]
) -> None:
    fields = {
        "event": "run_start",
        "command": command,
        "inventory": str(inventory) if inventory is not None else None,
        "state": state,
        "options": dict(options),
    }
    log.info("start: orchestrator %s, state %s", command, state, extra=fields)


def log_run_end(
    command: str,
    *,
    outcome: str,
    exit_code: int,
    counts: Mapping[TargetState, int] | None = None,
    held: str | None = None,
    report: Path | None = None,
    error: str | None = None,
) -> None:
    fields = {
        "event": "run_end",
        "command": command,
        "outcome": outcome,
        "exit_code": exit_code,
        "counts": {state.value: n for state, n in (counts or {}).items()},
        "held": held,
        "report": str(report) if report is not None else None,
        "error": error,
    }
    where = f"; report {report}" if report is not None else ""
    why = f"; {error}" if error else (f"; held: {held}" if held else "")
    log.info("end: %s, exit %d%s%s", outcome, exit_code, where, why, extra=fields)
