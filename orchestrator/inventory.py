"""Reading and validating the inventory: which servers to reinstall, and how.

This module owns the inventory file: format detection, CSV read as a stream
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
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import operator
import re
import stat
import unicodedata
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from json.decoder import scanstring  # type: ignore[attr-defined]  # real, but not in typeshed
from pathlib import Path
from typing import Any, BinaryIO, Final, NoReturn

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.model import TargetSpec

__all__ = [
    "MAX_STORED_PROBLEMS",
    "STOP_SERVER",
    "InventoryDefaults",
    "InventoryReader",
    "read_inventory",
]

STOP_SERVER: Final = "withStopServer"
MAX_STORED_PROBLEMS: Final = 1000  # all are counted; storing more helps nobody read them

_KNOWN: Final = ("project_id", "server_id", "region", "keyname", "userid", "mode", "byol")
_REQUIRED: Final = ("project_id", "server_id", "keyname", "userid")
_DEFAULTABLE: Final = ("keyname", "userid", "mode", "byol", "region")
_FLAGS: Final = {"keyname": "--keyname", "userid": "--userid"}
_MAX_NAME_CHARS: Final = 255
_MAX_REGION_CHARS: Final = 32
_SHOW_CHARS: Final = 60  # of a value, before repr; keeps a message line readable
_SNIFF_BYTES: Final = 65_536

_PROJECT_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
_SERVER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
# The region is put into an endpoint hostname: DNS-label characters only.
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Characters that are invisible or reorder text: in a key pair or user name
# they can only be a mistake or a trick.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BYOL_WORDS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

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


# --- field rules ------------------------------------------------------------


class _Bad(ValueError):
    """A value breaks a field's rule; the message says which and shows it."""


def _describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    if not name:
        kind = "a control character" if unicodedata.category(char) == "Cc" else "unnamed"
        name = f"({kind})"
    return f"U+{ord(char):04X} {name}"


def _show(value: str) -> str:
    """The value for a message: repr'd, shortened, with a hint on the first
    non-ASCII character, because look-alikes (Cyrillic 'а', fullwidth '１')
    print the same as the ASCII they imitate."""
    shown = repr(value[:_SHOW_CHARS])
    if len(value) > _SHOW_CHARS:
        shown += f"... ({len(value)} characters)"
    if not value.isascii():
        odd = next(c for c in value if not c.isascii())
        shown += f" (contains {_describe_char(odd)})"
    return shown


def _field_name(name: str) -> str:
    """A column or key name as the `field` of a problem: as it is when it is
    plain, else repr'd and shortened, so a message is always printable."""
    if len(name) <= _SHOW_CHARS and name.isprintable():
        return name
    return repr(name[:_SHOW_CHARS]) + ("..." if len(name) > _SHOW_CHARS else "")


def _check_project_id(value: str) -> str:
    if _PROJECT_ID.fullmatch(value):
        return value
    hint = "; write it in lowercase" if _PROJECT_ID.fullmatch(value.lower()) else ""
    raise _Bad(f"must be 32 lowercase hex characters [0-9a-f], got {_show(value)}{hint}")


def _check_server_id(value: str) -> str:
    if _SERVER_ID.fullmatch(value):
        return value
    hint = "; write it in lowercase" if _SERVER_ID.fullmatch(value.lower()) else ""
    raise _Bad(
        "must be a lowercase UUID like 01234567-89ab-cdef-0123-456789abcdef, "
        f"got {_show(value)}{hint}"
    )


def _check_name(value: str) -> str:
    """keyname and userid: passed to the API as they are, so only sane text."""
    if len(value) > _MAX_NAME_CHARS:
        raise _Bad(f"is {len(value)} characters; at most {_MAX_NAME_CHARS} are allowed")
    bad = _ASCII_CONTROL.search(value)
    if bad is None and not value.isascii():
        bad_char = next(
            (c for c in value if unicodedata.category(c) in _INVISIBLE_CATEGORIES), None
        )
    else:
        bad_char = bad.group() if bad else None
    if bad_char is not None:
        raise _Bad(f"contains the control character {_describe_char(bad_char)}: {_show(value)}")
    return value


