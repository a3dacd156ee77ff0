"""CSV cells a spreadsheet would run as a formula (OWASP "CSV injection"), and the way
back for the inventory reader.

Every CSV the product writes (targets.csv, retry.csv, preflight.csv) holds text from
the service (fail reasons, server states) and from inventories (key pair names,
extra columns). A spreadsheet evaluates a cell that starts with `=`, `+`, `-` or `@`
(and, in some, after a leading tab or carriage return): `=HYPERLINK(...)` becomes a
link, `+cmd|...` a command. `neutralise` puts one `'` in front of such a cell, which
spreadsheets take as "this is text" and do not show.

retry.csv must also read back as the same inventory, so the reader takes that quote
away again (`restore`). To make that exact, a cell that starts with `'` is written
with one more `'` in front as well; `restore` removes one leading `'` only where it is
followed by a formula character or another `'`, which is exactly what `neutralise`
adds. An inventory written by hand is read the same way: a cell written `'=x`
is read as `=x`, and `''x` as `'x`.

`CsvWriter` is the csv module's writer with one fix: Python quotes a cell holding a
line feed but not one holding a bare carriage return (with "\n" line endings), and a
reader then takes that CR for the end of the row. A row with one is written with
every cell quoted: the same cells, read back whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Final, TextIO

QUOTE: Final = "'"
# A spreadsheet reads a cell starting with one of these as a formula.
FORMULA_PREFIXES: Final[tuple[str, ...]] = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED: Final = (*FORMULA_PREFIXES, QUOTE)


def neutralise(cell: str) -> str:
    """`cell` with a leading `'` if a spreadsheet would evaluate it (or if it starts
    with `'` itself, so that `restore` gives it back unchanged)."""
    return QUOTE + cell if cell.startswith(_NEUTRALISED) else cell


def restore(cell: str) -> str:
    """The cell `neutralise` was given: one leading `'` removed where it added one."""
    if cell.startswith(QUOTE) and cell[1:].startswith(_NEUTRALISED):
        return cell[1:]
    return cell


class CsvWriter:
    """`csv.writer(out, lineterminator="\\n")`, except that a row holding a carriage
    return is written with every cell quoted, so that it reads back as one row."""

    def __init__(self, out: TextIO) -> None:
        self._plain = csv.writer(out, lineterminator="\n")
        self._quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, cells: Iterable[object]) -> None:
        row = list(cells)
        if any(isinstance(cell, str) and "\r" in cell for cell in row):
            self._quoted.writerow(row)
        else:
            self._plain.writerow(row)
