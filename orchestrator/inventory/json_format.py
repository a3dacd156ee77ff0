"""JSON inventories: a list of servers, or ``{"defaults": ..., "servers": [...]}``.

Owns keys given twice, near-miss keys (the rules of `names`, as for CSV
columns), the file's "defaults", and turning each entry into one row for
`RowChecker.target`. The document is read as a stream (`json_stream`): one
entry in memory at a time, each with its line number, within the limits
there (the length and the nesting of one entry) and `max_json_bytes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from orchestrator.inventory.encoding import ByteStream, TextEncoding
from orchestrator.inventory.json_stream import (
    CHUNK_BYTES,
    MAX_VALUE_CHARS,
    JsonStop,
    JsonText,
    Layout,
    TooBig,
    walk,
)
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
        f"file is {size} bytes; JSON inventories are limited to {limit} bytes;"
        " use CSV for a larger fleet"
    )


def read_json(
    stream: ByteStream,
    rows: RowChecker,
    *,
    encoding: TextEncoding,
    max_json_bytes: int,
    first_pass: ByteStream,
    max_value_chars: int = MAX_VALUE_CHARS,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[TargetSpec]:
    """The valid targets of a JSON inventory; problems go to `rows`.

    Two passes over the file, each holding one entry at a time: `first_pass` (the
    file opened again, positioned as `stream`) checks the whole document and finds
    its "defaults", wherever they are; then `stream` gives the entries. A syntax
    error anywhere is then one problem and no target, as when the file was parsed
    whole. Both streams are positioned after the byte order mark, if any.
    """
    decoder = json.JSONDecoder(object_pairs_hook=_object_pairs)
    layout = Layout()
    checking = JsonText(first_pass, encoding, max_bytes=max_json_bytes, chunk_bytes=chunk_bytes)
    try:
        for _ in walk(checking, decoder, layout, max_value_chars):
            pass
    except TooBig as big:  # it grew since it was checked
        rows.fail(too_big_message(big.size, max_json_bytes))
    except JsonStop as stop:
        if not stop.undecodable:
            # As when the file was decoded whole: a byte that is not text, anywhere,
            # is the problem to name (its JSON may look broken only for that).
            try:
                checking.decode_rest()
            except JsonStop as undecodable:
                stop = undecodable
            except TooBig as big:
                rows.fail(too_big_message(big.size, max_json_bytes))
        rows.problem(stop.line, stop.field, stop.message)
        return
    for line, name, message in layout.problems:
        rows.problem(line, name, message)
    _use_file_defaults(rows, layout.defaults, layout.defaults_line)
    rows.begin_rows()
    columns: dict[str, None] = {}
    reported: set[str] = set()  # near-miss keys, reported at their first entry only
    again = Layout()
    reading = JsonText(stream, encoding, max_bytes=max_json_bytes, chunk_bytes=chunk_bytes)
    try:
        for number, line, entry in walk(reading, decoder, again, max_value_chars):
            if not rows.count_row(line):
                break
            target = _json_entry(rows, number, line, entry, columns, reported)
            if target is not None:
                yield target
        else:
            if (again.defaults, again.problems) != (layout.defaults, layout.problems):
                rows.problem(None, None, "the file changed while it was read; read it again")
    except TooBig as big:
        rows.fail(too_big_message(big.size, max_json_bytes))
    except JsonStop as stop:  # the file changed between the passes
        rows.problem(stop.line, stop.field, stop.message)
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
