"""The list reads' rows (engine.rows): read back from disk exactly as they were put, and
moved there by the project that takes the run's rows in memory past the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.cloud.interface import ServerView
from orchestrator.engine.rows import NEVER, Row, RowMemory, decode, encode
from orchestrator.errors import ScratchError
from orchestrator.store.scratch import ScratchTable

AT = datetime(2026, 12, 6, 2, 0, 0, 123457, tzinfo=UTC)


def server(n: int, **fields: Any) -> ServerView:
    return ServerView(f"00000000-0000-4000-8000-{n:012x}", "ACTIVE", "active", None, None, **fields)


ROWS = [
    Row(server(1), AT, 12.5),
    Row(server(2), NEVER, 0.0),  # read before the service's time was known
    Row(
        ServerView(
            "s-3",
            "REBUILD",
            "stopped",
            "rebuilding",
            "2026-12-06T01:59:58.000000",
            updated="2026-12-06T02:00:00Z",
            locked=False,
            system_disk=True,
            system_volume="vol-a",
            attached=("vol-a", "vol-b"),
        ),
        AT + timedelta(microseconds=1),
        1e9 + 0.1,
    ),
    Row(
        server(4, locked=True, system_disk=False, attached=()),
        datetime.max.replace(tzinfo=UTC),
        3.0,
    ),
    # Text as the service's answers may carry it after cleaning: any Unicode, quotes,
    # a visible escape of a control character.
    Row(
        server(5, system_volume='vol "\\x1b" ✓ \u202e', attached=('vol "\\x1b" ✓ \u202e',)), AT, 7.0
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.server.server_id[-4:])
def test_a_row_read_back_from_disk_is_the_row_that_was_put(row: Row) -> None:
    assert decode(row.server.server_id, encode(row)) == row
    memory = RowMemory(spill_at=0)
    rows = memory.rows()
    rows.put(row)
    assert rows.on_disk
    assert rows.get(row.server.server_id) == row
    memory.close()


def test_the_project_that_passes_the_budget_moves_all_its_rows_to_disk() -> None:
    memory = RowMemory(spill_at=3)
    first, second = memory.rows(), memory.rows()
    first.put(ROWS[0])
    first.put(ROWS[0])  # the same server again: replaced, not counted twice
    second.put(ROWS[1])
    second.put(ROWS[2])
    assert memory.held == 3 and not first.on_disk and not second.on_disk
    second.put(ROWS[3])  # the fourth row in memory: this project moves
    assert second.on_disk and not first.on_disk
    assert (memory.held, memory.spilled) == (1, 1)
    for row in ROWS[1:4]:
        assert second.get(row.server.server_id) == row
    # The two projects' rows do not mix, on disk or off.
    assert second.get(ROWS[0].server.server_id) is None
    assert first.get(ROWS[1].server.server_id) is None
    assert first.get(ROWS[0].server.server_id) == ROWS[0]
    # On disk, a row is replaced and removed as in memory.
    newer = Row(ROWS[2].server, AT + timedelta(seconds=5), 99.0)
    second.put(newer)
    assert second.get(newer.server.server_id) == newer
    second.pop(newer.server.server_id)
    assert second.get(newer.server.server_id) is None
    second.pop(newer.server.server_id)  # gone already: nothing to do
    first.pop(ROWS[0].server.server_id)
    assert memory.held == 0
    memory.close()


def test_oldest_is_the_earliest_service_reading_ever_put() -> None:
    rows = RowMemory().rows()
    assert rows.oldest is None
    rows.put(Row(server(1), NEVER, 1.0))
    assert rows.oldest is None  # a reading without the service's time vouches for nothing
    rows.put(Row(server(1), AT, 2.0))
    rows.put(Row(server(2), AT - timedelta(seconds=3), 3.0))
    rows.put(Row(server(2), AT + timedelta(seconds=9), 4.0))  # replaced by a later one
    # Never later than the oldest row held: a tick reaching back to it covers them all.
    assert rows.oldest == AT - timedelta(seconds=3)


def test_a_scratch_file_that_fails_drops_every_row_of_the_project(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = RowMemory(spill_at=0)
    rows, other = memory.rows(), memory.rows()
    rows.put(ROWS[0])
    other.put(ROWS[1])
    assert rows.get(ROWS[0].server.server_id) == ROWS[0]

    table = memory.table()
    sound = table._put
    table._put = "INSERT INTO gone VALUES (?)"  # the file fails: SQLite raises
    newer = Row(ROWS[0].server, AT + timedelta(seconds=5), 99.0)
    rows.put(newer)  # the update is lost: the row it should replace must not stay
    assert rows.get(ROWS[0].server.server_id) is None
    assert "read singly" in caplog.text
    table._put = sound
    rows.put(newer)  # nothing is kept for this project any more
    assert rows.get(newer.server.server_id) is None
    assert other.get(ROWS[1].server.server_id) == ROWS[1]  # another project's rows stand
    memory.close()


def test_the_scratch_table_raises_its_own_error() -> None:
    table = ScratchTable(2)
    table._get = "SELECT c0 FROM nowhere WHERE space = ? AND k = ?"
    with pytest.raises(ScratchError, match="scratch file: no such table"):
        table.get(1, "k")
    table.close()
