"""Private scratch databases: numbers sorted on disk, and lookup tables too large for memory.

The report's duration figures need every final target's duration in order, and
a million floats sorted in memory cost ~40 MB. `ScratchSort` takes them in and
gives them back in ascending order from an unnamed SQLite file (deleted by
SQLite when the connection closes), with a small page cache, so that ORDER BY
sorts on disk. It is not the state store: nothing in it outlives the report that
made it, and the durations it holds come from Python's own timestamp parsing,
which the state store's SQL could not reproduce on both databases.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator

from orchestrator.errors import ScratchError

# The scratch database's page cache, in KiB (SQLite's default is 2,000).
SCRATCH_CACHE_KIB = 1024


class ScratchSort:
    """Numbers added in any order, read back in ascending order (`ascending`).

    Values are stored as they are: the table's column has no declared type, so
    no affinity conversion changes a float. Close it (or use `with`) to drop the
    file.
    """

    def __init__(self, cache_kib: int = SCRATCH_CACHE_KIB) -> None:
        # "": a private temporary database, in a file SQLite deletes when closed.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE d (v)")

    def __enter__(self) -> ScratchSort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, values: Iterable[float]) -> None:
        self._db.executemany("INSERT INTO d (v) VALUES (?)", ((v,) for v in values))

    def ascending(self) -> Iterator[float]:
        """Every value added so far, smallest first (streamed from the sort)."""
        return (row[0] for row in self._db.execute("SELECT v FROM d ORDER BY v"))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


class ScratchTable:
    """Rows of `width` values by (space, key), in an unnamed SQLite file with a small
    page cache: a lookup table too large for memory (the list reads' rows of a
    million servers), kept on disk for as long as the run that made it.

    Values are stored as they are (the columns have no declared type). One table
    serves many spaces (one per project read by lists), so the run opens one file.
    Any failure of the file raises ScratchError.
    """

    def __init__(self, width: int, cache_kib: int = SCRATCH_CACHE_KIB) -> None:
        with _translated():
            self._open(width, cache_kib)

    def _open(self, width: int, cache_kib: int) -> None:
        self.width = width
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        columns = ", ".join(f"c{n}" for n in range(width))
        self._db.execute(
            f"CREATE TABLE t (space INTEGER, k TEXT, {columns}, PRIMARY KEY (space, k))"
            " WITHOUT ROWID"
        )
        marks = ", ".join("?" * (width + 2))
        self._put = f"INSERT OR REPLACE INTO t VALUES ({marks})"
        self._get = f"SELECT {columns} FROM t WHERE space = ? AND k = ?"

    def put(self, space: int, key: str, values: tuple[object, ...]) -> None:
        with _translated():
            self._db.execute(self._put, (space, key, *values))

    def put_many(self, space: int, rows: Iterable[tuple[str, tuple[object, ...]]]) -> None:
        with _translated():
            self._db.execute("BEGIN")
            try:
                self._db.executemany(self._put, ((space, key, *values) for key, values in rows))
            finally:
                self._db.execute("COMMIT")

    def get(self, space: int, key: str) -> tuple[object, ...] | None:
        with _translated():
            found: tuple[object, ...] | None = self._db.execute(self._get, (space, key)).fetchone()
        return found

    def delete(self, space: int, key: str) -> None:
        with _translated():
            self._db.execute("DELETE FROM t WHERE space = ? AND k = ?", (space, key))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise ScratchError(f"scratch file: {exc}") from exc
