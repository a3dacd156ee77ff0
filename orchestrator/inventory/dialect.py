"""CSV dialect: which separator a CSV inventory uses (comma, semicolon or tab).

Spreadsheets export CSV with the separator of the user's locale: a German Excel
writes semicolons. The header decides, since it must name known columns: the
separator under which the first record holds the most known column names (then
the most near misses of them) wins. Only if separators tie there (e.g. a header
of one column) does csv.Sniffer look at the data rows, and if it cannot tell
either, the first of comma, semicolon, tab wins: the same file always reads the
same way. An Excel `sep=;` first line names the separator and is skipped.

Quoting is RFC 4180's, as every spreadsheet writes it: double quotes, doubled
inside a cell. Sniffer's guess of the quote character is not used, because an
apostrophe in a name column (O'Neill) can fool it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Final

from orchestrator.inventory.names import near_miss
from orchestrator.inventory.rules import KNOWN, header_key

DELIMITERS: Final = (",", ";", "\t")
_SEP_LINE = re.compile(r"sep=(.)\r?\n?")


@dataclass(frozen=True, slots=True)
class Dialect:
    delimiter: str
    sep_line: bool = False  # the first line is Excel's "sep=X": skip it

    @property
    def name(self) -> str:
        return {",": "comma", ";": "semicolon", "\t": "tab"}[self.delimiter]


class DialectProblem(ValueError):
    """The file names a separator that cannot be used."""


def detect_dialect(sample: str) -> Dialect:
    """The dialect of a CSV file whose text starts with `sample` (BOM removed)."""
    first_line = sample.partition("\n")[0] + "\n"
    sep = _SEP_LINE.fullmatch(first_line)
    if sep is not None:
        if sep.group(1) not in DELIMITERS:
            raise DialectProblem(
                f"the first line names the separator {sep.group(1)!r}; "
                "use a comma, a semicolon or a tab"
            )
        return Dialect(sep.group(1), sep_line=True)
    scores = {delimiter: _header_score(sample, delimiter) for delimiter in DELIMITERS}
    best = max(scores.values())
    tied = [delimiter for delimiter in DELIMITERS if scores[delimiter] == best]
    if len(tied) > 1:
        # The header could not tell, so the data rows may: they alone go to Sniffer.
        rows = sample.lstrip("\r\n").partition("\n")[2]
        try:
            sniffed = csv.Sniffer().sniff(rows, delimiters="".join(tied)).delimiter
        except csv.Error:
            sniffed = ""
        if sniffed in tied:
            return Dialect(sniffed)
    return Dialect(tied[0])


def _header_score(sample: str, delimiter: str) -> tuple[int, int]:
    """(known column names, near misses) in the first non-blank record."""
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter, skipinitialspace=True)
    try:
        for cells in reader:
            names = [cell.strip() for cell in cells]
            if any(names):
                known = sum(1 for name in names if header_key(name) in KNOWN)
                near = sum(1 for name in names if name and near_miss(name) is not None)
                return known, near
    except csv.Error:
        pass
    return 0, 0
