"""Where a state file is when no --state is given: `run` makes it, `status` finds it.

    new campaigns   state/<inventory>.state.sqlite in the working directory: beside
                    reports/, not in it, so that `rm -rf reports` cannot take the
                    record of what was sent (the resume safety) with the report
    older ones      <report-dir>/<inventory>.state.sqlite, where earlier versions
                    made them: still found there and resumed in place (said once
                    on stderr), so a campaign under way is never started afresh

Both places holding a state file of one inventory is refused (exit 2): which one
is meant cannot be guessed, and guessing wrong would send again what was sent.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.visible import echo

__all__ = ["DEFAULT_REPORT_DIR", "STATE_DIR", "default_state", "find_state_files"]

STATE_DIR = Path("state")
DEFAULT_REPORT_DIR = Path("reports")
SUFFIX = ".state.sqlite"


def default_state(inventory: Path, report_dir: Path | None) -> Path:
    """The state file of INVENTORY when --state is not given (see the module's doc)."""
    new = STATE_DIR / f"{inventory.stem}{SUFFIX}"
    old = (report_dir or DEFAULT_REPORT_DIR) / f"{inventory.stem}{SUFFIX}"
    if old.resolve() == new.resolve() or not old.exists():
        return new
    if new.exists():
        raise UsageError(
            f"two state files for {inventory}: {new} and {old} (where earlier versions kept"
            " them); say which campaign to continue with --state"
        )
    echo(
        f"note: continuing the state file {old}, where earlier versions kept it; new"
        f" campaigns keep theirs in {STATE_DIR}/, out of the report folder (to move this"
        f" one: orchestrator backup --state {old} {new}, then delete {old} and its .log)",
        err=True,
    )
    return old


def find_state_files(report_dir: Path = DEFAULT_REPORT_DIR) -> list[Path]:
    """The state files `run` would have made here by default, in both places."""
    found = {
        path
        for folder in (STATE_DIR, report_dir)
        if folder.is_dir()
        for path in folder.glob(f"*{SUFFIX}")
        if path.is_file()
    }
    return sorted(found)
