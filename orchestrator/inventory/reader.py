"""InventoryReader: one inventory file read once, into valid targets and a list of problems.

Owns what does not depend on the format: checks of the file itself (exists,
regular, not a spreadsheet or archive, size), the choice of CSV or JSON,
hashing, the CLI defaults and their precedence, one row's target with its
required fields, duplicate servers, the row limit, and recording problems.
The formats are read by `csv_format` and `json_format`, which call back
into the reader's underscore hooks (`_problem`, `_fail`, `_target`, ...):
those are private to this package, not to this module.
"""

from __future__ import annotations

import codecs
import hashlib
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.inventory.csv_format import read_csv
from orchestrator.inventory.json_format import read_json
from orchestrator.inventory.rules import (
    CHECK_LIST,
    CHECKS,
    FLAGS,
    KNOWN,
    REQUIRED_INDEXES,
    UNUSABLE,
    Bad,
    field_name,
)
from orchestrator.model import TargetSpec

MAX_STORED_PROBLEMS: Final = 1000  # all are counted; storing more helps nobody read them
_SNIFF_BYTES: Final = 65_536

_BINARY_MAGIC: Final = (
    (codecs.BOM_UTF16_LE, "is UTF-16 text; save it as UTF-8"),
    (codecs.BOM_UTF16_BE, "is UTF-16 text; save it as UTF-8"),
    (b"PK\x03\x04", "is a ZIP archive (a spreadsheet?); export the sheet as CSV (UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "is an Office document; export the sheet as CSV (UTF-8)"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first"),
)
_SPREADSHEET_SUFFIXES: Final = frozenset({".xlsx", ".xlsm", ".xls", ".ods", ".numbers"})


@dataclass(frozen=True, slots=True)
class InventoryDefaults:
    """Values from the command line, used where neither row nor file gives one."""

    keyname: str | None = None  # --keyname
    userid: str | None = None  # --userid
    mode: str | None = None  # --stop-server: None or "withStopServer"
    byol: bool | None = None  # --byol


NO_DEFAULTS: Final = InventoryDefaults()


class _SeenServers:
    """Every server_id met so far, with where and under which project.

    Up to max_rows entries live here for the whole read, so an entry is kept
    small: the UUID as an int, and line and project packed into one int.
    """

    def __init__(self) -> None:
        self._where: dict[int, int] = {}
        self._project_index: dict[str, int] = {}
        self._projects: list[str] = []

    def add(self, project_id: str, server_id: str, line: int) -> tuple[int, str] | None:
        """Remember the server; if it was met before, return (line, project_id) of then."""
        key = int(server_id.replace("-", ""), 16)
        earlier = self._where.get(key)
        if earlier is not None:
            return earlier >> 32, self._projects[earlier & 0xFFFFFFFF]
        index = self._project_index.get(project_id)
        if index is None:
            index = self._project_index[project_id] = len(self._projects)
            self._projects.append(project_id)
        self._where[key] = line << 32 | index
        return None


