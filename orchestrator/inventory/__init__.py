"""Reading and validating the inventory: which servers to reinstall, and how.

    from orchestrator.inventory import InventoryDefaults, InventoryReader

    reader = InventoryReader(path, InventoryDefaults(keyname="kp"))
    targets = list(reader)
    reader.raise_if_problems()

This package owns the inventory file: format detection, CSV read as a stream
with physical line numbers, JSON (a list, or ``{"defaults": ..., "servers":
...}``), the rules every field must satisfy, duplicate detection, and the
precedence of values (row > JSON file defaults > CLI defaults).

A reinstall wipes a system disk, so nothing here guesses. The IDs end up in
URL paths, so they must be exactly the canonical form; anything else is a
problem. Every problem is recorded with file, line and field and reading goes
on, so one run shows the user everything to fix. The caller commits targets
only when `InventoryReader.raise_if_problems` passes after a full iteration.
File-level failures (missing file, no header, too big, ...) raise
`InventoryError` at once, since no row can be judged.

Modules, one concern each, imported one way (reader -> formats -> rows ->
rules): `rules` (the fields, what each accepts, how a bad value is shown),
`names` (column and key names that are near misses of a field), `rows`
(`RowChecker`: defaults and their precedence, one row's target, duplicates,
the row limit and the problems; the interface every format uses),
`encoding` (BOM detection, `--encoding`, lines in any encoding), `dialect`
(the CSV separator), `csv_format` (CSV as a stream of physical lines, its
limits and header), `json_format` (JSON layout with line numbers, entries,
file defaults), `reader` (`InventoryReader`: the file checks, encoding,
format and dialect choice, and the hash).
"""

from orchestrator.inventory.encoding import EncodingProblem, check_encoding
from orchestrator.inventory.reader import InventoryReader, read_inventory
from orchestrator.inventory.rows import (
    MAX_STORED_PROBLEMS,
    NO_DEFAULTS,
    InventoryDefaults,
    RowChecker,
)
from orchestrator.inventory.rules import STOP_SERVER

__all__ = [
    "MAX_STORED_PROBLEMS",
    "NO_DEFAULTS",
    "STOP_SERVER",
    "EncodingProblem",
    "InventoryDefaults",
    "InventoryReader",
    "RowChecker",
    "check_encoding",
    "read_inventory",
]
