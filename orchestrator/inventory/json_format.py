"""JSON inventories: a list of servers, or ``{"defaults": ..., "servers": [...]}``.

Owns the layout walk that gives each entry its line number (json.loads gives
no positions), keys given twice, near-miss keys (the rules of `names`, as for
CSV columns), the file's "defaults", and turning each entry into one row for
`RowChecker.target`. JSON is read whole, hence `max_json_bytes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from json.decoder import scanstring  # type: ignore[attr-defined]  # real, but not in typeshed
from typing import Any

from orchestrator.inventory.encoding import ByteStream, TextEncoding
from orchestrator.inventory.names import near_miss, near_misses
from orchestrator.inventory.rows import RowChecker
from orchestrator.inventory.rules import (
    BOOLEAN,
    DEFAULTABLE,
    KNOWN,
    SHOW_CHARS,
    Bad,
    header_key,
)
from orchestrator.model import TargetSpec

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def too_big_message(size: int, limit: int) -> str:
    return (
        f"file is {size} bytes; JSON inventories are limited to {limit} "
        "bytes because they are read whole; use CSV, which is read as a stream"
    )


def read_json(
    stream: ByteStream, rows: RowChecker, *, encoding: TextEncoding, max_json_bytes: int
) -> Iterator[TargetSpec]:
    """The valid targets of a JSON inventory; problems go to `rows`.

    `stream` is positioned after the byte order mark, if any (`encoding.bom` bytes).
    """
    data = stream.read(max_json_bytes + 1)
    if len(data) > max_json_bytes:  # it grew since it was checked
        rows.fail(too_big_message(len(data), max_json_bytes))
    try:
        text = data.decode(encoding.codec)
    except UnicodeDecodeError as err:
        valid = data[: err.start].decode(encoding.codec, "replace")
        line_start = valid.rfind("\n") + 1
        column = len(valid[line_start:].encode(encoding.codec, "replace")) + 1
        rows.problem(
            valid.count("\n") + 1,
            None,
            encoding.decode_problem(
                data[err.start : err.start + 1], column, encoding.bom + err.start
            ),
        )
        return
    del data
    try:
        layout = _json_layout(text)
    except json.JSONDecodeError as err:
        rows.problem(err.lineno, None, f"invalid JSON: {err.msg} (column {err.colno})")
        return
    except RecursionError:
        rows.problem(None, None, "invalid JSON: nested too deeply")
        return
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        rows.problem(None, None, f"invalid JSON: {err}")
        return
    for line, name, message in layout.problems:
        rows.problem(line, name, message)
    _use_file_defaults(rows, layout.defaults, layout.defaults_line)
    rows.begin_rows()
    columns: dict[str, None] = {}
    reported: set[str] = set()  # near-miss keys, reported at their first entry only
    for number, (line, entry) in enumerate(layout.servers, 1):
        if not rows.count_row(line):
            break
        target = _json_entry(rows, number, line, entry, columns, reported)
        if target is not None:
            yield target
    rows.columns = tuple(columns)


def _json_entry(
    rows: RowChecker,
    number: int,
    line: int,
    entry: Any,
    columns: dict[str, None],
    reported: set[str],
) -> TargetSpec | None:
    prefix = f"entry {number}: "
    if not isinstance(entry, dict):
        rows.problem(line, None, f"{prefix}must be an object, got {_json_type(entry)}")
        return None
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    broken: set[str] = set()
    for dup in getattr(entry, "duplicate_keys", ()):
        rows.problem(line, dup, f"{prefix}is given twice")
        broken.add(header_key(dup.strip()))
    # near_miss is cached: the common entry, with no near miss, costs one lookup per key.
    suspect = any(near_miss(key) is not None for key in entry)
    for name, miss, field_given in near_misses(list(entry)) if suspect else ():
        # One problem per key name, not one per entry: the entry is dropped either way.
        broken.add(header_key(name.strip()))
        if name not in reported:
            reported.add(name)
            rows.problem(line, name.strip(), prefix + miss.message("key", field_given))
    seen: set[str] = set()  # keys match as CSV columns do: trimmed, ignoring ASCII case
    for raw_key, raw in entry.items():
        name = raw_key.strip()
        key = header_key(name)
        try:
            if not name:
                raise Bad("a key is empty")
            if _SURROGATE.search(name):
                raise Bad("the key contains an unpaired surrogate escape (\\ud800-\\udfff)")
            if key in seen:
                raise Bad("is given twice (keys match ignoring case)")
            seen.add(key)
            if key in KNOWN:
                text = values[key] = _json_field(key, raw)
            else:
                columns.setdefault(name)
                text = extra[name] = _json_extra(raw)
            if _SURROGATE.search(text):
                raise Bad("contains an unpaired surrogate escape (\\ud800-\\udfff)")
        except Bad as err:
            rows.problem(line, name or None, prefix + str(err))
            broken.add(key)
    known = tuple("" if key in broken else values.get(key, "") for key in KNOWN)
    return rows.target(known, extra, number, line, "entry", broken)


def _use_file_defaults(rows: RowChecker, value: Any, line: int | None) -> None:
    """JSON "defaults": they override the command line's, and rows override them."""
    if value is None:
        return
    if not isinstance(value, dict):
        rows.problem(line, "defaults", f"must be an object, got {_json_type(value)}")
        return
    repeated = {header_key(key.strip()) for key in getattr(value, "duplicate_keys", ())}
    given: set[str] = set()
    for raw_key, raw in value.items():
        key = header_key(raw_key.strip())
        if key not in DEFAULTABLE:
            miss = near_miss(raw_key)
            hint = ""
            if miss is not None and miss.field in DEFAULTABLE:
                given_too = miss.field in {header_key(k.strip()) for k in value}
                hint = "; " + miss.message("key", given_too)
            rows.problem(
                line,
                f"defaults.{raw_key}",
                f"unknown; the defaults may hold {', '.join(DEFAULTABLE)}{hint}",
            )
            continue
        field = f"defaults.{key}"
        try:
            if key in repeated or key in given:
                raise Bad("is given twice (keys match ignoring case)")
            given.add(key)
            text = _json_field(key, raw)
            if _SURROGATE.search(text):
                raise Bad("contains an unpaired surrogate escape (\\ud800-\\udfff)")
            rows.file_default(key, text)
        except Bad as err:
            rows.problem(line, field, str(err))
            rows.mark_default_unusable(key)


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
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + "..."


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
    if key in BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float) and value in (0, 1):
            return "1" if value else "0"
        raise Bad(f"must be true or false, got {_show_json(value)}")
    raise Bad(f"must be a string, got {_json_type(value)}: {_show_json(value)}")