def _check_mode(value: str) -> str:
    if value == STOP_SERVER:
        return value
    raise _Bad(f"must be empty or exactly {STOP_SERVER!r}, got {_show(value)}")


def _check_byol(value: str) -> bool:
    try:
        return _BYOL_WORDS[value.lower()]
    except KeyError:
        raise _Bad(f"must be true/false, yes/no or 1/0, got {_show(value)}") from None


def _check_region(value: str) -> str:
    if len(value) <= _MAX_REGION_CHARS and _REGION.fullmatch(value):
        return value
    raise _Bad(
        f"must be a region name like 'eu-de' (lowercase letters, digits and '-', "
        f"at most {_MAX_REGION_CHARS} characters), got {_show(value)}"
    )


_CHECKS: Final[dict[str, Callable[[str], Any]]] = {
    "project_id": _check_project_id,
    "server_id": _check_server_id,
    "region": _check_region,
    "keyname": _check_name,
    "userid": _check_name,
    "mode": _check_mode,
    "byol": _check_byol,
}
_CHECK_LIST: Final = tuple(_CHECKS[key] for key in _KNOWN)
_REQUIRED_INDEXES: Final = tuple(_KNOWN.index(key) for key in _REQUIRED)


def _header_key(name: str) -> str:
    """Column/key names match case-insensitively, but only ASCII is folded:
    str.lower() would turn the Kelvin sign 'K' into 'k'."""
    return name.lower() if name.isascii() else name


class _Unusable:
    """Marks a default that was invalid (and already reported): rows relying
    on it are dropped without a second problem each."""

    def __repr__(self) -> str:
        return "<unusable default>"


_UNUSABLE: Final = _Unusable()


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


# --- CSV line source ----------------------------------------------------------


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


# --- JSON layout --------------------------------------------------------------


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers keys given more than once
    (json.loads would silently keep the last)."""

    duplicate_keys: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        obj.duplicate_keys = tuple(repeated)
    return obj


_WHITESPACE = re.compile(r"[ \t\n\r]*")


@dataclass(slots=True)
class _JsonLayout:
    """Where things are in a JSON inventory. json.loads gives no positions, so
    the outer list (and the outer object) are walked by hand and each value is
    decoded with raw_decode at a known offset: entries get real line numbers."""

    servers: list[tuple[int, Any]] = dataclass_field(default_factory=list)  # (line, decoded entry)
    defaults: Any = None
    defaults_line: int | None = None
    problems: list[tuple[int | None, str | None, str]] = dataclass_field(default_factory=list)


def _json_layout(text: str) -> _JsonLayout:
    """Parse the document; raise json.JSONDecodeError on a syntax error."""
    decoder = json.JSONDecoder(object_pairs_hook=_object_pairs)
    line_at = _LineCounter(text)
    layout = _JsonLayout()
    problems = layout.problems

    def skip(i: int) -> int:
        match = _WHITESPACE.match(text, i)
        return match.end() if match else i

    def expect(i: int, chars: str, what: str) -> str:
        if text[i : i + 1] and text[i] in chars:
            return text[i]
        raise json.JSONDecodeError(f"Expecting {what}", text, i)

    def walk_list(i: int) -> tuple[list[tuple[int, Any]], int]:
        items: list[tuple[int, Any]] = []
        i = skip(i + 1)
        if text[i : i + 1] == "]":
            return items, i + 1
        while True:
            value, end = decoder.raw_decode(text, i)
            items.append((line_at(i), value))
            i = skip(end)
            if expect(i, ",]", "',' delimiter or ']'") == "]":
                return items, i + 1
            i = skip(i + 1)

    i = skip(0)
    if text[i : i + 1] == "[":
        layout.servers, i = walk_list(i)
    elif text[i : i + 1] == "{":
        seen: set[str] = set()
        i = skip(i + 1)
        if text[i : i + 1] != "}":
            while True:
                expect(i, '"', "property name enclosed in double quotes")
                key_line = line_at(i)
                key, i = scanstring(text, i + 1)
                i = skip(i)
                expect(i, ":", "':' delimiter")
                i = skip(i + 1)
                if key in seen:
                    problems.append((key_line, key, "is given twice at the top level"))
                seen.add(key)
                if key == "servers" and text[i : i + 1] == "[":
                    layout.servers, i = walk_list(i)
                else:
                    value_line = line_at(i)
                    value, i = decoder.raw_decode(text, i)
                    if key == "servers":
                        problems.append((value_line, key, "must be a list of server objects"))
                    elif key == "defaults":
                        layout.defaults, layout.defaults_line = value, value_line
                    else:
                        problems.append(
                            (key_line, key, "unknown top-level key; expected 'defaults', 'servers'")
                        )
                i = skip(i)
                if expect(i, ",}", "',' delimiter or '}'") == "}":
                    break
                i = skip(i + 1)
        i += 1
        if "servers" not in seen:
            problems.append((1, "servers", "missing; give the servers as a list under 'servers'"))
    else:
        # Decode anyway, so a syntax error is reported as such.
        _, i = decoder.raw_decode(text, i)
        problems.append(
            (line_at(skip(0)), None, "must be a list of servers, or an object with 'servers'")
        )
    i = skip(i)
    if i != len(text):
        raise json.JSONDecodeError("Extra data", text, i)
    return layout


class _LineCounter:
    """Line number of an offset; offsets are asked in increasing order, so the
    text is scanned once overall."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1

    def __call__(self, pos: int) -> int:
        if pos < self._pos:
            return self._text.count("\n", 0, pos) + 1
        self._line += self._text.count("\n", self._pos, pos)
        self._pos = pos
        return self._line


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _show_json(value: Any) -> str:
    """A JSON value for a message: ASCII-escaped (no control characters or
    unpaired surrogates reach a terminal) and shortened."""
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else "a string"


