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

Modules, one concern each: `rules` (the fields, what each accepts, how a bad
value is shown), `csv_format` (CSV as a stream of physical lines, its limits
and header), `json_format` (JSON layout with line numbers, entries, file
defaults), `reader` (`InventoryReader`: the file checks, format choice,
defaults, one row's target, duplicates, problems and hash).
"""

from orchestrator.inventory.reader import (
    MAX_STORED_PROBLEMS,
    NO_DEFAULTS,
    InventoryDefaults,
    InventoryReader,
    read_inventory,
)
from orchestrator.inventory.rules import STOP_SERVER

__all__ = [
    "MAX_STORED_PROBLEMS",
    "NO_DEFAULTS",
    "STOP_SERVER",
    "InventoryDefaults",
    "InventoryReader",
    "read_inventory",
]
