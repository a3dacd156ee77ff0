"""CSV inventories: read as a stream of physical lines, with limits, header first.

Owns the line source fed to csv.reader (physical line numbers across blank
lines and quoted multi-line cells, the per-line and per-record byte limits,
UTF-8 decoding, hashing every byte), the header row, and turning each record
into one row for `InventoryReader._target`.
"""

from __future__ import annotations

import codecs
import csv
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator.errors import InventoryError
from orchestrator.inventory.rules import KNOWN, header_key
from orchestrator.model import TargetSpec

if TYPE_CHECKING:
    from orchestrator.inventory.reader import InventoryReader


def read_csv(inventory: InventoryReader, file: BinaryIO) -> Iterator[TargetSpec]:
    """The valid targets of a CSV inventory; problems go to `inventory`."""
    lines = _CsvLines(file, inventory._hasher, inventory.max_line_bytes, inventory._problem)
    # strict: a stray quote or an unclosed one is an error, never a guess.
    reader = csv.reader(lines, strict=True, skipinitialspace=True)
    header = _csv_header(inventory, reader, lines)
    keys = [header_key(name) for name in header]
    # Each row gets a "" appended, so a known field without a column
    # (index -1) reads as not given; one itemgetter call then gives all
    # known fields in KNOWN order.
    pick_known = operator.itemgetter(*(keys.index(k) if k in keys else -1 for k in KNOWN))
    inventory._settle_defaults()
    extras = [(i, header[i]) for i, k in enumerate(keys) if k not in KNOWN]
    inventory.columns = tuple(name for _, name in extras)
    width = len(header)
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            break
        except _RecordTooLong:
            inventory._problem(
                lines.record_start,
                None,
                f"the row starting here runs to line {lines.line_no} and past "
                f"{inventory.max_line_bytes} bytes; is a quote not closed?",
            )
            continue
        except csv.Error as err:
            inventory._problem(lines.record_start, None, _csv_error_message(err))
            continue
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue  # a blank line, or a row of empty cells
        line = lines.record_start or lines.line_no
        if not inventory._count_row(line):
            lines.drain()
            return
        if lines.tainted:
            continue  # its broken line is reported already
        if len(cells) > width:
            inventory._problem(
                line, None, f"the row has {len(cells)} cells; the header has {width}"
            )
            continue
        cells.extend([""] * (width - len(cells) + 1))
        target = inventory._target(
            pick_known(cells),
            {name: cells[i] for i, name in extras},
            line,
            line,
            "line",
        )
        if target is not None:
            yield target


def _csv_header(inventory: InventoryReader, reader: Any, lines: _CsvLines) -> list[str]:
    """The first non-blank record; raises InventoryError if it is unusable."""
    known_problems = inventory.problem_count  # e.g. a bad --keyname: not the header's fault
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            inventory._fail("has no header row (it is empty or blank)")
        except _RecordTooLong:
            inventory._fail(
                f"the header runs past {inventory.max_line_bytes} bytes; is a quote not closed?",
                line=lines.record_start,
            )
        except csv.Error as err:
            inventory._fail(_csv_error_message(err), line=lines.record_start)
        if lines.tainted:
            raise InventoryError(list(inventory.problems), total=inventory.problem_count)
        names = [cell.strip() for cell in cells]
        if any(names):
            break
    line = lines.record_start
    first_seen: dict[str, int] = {}
    for column, name in enumerate(names, 1):
        key = header_key(name)
        if not name:
            inventory._problem(line, None, f"column {column} of the header has no name")
        elif key in first_seen:
            inventory._problem(
                line, name, f"column name repeated (columns {first_seen[key]} and {column})"
            )
        else:
            first_seen[key] = column
    missing = [key for key in ("project_id", "server_id") if key not in first_seen]
    if missing:
        hint = ""
        if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
            hint = "; the file seems separated by ';' or tabs, use commas"
        inventory._problem(
            line,
            None,
            f"the header must name the columns project_id and server_id; missing: "
            f"{', '.join(missing)}{hint}",
        )
    if inventory.problem_count > known_problems:
        raise InventoryError(list(inventory.problems), total=inventory.problem_count)
    return names


class _RecordTooLong(Exception):
    """Raised through csv.reader to cut off a record that spans too many bytes."""


class _CsvLines:
    """The file's physical lines as text, fed to csv.reader one at a time.

    csv.reader pulls lines only until a record is complete, so the first line
    pulled after `start_record` is where that record starts: that is how
    line numbers stay physical across blank lines and quoted multi-line cells.
    Each line is measured before it is decoded, so an overlong line is skipped
    in bounded chunks instead of being read into one string. A class, not a
    generator, because it must keep going after an exception raised through
    csv.reader.
    """

    _SKIP_CHUNK = 1 << 16

    def __init__(
        self,
        file: BinaryIO,
        hasher: Any,
        max_line_bytes: int,
        report: Callable[[int | None, str | None, str], None],
    ) -> None:
        self._file = file
        self._hasher = hasher
        self._max = max_line_bytes
        self._report = report
        self.line_no = 0
        self.record_start: int | None = None
        self._record_bytes = 0
        self.tainted = False  # the record holds a line already reported as broken

    def start_record(self) -> None:
        self.record_start = None
        self._record_bytes = 0
        self.tainted = False

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        # +2 leaves room for CRLF; one byte more than that means "too long".
        raw = self._file.readline(self._max + 2)
        if not raw:
            raise StopIteration
        self._hasher.update(raw)
        self.line_no += 1
        if self.record_start is None:
            self.record_start = self.line_no
        cut_short = len(raw) >= self._max + 2 and not raw.endswith(b"\n")
        if self.line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        length = self._skip_rest_of_line(raw) if cut_short else len(raw) - _newline_bytes(raw)
        if length > self._max:
            self._report(self.line_no, None, f"line is {length} bytes; the limit is {self._max}")
            self.tainted = True
            return "\n"  # keeps csv.reader's record structure; the record is dropped
        self._record_bytes += length
        if self._record_bytes > self._max:
            raise _RecordTooLong(self.line_no)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            self._report(
                self.line_no,
                None,
                f"is not valid UTF-8: byte 0x{raw[err.start]:02x} at byte {err.start + 1} "
                "of the line; save the file as UTF-8",
            )
            self.tainted = True
            return raw.decode("utf-8", "replace")

    def _skip_rest_of_line(self, head: bytes) -> int:
        """Consume (and hash) the rest of an overlong line that began with
        `head`; return the line's length without its line ending."""
        length, last = len(head), head
        while chunk := self._file.readline(self._SKIP_CHUNK):
            self._hasher.update(chunk)
            length += len(chunk)
            if chunk.endswith(b"\n"):
                crlf = chunk.endswith(b"\r\n") or (chunk == b"\n" and last.endswith(b"\r"))
                return length - (2 if crlf else 1)
            last = chunk
        return length

    def drain(self) -> None:
        """Hash the rest of the file, so sha256 covers it all after an early stop."""
        while chunk := self._file.read(1 << 20):
            self._hasher.update(chunk)


def _newline_bytes(raw: bytes) -> int:
    return 2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0


def _csv_error_message(err: csv.Error) -> str:
    text = str(err)
    if "new-line character" in text:
        return "malformed CSV: a carriage return (\\r) inside an unquoted cell"
    if text == "unexpected end of data":
        return "malformed CSV: a quoted cell is never closed"
    return f"malformed CSV: {text}"