def _json_extra(value: Any) -> str:
    """An uninterpreted value as text: strings trimmed as in CSV, null as an
    empty cell, anything else as compact JSON."""
    if isinstance(value, str):
        return value.strip()
    return "" if value is None else _json_text(value)


def _json_field(key: str, value: Any) -> str:
    """A JSON value of a known field as the text the field rules take ('' = not given)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if key == "byol":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float) and value in (0, 1):
            return "1" if value else "0"
        raise _Bad(f"must be true or false, got {_show_json(value)}")
    raise _Bad(f"must be a string, got {_json_type(value)}: {_show_json(value)}")


# --- the reader -------------------------------------------------------------


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
        self._default_row: list[Any] = []  # the same in _KNOWN order, set before rows
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
            shown = None if field is None else _field_name(field)
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
                    yield from self._read_csv(file)
                else:
                    yield from self._read_json(file)
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
            flag = _FLAGS.get(key, "--stop-server")
            try:
                if not isinstance(value, str) or not value.strip():
                    raise _Bad(f"must be a non-empty string, got {value!r}")
                self._defaults[key] = _CHECKS[key](value.strip())
            except _Bad as err:
                self._problem(None, flag, str(err))
                self._defaults[key] = _UNUSABLE
        if self.defaults.byol is not None:
            if isinstance(self.defaults.byol, bool):
                self._defaults["byol"] = self.defaults.byol
            else:
                self._problem(None, "--byol", f"must be true or false, got {self.defaults.byol!r}")
                self._defaults["byol"] = _UNUSABLE

    def _use_file_defaults(self, value: Any, line: int | None) -> None:
        """JSON "defaults": they override the CLI's, and rows override them."""
        if value is None:
            return
        if not isinstance(value, dict):
            self._problem(line, "defaults", f"must be an object, got {_json_type(value)}")
            return
        repeated = {_header_key(key.strip()) for key in getattr(value, "duplicate_keys", ())}
        given: set[str] = set()
        for raw_key, raw in value.items():
            key = _header_key(raw_key.strip())
            if key not in _DEFAULTABLE:
                self._problem(
                    line,
                    f"defaults.{raw_key}",
                    f"unknown; the defaults may hold {', '.join(_DEFAULTABLE)}",
                )
                continue
            field = f"defaults.{key}"
            try:
                if key in repeated or key in given:
                    raise _Bad("is given twice (keys match ignoring case)")
                given.add(key)
                text = _json_field(key, raw)
                if _SURROGATE.search(text):
                    raise _Bad("contains an unpaired surrogate escape (\\ud800-\\udfff)")
                if text:
                    self._defaults[key] = _CHECKS[key](text)
            except _Bad as err:
                self._problem(line, field, str(err))
                self._defaults[key] = _UNUSABLE

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

        `values` holds the fields in _KNOWN order ('' = not given). `line`
        goes into the TargetSpec and duplicate messages; `problem_line` is the
        physical line for problems; `label` names the row ("line" or "entry").
        Keys in `broken` were reported already: the row is not yielded, and
        they are not called missing.
        """
        found: list[tuple[str, str]] = []
        # One list in _KNOWN order, starting from the defaults: this runs for
        # every row, so it stays lean. _UNUSABLE marks a value reported
        # already (a bad default, a broken key): the row is dropped quietly.
        out = self._default_row.copy()
        for index, text in enumerate(values):
            if text:
                try:
                    out[index] = _CHECK_LIST[index](text)
                except _Bad as err:
                    found.append((_KNOWN[index], str(err)))
                    out[index] = _UNUSABLE
        for index in _REQUIRED_INDEXES:
            key = _KNOWN[index]
            if out[index] is None and key not in broken:
                hint = f"; give it in the inventory or with {_FLAGS[key]}" if key in _FLAGS else ""
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
        if broken or _UNUSABLE in out:
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
        self._default_row = [self._defaults.get(key) for key in _KNOWN]

    def _count_row(self, line: int | None) -> bool:
        """Count one data row; False (with a problem) once past max_rows."""
        self.rows += 1
        if self.rows > self.max_rows:
            self._problem(
                line, None, f"more than {self.max_rows} servers; the limit is {self.max_rows}"
            )
            return False
        return True

    # -- CSV ---------------------------------------------------------------------

    def _read_csv(self, file: BinaryIO) -> Iterator[TargetSpec]:
        lines = _CsvLines(file, self._hasher, self.max_line_bytes, self._problem)
        # strict: a stray quote or an unclosed one is an error, never a guess.
        reader = csv.reader(lines, strict=True, skipinitialspace=True)
        header = self._csv_header(reader, lines)
        keys = [_header_key(name) for name in header]
        # Each row gets a "" appended, so a known field without a column
        # (index -1) reads as not given; one itemgetter call then gives all
        # known fields in _KNOWN order.
        pick_known = operator.itemgetter(*(keys.index(k) if k in keys else -1 for k in _KNOWN))
        self._settle_defaults()
        extras = [(i, header[i]) for i, k in enumerate(keys) if k not in _KNOWN]
        self.columns = tuple(name for _, name in extras)
        width = len(header)
        while True:
            lines.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except _RecordTooLong:
                self._problem(
                    lines.record_start,
                    None,
                    f"the row starting here runs to line {lines.line_no} and past "
                    f"{self.max_line_bytes} bytes; is a quote not closed?",
                )
                continue
            except csv.Error as err:
                self._problem(lines.record_start, None, _csv_error_message(err))
                continue
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue  # a blank line, or a row of empty cells
            line = lines.record_start or lines.line_no
            if not self._count_row(line):
                lines.drain()
                return
            if lines.tainted:
                continue  # its broken line is reported already
            if len(cells) > width:
                self._problem(line, None, f"the row has {len(cells)} cells; the header has {width}")
                continue
            cells.extend([""] * (width - len(cells) + 1))
            target = self._target(
                pick_known(cells),
                {name: cells[i] for i, name in extras},
                line,
                line,
                "line",
            )
            if target is not None:
                yield target

    def _csv_header(self, reader: Any, lines: _CsvLines) -> list[str]:
        """The first non-blank record; raises InventoryError if it is unusable."""
        known_problems = self.problem_count  # e.g. a bad --keyname: not the header's fault
        while True:
            lines.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                self._fail("has no header row (it is empty or blank)")
            except _RecordTooLong:
                self._fail(
                    f"the header runs past {self.max_line_bytes} bytes; is a quote not closed?",
                    line=lines.record_start,
                )
            except csv.Error as err:
                self._fail(_csv_error_message(err), line=lines.record_start)
            if lines.tainted:
                raise InventoryError(list(self.problems), total=self.problem_count)
            names = [cell.strip() for cell in cells]
            if any(names):
                break
        line = lines.record_start
        first_seen: dict[str, int] = {}
        for column, name in enumerate(names, 1):
            key = _header_key(name)
            if not name:
                self._problem(line, None, f"column {column} of the header has no name")
            elif key in first_seen:
                self._problem(
                    line, name, f"column name repeated (columns {first_seen[key]} and {column})"
                )
            else:
                first_seen[key] = column
        missing = [key for key in ("project_id", "server_id") if key not in first_seen]
        if missing:
            hint = ""
            if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
                hint = "; the file seems separated by ';' or tabs, use commas"
            self._problem(
                line,
                None,
                f"the header must name the columns project_id and server_id; missing: "
                f"{', '.join(missing)}{hint}",
            )
        if self.problem_count > known_problems:
            raise InventoryError(list(self.problems), total=self.problem_count)
        return names

    # -- JSON --------------------------------------------------------------------

    def _read_json(self, file: BinaryIO) -> Iterator[TargetSpec]:
        data = file.read(self.max_json_bytes + 1)
        self._hasher.update(data)
        if len(data) > self.max_json_bytes:  # it grew since it was checked
            self._fail(self._json_too_big(len(data)))
        data = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            self._problem(
                data.count(b"\n", 0, err.start) + 1,
                None,
                f"is not valid UTF-8: byte 0x{data[err.start]:02x}; save the file as UTF-8",
            )
            return
        del data
        try:
            layout = _json_layout(text)
        except json.JSONDecodeError as err:
            self._problem(err.lineno, None, f"invalid JSON: {err.msg} (column {err.colno})")
            return
        except RecursionError:
            self._problem(None, None, "invalid JSON: nested too deeply")
            return
        except ValueError as err:  # e.g. an integer with more digits than Python converts
            self._problem(None, None, f"invalid JSON: {err}")
            return
        for line, name, message in layout.problems:
            self._problem(line, name, message)
        self._use_file_defaults(layout.defaults, layout.defaults_line)
        self._settle_defaults()
        columns: dict[str, None] = {}
        for number, (line, entry) in enumerate(layout.servers, 1):
            if not self._count_row(line):
                break
            target = self._json_entry(number, line, entry, columns)
            if target is not None:
                yield target
        self.columns = tuple(columns)

    def _json_entry(
        self, number: int, line: int, entry: Any, columns: dict[str, None]
    ) -> TargetSpec | None:
        prefix = f"entry {number}: "
        if not isinstance(entry, dict):
            self._problem(line, None, f"{prefix}must be an object, got {_json_type(entry)}")
            return None
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        broken: set[str] = set()
        for dup in getattr(entry, "duplicate_keys", ()):
            self._problem(line, dup, f"{prefix}is given twice")
            broken.add(_header_key(dup.strip()))
        seen: set[str] = set()  # keys match as CSV columns do: trimmed, ignoring ASCII case
        for raw_key, raw in entry.items():
            name = raw_key.strip()
            key = _header_key(name)
            try:
                if not name:
                    raise _Bad("a key is empty")
                if _SURROGATE.search(name):
                    raise _Bad("the key contains an unpaired surrogate escape (\\ud800-\\udfff)")
                if key in seen:
                    raise _Bad("is given twice (keys match ignoring case)")
                seen.add(key)
                if key in _KNOWN:
                    text = values[key] = _json_field(key, raw)
                else:
                    columns.setdefault(name)
                    text = extra[name] = _json_extra(raw)
                if _SURROGATE.search(text):
                    raise _Bad("contains an unpaired surrogate escape (\\ud800-\\udfff)")
            except _Bad as err:
                self._problem(line, name or None, prefix + str(err))
                broken.add(key)
        known = tuple("" if key in broken else values.get(key, "") for key in _KNOWN)
        return self._target(known, extra, number, line, "entry", broken)


def read_inventory(path: Path | str, defaults: InventoryDefaults = NO_DEFAULTS) -> list[TargetSpec]:
    """All targets of a small inventory, or InventoryError listing every problem."""
    reader = InventoryReader(Path(path), defaults)
    targets = list(reader)
    reader.raise_if_problems()
    return targets
