"""retry.csv: what is left to do, as an inventory that `run` takes as it is.

The failed, the deferred (pending, with a "deferred: ..." event) and the
unsettled (in doubt) targets, each with every column of the input and the
values it was actually sent with (key pair, user, mode, BYOL, region,
Cloud-Init, and the inventory's own extra columns), so that a new run gives
each server what the first one meant to, never command-line defaults.

Cells that a spreadsheet would run as a formula get the same leading `'` as in
targets.csv (`spreadsheet.neutralise`); the inventory reader takes exactly that
quote away again (`spreadsheet.restore`), so the file reads back to the same
targets. User data is not a column; a run of retry.csv needs `--user-data` again
(report.md says so).
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import TextIO

from orchestrator.model import Target, TargetState
from orchestrator.spreadsheet import CsvWriter, neutralise

RETRY_CSV = "retry.csv"
COLUMNS = ("project_id", "server_id", "region", "keyname", "userid", "mode", "byol", "cloud_init")
DEFERRED_PREFIX = "deferred"  # how the runner's events begin when it defers a target


def is_deferral(to_state: str, detail: str) -> bool:
    """Whether an event records a target left pending for later (throttled, busy, ...)."""
    return to_state == TargetState.PENDING.value and detail.startswith(DEFERRED_PREFIX)


def _flag(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


class RetryInventory:
    """Writes retry.csv rows for the targets offered to it, in inventory order."""

    def __init__(
        self, out: TextIO, extra_columns: Sequence[str], deferred_ids: Container[int]
    ) -> None:
        self._writer = CsvWriter(out)
        self._extra = list(dict.fromkeys(extra_columns))
        self._deferred = deferred_ids
        self.rows = 0
        self.cloud_init_rows = 0
        self._writer.writerow([neutralise(name) for name in (*COLUMNS, *self._extra)])

    def wanted(self, target: Target) -> bool:
        if target.state in (TargetState.FAILED, TargetState.IN_DOUBT):
            return True
        return target.state is TargetState.PENDING and target.id in self._deferred

    def offer(self, target: Target) -> None:
        if not self.wanted(target):
            return
        spec = target.spec
        cells = [
            spec.project_id,
            spec.server_id,
            spec.region or "",
            spec.keyname,
            spec.userid,
            spec.mode or "",
            _flag(spec.byol),
            _flag(spec.cloud_init),
            *(spec.extra.get(name, "") for name in self._extra),
        ]
        self._writer.writerow([neutralise(cell) for cell in cells])
        self.rows += 1
        self.cloud_init_rows += spec.cloud_init

    def notes(self, created_at: str, user_data: object) -> list[str]:
        """Lines for report.md: how to use the file safely."""
        if not self.rows:
            return [f"- `{RETRY_CSV}`: nothing to retry"]
        lines = [
            f"- `{RETRY_CSV}`: {self.rows} target(s) failed, deferred or in doubt, as an"
            " inventory with the values each was sent with. In a new run, keep servers"
            " reinstalled meanwhile safe: `orchestrator run retry.csv --state NEW.sqlite"
            f" --skip-reinstalled-since {created_at}`; or `orchestrator retry --state` on"
            " this state file"
        ]
        if self.cloud_init_rows and isinstance(user_data, dict):
            lines.append(
                f"- {self.cloud_init_rows} of them use Cloud-Init with user data"
                f" (sha256 `{user_data.get('sha256')}`): give `--user-data` again"
            )
        return lines
