"""Choosing part of an inventory: --only-project, --exclude and --limit of `run` and `plan`.

Only the selected targets are imported into a state file; the rest are not in
it at all, so no later invocation of that state file can send them. What was
left out, and by which flag, is recorded in the state file's meta
(`selection`) and stated in the report. A later run of the same inventory
with another selection needs its own state file, since the first one knows
only its own targets (`check_same_selection`).

Order: --only-project and --exclude first, then --limit takes the first N of
what is left, in inventory order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.model import TargetSpec

_PROJECT_ID = re.compile(r"[0-9a-f]{32}")
# An exclude file names servers; key pair and user are not needed to leave one out.
_EXCLUDE_NAME = "(exclude)"


@dataclass(frozen=True)
class Selection:
    only_projects: tuple[str, ...] = ()
    limit: int | None = None
    exclude: Path | None = None
    encoding: str | None = None  # of the exclude file, as for the inventory

    @property
    def active(self) -> bool:
        return bool(self.only_projects or self.limit is not None or self.exclude is not None)

    def check(self) -> None:
        """Usage errors in the flags themselves, before any file is read."""
        for project in self.only_projects:
            if not _PROJECT_ID.fullmatch(project):
                raise UsageError(
                    f"--only-project {project!r}: must be a project ID, 32 lowercase hex characters"
                )
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit {self.limit}: must be at least 1")

    def describe(self) -> dict[str, Any]:
        """The flags as recorded in the state file (and compared on a re-run)."""
        return {
            "only_project": sorted(self.only_projects),
            "limit": self.limit,
            "exclude": str(self.exclude.resolve()) if self.exclude else None,
            "exclude_sha256": _sha256(self.exclude) if self.exclude else None,
        }


@dataclass
class SelectionFilter:
    """Passes the selected targets through and counts what it leaves out, by flag."""

    selection: Selection
    excluded_servers: frozenset[str] = frozenset()
    selected: int = 0
    left_out: dict[str, int] = field(
        default_factory=lambda: {"only_project": 0, "exclude": 0, "limit": 0}
    )

    @classmethod
    def build(cls, selection: Selection) -> SelectionFilter:
        selection.check()
        servers = frozenset(read_exclude(selection.exclude, selection.encoding))
        return cls(selection, servers if selection.exclude else frozenset())

    def filtered(self, specs: Iterable[TargetSpec]) -> Iterator[TargetSpec]:
        only = set(self.selection.only_projects)
        limit = self.selection.limit
        for spec in specs:
            if only and spec.project_id not in only:
                self.left_out["only_project"] += 1
            elif spec.server_id in self.excluded_servers:
                self.left_out["exclude"] += 1
            elif limit is not None and self.selected >= limit:
                self.left_out["limit"] += 1
            else:
                self.selected += 1
                yield spec

    @property
    def total_left_out(self) -> int:
        return sum(self.left_out.values())

    def record(self) -> dict[str, Any]:
        """What goes into the state file's meta and the report."""
        return {
            **self.selection.describe(),
            "selected": self.selected,
            "left_out": self.total_left_out,
            "left_out_by": dict(self.left_out),
        }


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(f"--exclude {path}: cannot read it: {exc.strerror}") from None


def read_exclude(path: Path | None, encoding: str | None) -> set[str]:
    """The server IDs of an exclude file: any inventory (CSV or JSON, a report's
    targets.csv or retry.csv too); keyname and userid are not needed in it.

    Matched by server_id alone: a server belongs to one project, and leaving out
    one listed under another project is the safe mistake.
    """
    if path is None:
        return set()
    defaults = InventoryDefaults(_EXCLUDE_NAME, _EXCLUDE_NAME, encoding=encoding)
    reader = InventoryReader(path, defaults)
    servers = {spec.server_id for spec in reader}
    reader.raise_if_problems()
    return servers


def check_same_selection(recorded: dict[str, Any], now: Selection) -> None:
    """A state file holds only the targets of its selection: another one needs its own."""
    if not now.active:
        return  # not given again: the state file's own selection stands
    was = {k: recorded.get(k) for k in ("only_project", "limit", "exclude", "exclude_sha256")}
    if not recorded:
        was = Selection().describe()
    given = now.describe()
    if was != given:
        raise UsageError(
            "this state file was made with another selection"
            f" ({_flags(was)}; now {_flags(given)}); it holds only the targets selected"
            " then. Use a new state file (--state NEW_PATH) for another part of the inventory"
        )


def _flags(described: dict[str, Any]) -> str:
    parts = [f"--only-project {p}" for p in described.get("only_project") or ()]
    if described.get("exclude"):
        parts.append(f"--exclude {described['exclude']}")
    if described.get("limit") is not None:
        parts.append(f"--limit {described['limit']}")
    return " ".join(parts) or "no selection"


def left_out_text(record: dict[str, Any]) -> str | None:
    """One sentence for the report, or None when nothing was left out."""
    if not record or not record.get("left_out"):
        return None
    by = record.get("left_out_by") or {}
    order = ("only_project", "exclude", "limit")  # the order they apply in
    parts = [f"{by[name]} by --{name.replace('_', '-')}" for name in order if by.get(name)]
    return (
        f"{record['left_out']} inventory row(s) left out ({', '.join(parts)});"
        f" {record.get('selected', '?')} selected. Flags: {_flags(record)}"
    )
