"""CSV inventories: read as a stream of physical lines, with limits, header first.

Owns the line source fed to csv.reader (physical line numbers across blank
lines and quoted multi-line cells, the per-line and per-record byte limits,
decoding each line in the file's encoding), the header row with its near-miss
column names, and turning each record into one row for `RowChecker.target`.
The separator comes from `dialect`, the encoding from `encoding`.

A cell (header or value) that starts with the quote our CSV files put in front of
a spreadsheet formula (`'=`, `'+`, `'-`, `'@`, a quote before a tab or a carriage
return, and `''`) loses that one quote (`spreadsheet.restore`): so retry.csv reads
back as the inventory it was written from.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterator
from typing import Any

from orchestrator.inventory.dialect import Dialect
from orchestrator.inventory.encoding import ByteStream, TextEncoding, line_reader
from orchestrator.inventory.names import near_misses
from orchestrator.inventory.rows import RowChecker
from orchestrator.inventory.rules import KNOWN, header_key
from orchestrator.model import TargetSpec
from orchestrator.spreadsheet import restore


def read_csv(
    stream: ByteStream,
    rows: RowChecker,
    *,
    encoding: TextEncoding,
    dialect: Dialect,
    max_line_bytes: int,
) -> Iterator[TargetSpec]:
    """The valid targets of a CSV inventory; problems go to `rows`.

    `stream` is positioned after the byte order mark, if any (`encoding.bom` bytes).
    """
    lines = _CsvLines(stream, encoding, max_line_bytes, rows.problem)
    # strict: a stray quote or an unclosed one is an error, never a guess.
    reader = csv.reader(lines, strict=True, skipinitialspace=True, delimiter=dialect.delimiter)
    header = _csv_header(rows, reader, lines, dialect, max_line_bytes)
    keys = [header_key(name) for name in header]
    # Each row gets a "" appended, so a known field without a column
    # (index -1) reads as not given; one itemgetter call then gives all
    # known fields in KNOWN order.
    pick_known = operator.itemgetter(*(keys.index(k) if k in keys else -1 for k in KNOWN))
    rows.begin_rows()
    extras = [(i, header[i]) for i, k in enumerate(keys) if k not in KNOWN]
    rows.columns = tuple(name for _, name in extras)
    width = len(header)
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            break
        except _RecordTooLong:
            rows.problem(
                lines.record_start,
                None,
                f"the row starting here runs to line {lines.line_no} and past "
                f"{max_line_bytes} bytes; is a quote not closed?",
            )
            continue
        except csv.Error as err:
            rows.problem(lines.record_start, None, _csv_error_message(err))
            continue
        cells = [restore(cell.strip()) for cell in cells]
        if not any(cells):
            continue  # a blank line, or a row of empty cells
        line = lines.record_start or lines.line_no
        if not rows.count_row(line):
            return
        if lines.tainted:
            continue  # its broken line is reported already
        if len(cells) > width:
            rows.problem(line, None, f"the row has {len(cells)} cells; the header has {width}")
            continue
        cells.extend([""] * (width - len(cells) + 1))
        target = rows.target(
            pick_known(cells),
            {name: cells[i] for i, name in extras},
            line,
            line,
            "line",
        )
        if target is not None:
            yield target


def _csv_header(
    rows: RowChecker, reader: Any, lines: _CsvLines, dialect: Dialect, max_line_bytes: int
) -> list[str]:
    """The first non-blank record; raises InventoryError if it is unusable."""
    known_problems = rows.problem_count  # e.g. a bad --keyname: not the header's fault
    skip_sep_line = dialect.sep_line
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            rows.fail("has no header row (it is empty or blank)")
        except _RecordTooLong:
            rows.fail(
                f"the header runs past {max_line_bytes} bytes; is a quote not closed?",
                line=lines.record_start,
            )
        except csv.Error as err:
            rows.fail(_csv_error_message(err), line=lines.record_start)
        if lines.tainted:
            rows.stop()
        if skip_sep_line:
            skip_sep_line = False
            continue
        names = [restore(cell.strip()) for cell in cells]
        if any(names):
            break
    line = lines.record_start
    first_seen: dict[str, int] = {}
    for column, name in enumerate(names, 1):
        key = header_key(name)
        if not name:
            rows.problem(line, None, f"column {column} of the header has no name")
        elif key in first_seen:
            rows.problem(
                line, name, f"column name repeated (columns {first_seen[key]} and {column})"
            )
        else:
            first_seen[key] = column
    for name, miss, field_given in near_misses([name for name in names if name]):
        rows.problem(line, name, miss.message("column", field_given))
    missing = [key for key in ("project_id", "server_id") if key not in first_seen]
    if missing:
        rows.problem(
            line,
            None,
            f"the header must name the columns project_id and server_id; missing: "
            f"{', '.join(missing)} (read as {dialect.name}-separated)",
        )
    if rows.problem_count > known_problems:
        rows.stop()
    return names


class _RecordTooLong(Exception):
    """Raised through csv.reader to cut off a record that spans too many bytes."""


class _CsvLines:
    """The file's physical lines as text, fed to csv.reader one at a time.

    csv.reader pulls lines only until a record is complete, so the first line
    pulled after `start_record` is where that record starts: that is how
    line numbers stay physical across blank lines and quoted multi-line cells.
    Each line is measured before it is decoded, so an overlong line is skipped
    in bounded chunks instead of being read into one string. Lines are decoded
    one by one, so a byte that is not valid in the encoding is reported with its
    line and position. A class, not a generator, because it must keep going
    after an exception raised through csv.reader.
    """

    _SKIP_CHUNK = 1 << 16

    def __init__(
        self,
        stream: ByteStream,
        encoding: TextEncoding,
        max_line_bytes: int,
        report: Callable[[int | None, str | None, str], None],
    ) -> None:
        self._readline = line_reader(stream, encoding)
        self._encoding = encoding
        self._codec = encoding.codec
        self._newline = encoding.newline
        self._crlf = encoding.cr + encoding.newline
        self._max = max_line_bytes
        # Room for CRLF; one byte more than that means "too long".
        self._read_limit = max_line_bytes + len(self._crlf)
        self._report = report
        self._offset = encoding.bom  # of the next line in the file
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
        raw = self._readline(self._read_limit)
        if not raw:
            raise StopIteration
        offset = self._offset
        self._offset += len(raw)
        self.line_no += 1
        if self.record_start is None:
            self.record_start = self.line_no
        if len(raw) >= self._read_limit and not raw.endswith(self._newline):
            length = self._skip_rest_of_line(raw)
        else:
            length = len(raw) - self._line_end_bytes(raw)
        if length > self._max:
            self._report(self.line_no, None, f"line is {length} bytes; the limit is {self._max}")
            self.tainted = True
            return "\n"  # keeps csv.reader's record structure; the record is dropped
        self._record_bytes += length
        if self._record_bytes > self._max:
            raise _RecordTooLong(self.line_no)
        try:
            return raw.decode(self._codec)
        except UnicodeDecodeError as err:
            self._report(
                self.line_no,
                None,
                self._encoding.decode_problem(
                    raw[err.start : err.start + 1], err.start + 1, offset + err.start
                ),
            )
            self.tainted = True
            return raw.decode(self._codec, "replace")

    def _line_end_bytes(self, raw: bytes) -> int:
        if raw.endswith(self._crlf):
            return len(self._crlf)
        return len(self._newline) if raw.endswith(self._newline) else 0

    def _skip_rest_of_line(self, head: bytes) -> int:
        """Consume the rest of an overlong line that began with `head`; return
        the line's length without its line ending."""
        length, last = len(head), head
        while chunk := self._readline(self._SKIP_CHUNK):
            self._offset += len(chunk)
            length += len(chunk)
            if chunk.endswith(self._newline):
                crlf = chunk.endswith(self._crlf) or (
                    chunk == self._newline and (last + chunk).endswith(self._crlf)
                )
                return length - (len(self._crlf) if crlf else len(self._newline))
            last = chunk
        return length


def _csv_error_message(err: csv.Error) -> str:
    text = str(err)
    if "new-line character" in text:
        return "malformed CSV: a carriage return (\\r) inside an unquoted cell"
    if text == "unexpected end of data":
        return "malformed CSV: a quoted cell is never closed"
    return f"malformed CSV: {text}"
