"""InventoryReader: one inventory file read once, into valid targets and a list of problems.

Owns what does not depend on the format: checks of the file itself (exists,
regular, not a spreadsheet or archive, size), its encoding and, for CSV, its
separator, the choice of CSV or JSON, and hashing every byte. The formats
(`csv_format`, `json_format`) read the rows and hand them to a `RowChecker`
(`rows`), which owns defaults, targets, duplicates and problems. Imports go
one way: reader -> formats -> rows -> rules.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, NoReturn

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.inventory.csv_format import read_csv
from orchestrator.inventory.dialect import Dialect, DialectProblem, detect_dialect
from orchestrator.inventory.encoding import (
    ByteStream,
    EncodingProblem,
    TextEncoding,
    choose_encoding,
)
from orchestrator.inventory.json_format import read_json, too_big_message
from orchestrator.inventory.rows import NO_DEFAULTS, InventoryDefaults, RowChecker
from orchestrator.model import TargetSpec

_SNIFF_BYTES: Final = 65_536

_BINARY_MAGIC: Final = (
    (b"PK\x03\x04", "is a ZIP archive (a spreadsheet?); export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "is an Office document; export the sheet as CSV"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first"),
)
_SPREADSHEET_SUFFIXES: Final = frozenset({".xlsx", ".xlsm", ".xls", ".ods", ".numbers"})


class _HashingStream:
    """A binary file that hashes every byte read through it."""

    def __init__(self, file: Any, hasher: Any) -> None:
        self._file = file
        self._hasher = hasher

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._file.read(size)
        self._hasher.update(data)
        return data

    def readline(self, size: int = -1, /) -> bytes:
        data: bytes = self._file.readline(size)
        self._hasher.update(data)
        return data


class InventoryReader:
    """Reads one inventory file once, yielding valid targets and recording problems.

    Construction checks the file itself (exists, regular, format, encoding,
    size) and raises InventoryError if it cannot be read at all. Iterating
    streams the targets; invalid and duplicate rows are not yielded. After a
    complete iteration, `raise_if_problems` says whether the whole file is usable.

    Limits: `max_line_bytes` applies to each physical CSV line and to each
    CSV record as a whole, so an unclosed quote cannot pull the rest of the
    file into one cell. csv.field_size_limit is process-wide and left alone:
    with the default limits no cell can reach it. JSON is read as a stream
    too, twice (checked whole first), one entry at a time, each entry within
    `json_stream`'s limits, the file within `max_json_bytes`. `columns` is
    known after the header (CSV) or after the iteration (JSON); `sha256` after
    the iteration.
    """

    def __init__(
        self,
        path: Path,
        defaults: InventoryDefaults = NO_DEFAULTS,
        *,
        max_rows: int = 2_000_000,
        max_line_bytes: int = 65_536,
        max_json_bytes: int = 256 * 2**20,
    ) -> None:
        self.path = Path(path)
        self.defaults = defaults
        self.max_line_bytes = max_line_bytes
        self.max_json_bytes = max_json_bytes
        self._rows = RowChecker(str(self.path), max_rows=max_rows)
        self._hasher = hashlib.sha256()
        self._digest: str | None = None
        self._started = False
        self.dialect: Dialect | None = None  # CSV only
        self.encoding: TextEncoding
        self.format = self._detect_format()

    # -- public ---------------------------------------------------------------

    @property
    def problems(self) -> list[InputProblem]:
        """The problems found so far (at most MAX_STORED_PROBLEMS of them)."""
        return self._rows.problems

    @property
    def problem_count(self) -> int:
        return self._rows.problem_count

    @property
    def rows(self) -> int:
        """Data rows (or entries) met so far, valid or not."""
        return self._rows.rows

    @property
    def columns(self) -> tuple[str, ...]:
        """The extra columns (or keys) kept for the report, in file order."""
        return self._rows.columns

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's raw bytes; known once iteration has finished."""
        if self._digest is None:
            raise RuntimeError("the inventory's sha256 is known only after a complete iteration")
        return self._digest

    def __iter__(self) -> Iterator[TargetSpec]:
        if self._started:
            raise RuntimeError("an InventoryReader reads its file once; make a new one")
        self._started = True
        return self._read()

    @property
    def defaults_in_effect(self) -> dict[str, Any]:
        """The defaults rows fall back on (command line, overridden by the file's own
        "defaults"), by field; usable once iteration has started. Bad ones are left out."""
        return self._rows.defaults_in_effect

    def raise_if_problems(self) -> None:
        """Raise InventoryError listing the problems, if any were found."""
        if self.problem_count:
            raise InventoryError(list(self.problems), total=self.problem_count)
        if self._digest is None:
            # A partial read must never pass as a clean inventory.
            raise RuntimeError("iterate the whole inventory before asking if it is valid")

    # -- the file ----------------------------------------------------------------

    def _fail(self, message: str, field: str | None = None) -> NoReturn:
        self._rows.fail(message, field=field)

    def _detect_format(self) -> str:
        try:
            info = self.path.stat()
            if stat.S_ISDIR(info.st_mode):
                self._fail("is a directory, not an inventory file")
            if not stat.S_ISREG(info.st_mode):
                self._fail("is not a regular file")
            with self.path.open("rb") as file:
                head = file.read(_SNIFF_BYTES)
        except FileNotFoundError:
            self._fail("file not found")
        except PermissionError:
            self._fail("cannot be read: permission denied")
        except (OSError, ValueError) as err:
            self._fail(f"cannot be read: {getattr(err, 'strerror', None) or err}")
        if not head:
            self._fail("file is empty")
        suffix = self.path.suffix.lower()
        if suffix in _SPREADSHEET_SUFFIXES:
            self._fail(f"{suffix} files cannot be read; export the sheet as CSV")
        for magic, message in _BINARY_MAGIC:
            if head.startswith(magic):
                self._fail(f"file {message}")
        try:
            self.encoding = choose_encoding(head, self.defaults.encoding)
        except EncodingProblem as err:
            self._fail(str(err), field="--encoding" if self.defaults.encoding else None)
        # Only to look at: the real read reports undecodable bytes where they are.
        sample = head[self.encoding.bom :].decode(self.encoding.codec, "replace")
        if len(head) == _SNIFF_BYTES:
            sample = sample[: sample.rfind("\n") + 1] or sample  # no partial last line
        body = sample.lstrip(" \t\r\n\ufeff")
        if not body and info.st_size <= len(head):
            self._fail("file is empty (only whitespace)")
        if suffix in (".csv", ".json"):
            fmt = suffix[1:]
        else:
            fmt = "json" if body[:1] in ("[", "{") else "csv"
        if fmt == "json" and info.st_size > self.max_json_bytes:
            self._fail(too_big_message(info.st_size, self.max_json_bytes))
        if fmt == "csv":
            try:
                self.dialect = detect_dialect(sample)
            except DialectProblem as err:
                self._rows.fail(str(err), line=1)
        return fmt

    def _read(self) -> Iterator[TargetSpec]:
        self._rows.use_cli_defaults(self.defaults)
        try:
            with self.path.open("rb") as file:
                stream: ByteStream = _HashingStream(file, self._hasher)
                stream.read(self.encoding.bom)
                if self.dialect is not None:
                    yield from read_csv(
                        stream,
                        self._rows,
                        encoding=self.encoding,
                        dialect=self.dialect,
                        max_line_bytes=self.max_line_bytes,
                    )
                else:
                    with self.path.open("rb") as first_pass:
                        first_pass.read(self.encoding.bom)
                        yield from read_json(
                            stream,
                            self._rows,
                            encoding=self.encoding,
                            max_json_bytes=self.max_json_bytes,
                            first_pass=first_pass,
                        )
                # After an early stop (the row limit), so sha256 still covers every byte.
                while stream.read(1 << 20):
                    pass
        except OSError as err:
            self._fail(f"cannot be read: {err.strerror or err}")
        if self.rows == 0 and self.problem_count == 0:
            self._rows.problem(None, None, "lists no servers")
        self._digest = self._hasher.hexdigest()


def read_inventory(path: Path | str, defaults: InventoryDefaults = NO_DEFAULTS) -> list[TargetSpec]:
    """All targets of a small inventory, or InventoryError listing every problem."""
    reader = InventoryReader(Path(path), defaults)
    targets = list(reader)
    reader.raise_if_problems()
    return targets