class InventoryReader:
    """Reads one inventory file once, yielding valid targets and recording problems.

    Construction checks the file itself (exists, regular, format, size) and
    raises InventoryError if it cannot be read at all. Iterating streams the
    targets; invalid and duplicate rows are not yielded. After a complete
    iteration, `raise_if_problems` says whether the whole file is usable.

    Limits: `max_line_bytes` applies to each physical CSV line and to each
    CSV record as a whole, so an unclosed quote cannot pull the rest of the
    file into one cell. csv.field_size_limit is process-wide and left alone:
    with the default limits no cell can reach it. JSON is read whole, hence
    `max_json_bytes`. `columns` is known after the header (CSV) or after
    the iteration (JSON); `sha256` after the iteration.
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
        self.max_rows = max_rows
        self.max_line_bytes = max_line_bytes
        self.max_json_bytes = max_json_bytes
        self.problems: list[InputProblem] = []
        self.problem_count = 0
        self.columns: tuple[str, ...] = ()
        self.rows = 0
        self._file_name = str(self.path)
        self._hasher = hashlib.sha256()
        self._digest: str | None = None
        self._started = False
        self._seen = _SeenServers()
        self._defaults: dict[str, Any] = {}  # CLI, then file defaults, by field
        self._default_row: list[Any] = []  # the same in KNOWN order, set before rows
        self.format = self._detect_format()

    # -- public ---------------------------------------------------------------

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
        return {k: v for k, v in self._defaults.items() if v is not UNUSABLE and v is not None}

    def raise_if_problems(self) -> None:
        """Raise InventoryError listing the problems, if any were found."""
        if self.problem_count:
            raise InventoryError(list(self.problems), total=self.problem_count)
        if self._digest is None:
            # A partial read must never pass as a clean inventory.
            raise RuntimeError("iterate the whole inventory before asking if it is valid")

    # -- problems ----------------------------------------------------------------

    def _problem(self, line: int | None, field: str | None, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_STORED_PROBLEMS:
            # Field names can come from the file (columns, keys): make them printable.
            shown = None if field is None else field_name(field)
            self.problems.append(InputProblem(self._file_name, line, shown, message))

    def _fail(self, message: str, line: int | None = None, field: str | None = None) -> NoReturn:
        """Record a problem that stops the read, and raise with everything found."""
        self._problem(line, field, message)
        raise InventoryError(list(self.problems), total=self.problem_count)

    # -- the file ----------------------------------------------------------------

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
            self._fail(f"{suffix} files cannot be read; export the sheet as CSV (UTF-8)")
        for magic, message in _BINARY_MAGIC:
            if head.startswith(magic):
                self._fail(f"file {message}")
        body = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
        if not body and info.st_size <= len(head):
            self._fail("file is empty (only whitespace)")
        if suffix in (".csv", ".json"):
            fmt = suffix[1:]
        else:
            fmt = "json" if body[:1] in (b"[", b"{") else "csv"
        if fmt == "json" and info.st_size > self.max_json_bytes:
            self._fail(self._json_too_big(info.st_size))
        return fmt

    def _json_too_big(self, size: int) -> str:
        return (
            f"file is {size} bytes; JSON inventories are limited to {self.max_json_bytes} "
            "bytes because they are read whole; use CSV, which is read as a stream"
        )

    def _read(self) -> Iterator[TargetSpec]:
        self._use_cli_defaults()
        try:
            with self.path.open("rb") as file:
                if self.format == "csv":
                    yield from read_csv(self, file)
                else:
                    yield from read_json(self, file)
        except OSError as err:
            self._fail(f"cannot be read: {err.strerror or err}")
        if self.rows == 0 and self.problem_count == 0:
            self._problem(None, None, "lists no servers")
        self._digest = self._hasher.hexdigest()

    # -- defaults ----------------------------------------------------------------

    def _use_cli_defaults(self) -> None:
        given: dict[str, Any] = {
            "keyname": self.defaults.keyname,
            "userid": self.defaults.userid,
            "mode": self.defaults.mode,
        }
        for key, value in given.items():
            if value is None:
                continue
            flag = FLAGS.get(key, "--stop-server")
            try:
                if not isinstance(value, str) or not value.strip():
                    raise Bad(f"must be a non-empty string, got {value!r}")
                self._defaults[key] = CHECKS[key](value.strip())
            except Bad as err:
                self._problem(None, flag, str(err))
                self._defaults[key] = UNUSABLE
        if self.defaults.byol is not None:
            if isinstance(self.defaults.byol, bool):
                self._defaults["byol"] = self.defaults.byol
            else:
                self._problem(None, "--byol", f"must be true or false, got {self.defaults.byol!r}")
                self._defaults["byol"] = UNUSABLE

    # -- one row -----------------------------------------------------------------

    def _target(
        self,
        values: Sequence[str],
        extra: dict[str, str],
        line: int,
        problem_line: int,
        label: str,
        broken: Collection[str] = (),
    ) -> TargetSpec | None:
        """Apply defaults and rules to one row's known fields.

        `values` holds the fields in KNOWN order ('' = not given). `line`
        goes into the TargetSpec and duplicate messages; `problem_line` is the
        physical line for problems; `label` names the row ("line" or "entry").
        Keys in `broken` were reported already: the row is not yielded, and
        they are not called missing.
        """
        found: list[tuple[str, str]] = []
        # One list in KNOWN order, starting from the defaults: this runs for
        # every row, so it stays lean. UNUSABLE marks a value reported
        # already (a bad default, a broken key): the row is dropped quietly.
        out = self._default_row.copy()
        for index, text in enumerate(values):
            if text:
                try:
                    out[index] = CHECK_LIST[index](text)
                except Bad as err:
                    found.append((KNOWN[index], str(err)))
                    out[index] = UNUSABLE
        for index in REQUIRED_INDEXES:
            key = KNOWN[index]
            if out[index] is None and key not in broken:
                hint = f"; give it in the inventory or with {FLAGS[key]}" if key in FLAGS else ""
                found.append((key, f"missing{hint}"))
        project_id, server_id, region, keyname, userid, mode, byol = out
        if isinstance(project_id, str) and isinstance(server_id, str):
            earlier = self._seen.add(project_id, server_id, line)
            if earlier is not None:
                then, then_project = earlier
                if then_project == project_id:
                    message = f"duplicate: {label} {then} has the same project_id and server_id"
                else:
                    message = (
                        f"server {server_id} is already listed in {label} {then} under "
                        f"project {then_project}; a server belongs to one project"
                    )
                found.append(("server_id", message))
        if found:
            prefix = f"entry {line}: " if label == "entry" else ""
            for key, message in found:
                self._problem(problem_line, key, prefix + message)
            return None
        if broken or UNUSABLE in out:
            return None
        return TargetSpec(
            project_id=project_id,
            server_id=server_id,
            keyname=keyname,
            userid=userid,
            line=line,
            region=region,
            mode=mode,
            byol=byol,
            extra=extra,
        )

    def _settle_defaults(self) -> None:
        self._default_row = [self._defaults.get(key) for key in KNOWN]

    def _count_row(self, line: int | None) -> bool:
        """Count one data row; False (with a problem) once past max_rows."""
        self.rows += 1
        if self.rows > self.max_rows:
            self._problem(
                line, None, f"more than {self.max_rows} servers; the limit is {self.max_rows}"
            )
            return False
        return True


def read_inventory(path: Path | str, defaults: InventoryDefaults = NO_DEFAULTS) -> list[TargetSpec]:
    """All targets of a small inventory, or InventoryError listing every problem."""
    reader = InventoryReader(Path(path), defaults)
    targets = list(reader)
    reader.raise_if_problems()
    return targets
