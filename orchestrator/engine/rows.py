"""The list reads' rows, in memory up to a budget the run's projects share, then on disk.

    RowMemory(spill_at)   one per run: counts the rows its projects hold in memory,
                          and owns the scratch table the spilled ones move to
    memory.rows()         one project's rows, by server ID

A row is a server's reading with the strings and objects a parsed answer is made of:
about 750 bytes in memory. A run whose projects are read by pages keeps one for
every server of them, so a million servers would hold 700 MB. When the rows held in
memory pass `spill_at`, the project whose row took the count past it moves all of
its rows to one private scratch table (an unnamed SQLite file with a 1 MiB page
cache, in SQLite's temporary directory: `TMPDIR`, else /var/tmp or /tmp), and keeps
them there: a lookup is then a query of a few microseconds instead of a dict's.
Only the rows' home changes: a row read back from disk is the row that was put
(`encode` / `decode` are exact, tested), so every decision sees the same evidence.
Where the scratch file fails (a full disk), the project's rows are dropped, all of
them: a row that missed its update must not be vouched for as current, so from then
on the project has no row and each of its servers is read singly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orchestrator.cloud.interface import ServerView
from orchestrator.errors import ScratchError
from orchestrator.store.scratch import ScratchTable

log = logging.getLogger("orchestrator.reads")

# Rows held in memory across a run's projects before a project's move to disk
# (~75 MB): a fleet of a few projects of tens of thousands of servers never spills.
SPILL_AT = 100_000
NEVER = datetime.min.replace(tzinfo=UTC)  # a reading taken before the service's time was known
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Row:
    server: ServerView
    read_at: datetime  # the earliest the service may have taken this reading
    read_mono: float  # when (monotonic) its request left


class RowMemory:
    """The run's budget of rows in memory, and the scratch table beyond it."""

    def __init__(self, spill_at: int = SPILL_AT) -> None:
        self.spill_at = spill_at
        self.held = 0  # rows held in memory, over every project
        self.spilled = 0  # projects whose rows moved to disk
        self._table: ScratchTable | None = None
        self._spaces = 0

    def rows(self) -> Rows:
        self._spaces += 1
        return Rows(self, self._spaces)

    def table(self) -> ScratchTable:
        if self._table is None:
            self._table = ScratchTable(len(_COLUMNS))
        return self._table

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None


class Rows:
    """One project's rows by server ID: a dict, or the scratch table once spilled."""

    def __init__(self, memory: RowMemory, space: int) -> None:
        self._memory = memory
        self._space = space
        self._held: dict[str, Row] | None = {}
        self._lost = False  # the scratch file failed: no row is kept any more
        # The earliest `read_at` (other than NEVER) of any row ever put: no later than
        # the oldest row held, so a tick reaching back to it covers every row.
        self.oldest: datetime | None = None

    @property
    def on_disk(self) -> bool:
        return self._held is None

    def get(self, server_id: str) -> Row | None:
        if self._held is not None:
            return self._held.get(server_id)
        if self._lost:
            return None
        try:
            found = self._memory.table().get(self._space, server_id)
        except ScratchError as exc:
            self._lose(exc)
            return None
        return None if found is None else decode(server_id, found)

    def put(self, row: Row) -> None:
        if row.read_at != NEVER and (self.oldest is None or row.read_at < self.oldest):
            self.oldest = row.read_at
        server_id = row.server.server_id
        if self._held is None:
            if not self._lost:
                try:
                    self._memory.table().put(self._space, server_id, encode(row))
                except ScratchError as exc:
                    self._lose(exc)
            return
        if server_id not in self._held:
            self._memory.held += 1
        self._held[server_id] = row
        if self._memory.held > self._memory.spill_at:
            self._spill(self._held)

    def pop(self, server_id: str) -> None:
        if self._held is None:
            if not self._lost:
                try:
                    self._memory.table().delete(self._space, server_id)
                except ScratchError as exc:
                    self._lose(exc)
        elif self._held.pop(server_id, None) is not None:
            self._memory.held -= 1

    def _spill(self, held: dict[str, Row]) -> None:
        self._memory.held -= len(held)
        self._memory.spilled += 1
        self._held = None
        try:
            self._memory.table().put_many(self._space, ((k, encode(r)) for k, r in held.items()))
        except ScratchError as exc:
            self._lose(exc)

    def _lose(self, exc: ScratchError) -> None:
        self._lost = True
        log.warning(
            "reads: the rows' scratch file failed (%s): this project's servers are read"
            " singly from now on",
            exc,
        )


_COLUMNS = (
    "status",
    "vm_state",
    "task_state",
    "launched_at",
    "updated",
    "locked",
    "system_disk",
    "system_volume",
    "attached",  # JSON list, or NULL
    "read_at",  # microseconds since the epoch: exact, where a float would round
    "read_mono",
)


def encode(row: Row) -> tuple[object, ...]:
    """A row as the scratch table's column values (its server ID is the key)."""
    s = row.server
    attached = None if s.attached is None else json.dumps(list(s.attached))
    read_at = (row.read_at - _EPOCH) // _MICROSECOND
    return (
        s.status, s.vm_state, s.task_state, s.launched_at, s.updated,
        s.locked, s.system_disk, s.system_volume, attached, read_at, row.read_mono,
    )  # fmt: skip


def decode(server_id: str, values: tuple[object, ...]) -> Row:
    """The row `encode` made these values of."""
    (status, vm_state, task_state, launched_at, updated, locked, system_disk, system_volume,
     attached, read_at, read_mono) = values  # fmt: skip
    server = ServerView(
        server_id,
        _text(status),
        _text(vm_state),
        _text(task_state),
        _text(launched_at),
        _text(updated),
        locked=None if locked is None else bool(locked),
        system_disk=None if system_disk is None else bool(system_disk),
        system_volume=_text(system_volume),
        attached=None if attached is None else tuple(json.loads(str(attached))),
    )
    if not isinstance(read_at, int) or not isinstance(read_mono, int | float):
        raise TypeError("a scratch row's times are not numbers")
    return Row(server, _EPOCH + read_at * _MICROSECOND, float(read_mono))


def _text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("a scratch row's text is not text")
    return value
