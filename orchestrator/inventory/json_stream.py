"""Reading a JSON inventory as a stream: its top level walked by hand, one value at a time.

Owns the window of decoded text (`JsonText`: read in chunks, decoded as it
comes, text before the current value dropped) and the walk of the document's
top level (`walk`): a list of servers, or an object with "defaults" and
"servers". Each value is decoded by the C decoder (`raw_decode`) where it
starts, so entries get their real line numbers, and only one entry is held at
a time: memory stays flat however many entries the file has.

Limits, each a problem that names the file, the line and the entry:

    an entry (or any top-level value) longer than `max_value_chars` characters
    an entry nested deeper than MAX_DEPTH lists and objects (or too deep to parse)

A syntax error anywhere, an undecodable byte or a value over a limit stops the
walk (`JsonStop`). `walk` is run twice by `json_format.read_json`: once to check
the whole document and find its "defaults" (which may come after the servers),
then again to hand out the entries.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # real, but not in typeshed
from typing import Any, Final

from orchestrator.inventory.encoding import ByteStream, TextEncoding

CHUNK_BYTES: Final = 1 << 16
MAX_VALUE_CHARS: Final = 1 << 20  # one server's fields are a few hundred characters
MAX_DEPTH: Final = 32  # lists and objects in one entry; real ones have one or two
# How close to the end of the window a decoding error may be a value cut by the
# window rather than a broken one: the longest literal (false) or escape (\\uXXXX).
_NEAR_END: Final = 8
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_AFTER_ENTRY = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


class JsonStop(Exception):
    """The document cannot be read on: (line, field, message) of the problem."""

    def __init__(
        self, line: int | None, field: str | None, message: str, *, undecodable: bool = False
    ) -> None:
        super().__init__(message)
        self.line = line
        self.field = field
        self.message = message
        self.undecodable = undecodable  # a byte that is not text, rather than broken JSON


class TooBig(Exception):
    """The file has more bytes than it may."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class JsonText:
    """The decoded text of a document, read forward through a window.

    Positions are absolute (characters from the start of the text, after the
    byte order mark); the window holds the text from the value being read on.
    """

    def __init__(
        self,
        stream: ByteStream,
        encoding: TextEncoding,
        *,
        max_bytes: int,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._stream = stream
        self._encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding.codec)("strict")
        self._max_bytes = max_bytes
        self._chunk = chunk_bytes
        self.text = ""  # the window
        self.base = 0  # absolute position of text[0]
        self.eof = False
        self._bytes = 0  # bytes read so far
        # Line numbers are counted forward from the last position asked (`_cursor`,
        # on `_cursor_line`); the column at the window's start (characters since
        # its line began) is kept for positions in messages.
        self._cursor = 0
        self._cursor_line = 1
        self._base_column = 0
        # For a byte that does not decode: lines decoded so far, and the bytes
        # of the current line before the window's end.
        self._lines = 1
        self._line_bytes = 0

    # -- the window ------------------------------------------------------------------

    @property
    def end(self) -> int:
        return self.base + len(self.text)

    def fill(self, at_least: int = 0) -> bool:
        """Read on until the window holds `at_least` more characters, or the end;
        False once nothing more can come."""
        wanted = self.end + max(at_least, 1)
        grew = False
        while self.end < wanted and not self.eof:
            data = self._stream.read(max(self._chunk, at_least))
            self._bytes += len(data)
            if self._bytes > self._max_bytes:
                raise TooBig(self._bytes)
            try:
                piece = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:
                raise self._undecodable(err, data) from None
            self.eof = not data
            self._count_lines(piece)
            self.text += piece
            grew = grew or bool(piece)
        return grew or not self.eof

    def decode_rest(self) -> None:
        """Decode what is left of the file, keeping none of it: JsonStop for a byte
        that does not decode. (A file that is not text at all is told so first,
        before any syntax error its misread text may show.)"""
        while not self.eof:
            self.release(self.end, now=True)
            self.fill(at_least=self._chunk)

    def release(self, position: int, *, now: bool = False) -> None:
        """Forget the text before `position` (nothing before it is asked again).

        Done once a chunk's worth has been read past, not at every entry: cutting
        the window copies what is left of it."""
        cut = position - self.base
        if cut <= 0 or (cut < self._chunk and not now):
            return
        self.line_at(position)  # the cursor must stay inside the window
        newline = self.text.rfind("\n", 0, cut)
        self._base_column = cut - (newline + 1) if newline >= 0 else self._base_column + cut
        self.text = self.text[cut:]
        self.base = position

    def char(self, position: int) -> str:
        """The character at `position`, or '' at the end of the text."""
        while position >= self.end and self.fill():
            pass
        index = position - self.base
        return self.text[index] if index < len(self.text) else ""

    def skip_whitespace(self, position: int) -> int:
        while True:
            index = position - self.base
            match = _WHITESPACE.match(self.text, index)
            stop = match.end() if match else index
            if stop < len(self.text) or not self.fill():
                return self.base + stop
            position = self.base + stop

    def line_at(self, position: int) -> int:
        cursor = self._cursor
        if position >= cursor:
            self._cursor_line += self.text.count("\n", cursor - self.base, position - self.base)
            self._cursor = position
            return self._cursor_line
        return self._cursor_line - self.text.count("\n", position - self.base, cursor - self.base)

    def column_at(self, position: int) -> int:
        index = position - self.base
        line_start = self.text.rfind("\n", 0, index)
        if line_start < 0:
            return self._base_column + index + 1
        return index - line_start

    # -- values --------------------------------------------------------------------

    def decode(
        self,
        decoder: json.JSONDecoder,
        position: int,
        what: str,
        max_chars: int,
        number: int | None = None,
    ) -> tuple[Any, int]:
        """The JSON value starting at `position` and where it ends; JsonStop when it
        is broken, too long or nested too deep. `what` (and `number`) name the value
        in messages: "entry 17"."""
        while True:
            text = self.text
            index = position - self.base
            try:
                value, end = decoder.raw_decode(text, index)
            except json.JSONDecodeError as err:
                cut = err.pos >= len(text) - _NEAR_END or err.msg.startswith("Unterminated string")
                if cut and not self.eof:
                    self._grow(position, _name(what, number), max_chars)
                    continue
                raise self.syntax_error(err) from None
            except RecursionError:
                message = f"invalid JSON: {_name(what, number)} is nested too deeply"
                raise JsonStop(self.line_at(position), None, message) from None
            except ValueError as err:  # an integer with more digits than Python converts
                message = f"invalid JSON: {_name(what, number)}: {err}"
                raise JsonStop(self.line_at(position), None, message) from None
            # A number that ends near where the window ends may go on past it
            # ("12.5" of "12.5e-3"): read on and decode it again.
            if end > len(text) - _NEAR_END and not self.eof:
                self._grow(position, _name(what, number), max_chars)
                continue
            if end - index > max_chars:
                self._too_long(position, _name(what, number), max_chars)
            if end - index > MAX_DEPTH and _deeper_than(text, index, end, value, MAX_DEPTH):
                raise JsonStop(
                    self.line_at(position),
                    None,
                    f"{_name(what, number)} nests lists and objects deeper than {MAX_DEPTH} levels",
                )
            return value, self.base + end

    def after_entry(self, position: int) -> tuple[str, int]:
        """The ',' or ']' after a list's entry, and where the next one may start:
        one match for the usual case, the slow path near the window's end."""
        match = _AFTER_ENTRY.match(self.text, position - self.base)
        if match is not None and match.end() < len(self.text):
            return match.group(1), self.base + match.end()
        i = self.skip_whitespace(position)
        delimiter = self.char(i)
        if not delimiter or delimiter not in ",]":
            raise self.syntax_at(i, "Expecting ',' delimiter or ']'")
        return delimiter, (self.skip_whitespace(i + 1) if delimiter == "," else i + 1)

    def key(self, position: int, max_chars: int) -> tuple[str, int]:
        """The object key (a JSON string) whose opening quote is at `position`."""
        while True:
            try:
                key, end = scanstring(self.text, position - self.base + 1)
            except json.JSONDecodeError as err:
                if not self.eof and err.msg.startswith(("Unterminated", "Invalid \\u")):
                    self._grow(position, "a key", max_chars)
                    continue
                raise self.syntax_error(err) from None
            return key, self.base + end

    def syntax_error(self, err: json.JSONDecodeError) -> JsonStop:
        position = self.base + err.pos
        line, column = self.line_at(position), self.column_at(position)
        return JsonStop(line, None, f"invalid JSON: {err.msg} (column {column})")

    def syntax_at(self, position: int, message: str) -> JsonStop:
        return self.syntax_error(json.JSONDecodeError(message, self.text, position - self.base))

    def _grow(self, position: int, what: str, max_chars: int) -> None:
        if self.end - position > max_chars:
            self._too_long(position, what, max_chars)
        # Twice what is held: a long value is decoded again O(log n) times, not O(n).
        self.fill(at_least=max(self.end - position, self._chunk))

    def _too_long(self, position: int, what: str, max_chars: int) -> None:
        raise JsonStop(
            self.line_at(position),
            None,
            f"{what} is longer than {max_chars} characters; an entry holds one server's"
            " fields, a few hundred characters",
        )

    # -- positions of undecodable bytes --------------------------------------------

    def _count_lines(self, piece: str) -> None:
        newline = piece.rfind("\n")
        if newline >= 0:
            self._lines += piece.count("\n")
            self._line_bytes = len(piece[newline + 1 :].encode(self._encoding.codec, "replace"))
        else:
            self._line_bytes += len(piece.encode(self._encoding.codec, "replace"))

    def _undecodable(self, err: UnicodeDecodeError, data: bytes) -> JsonStop:
        """The problem for a byte that does not decode: its line, and its byte on the
        line and in the file, as `TextEncoding.decode_problem` words it."""
        # err.object is what the decoder held: bytes left from the last chunk, then data.
        held = bytes(err.object)
        start_of_held = self._bytes - len(data) - (len(held) - len(data))
        valid = held[: err.start].decode(self._encoding.codec, "replace")
        self._count_lines(valid)
        bad = held[err.start : err.start + 1]
        message = self._encoding.decode_problem(
            bad, self._line_bytes + 1, self._encoding.bom + start_of_held + err.start
        )
        return JsonStop(self._lines, None, message, undecodable=True)


def _deeper_than(text: str, start: int, end: int, value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    brackets = text.count("[", start, end) + text.count("{", start, end)
    if brackets <= limit:
        return False  # cannot be deeper than it has brackets: every real entry stops here
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


# -- the walk ------------------------------------------------------------------------


@dataclass(slots=True)
class Layout:
    """What the walk found besides the entries: top-level problems and the defaults."""

    defaults: Any = None
    defaults_line: int | None = None
    problems: list[tuple[int | None, str | None, str]] = field(default_factory=list)


def walk(
    text: JsonText, decoder: json.JSONDecoder, layout: Layout, max_value_chars: int
) -> Iterator[tuple[int, int, Any]]:
    """(entry number, line, decoded entry) of every server, in file order; what else
    the top level holds goes into `layout`. JsonStop when the document is broken."""
    problems = layout.problems
    i = text.skip_whitespace(0)
    first = text.char(i)
    if first == "[":
        i = yield from _walk_list(text, decoder, i, max_value_chars)
    elif first == "{":
        seen: set[str] = set()
        i = text.skip_whitespace(i + 1)
        if text.char(i) != "}":
            while True:
                if text.char(i) != '"':
                    raise text.syntax_at(i, "Expecting property name enclosed in double quotes")
                key_line = text.line_at(i)
                key, i = text.key(i, max_value_chars)
                i = text.skip_whitespace(i)
                if text.char(i) != ":":
                    raise text.syntax_at(i, "Expecting ':' delimiter")
                i = text.skip_whitespace(i + 1)
                if key in seen:
                    problems.append((key_line, key, "is given twice at the top level"))
                seen.add(key)
                if key == "servers" and text.char(i) == "[":
                    i = yield from _walk_list(text, decoder, i, max_value_chars)
                else:
                    value_line = text.line_at(i)
                    what = f"the value of top-level key {json.dumps(key)[:40]}"
                    value, i = text.decode(decoder, i, what, max_value_chars)
                    if key == "servers":
                        problems.append((value_line, key, "must be a list of server objects"))
                    elif key == "defaults":
                        layout.defaults, layout.defaults_line = value, value_line
                    else:
                        problems.append(
                            (key_line, key, "unknown top-level key; expected 'defaults', 'servers'")
                        )
                text.release(i)
                i = text.skip_whitespace(i)
                delimiter = text.char(i)
                if delimiter not in (",", "}") or not delimiter:
                    raise text.syntax_at(i, "Expecting ',' delimiter or '}'")
                if delimiter == "}":
                    break
                i = text.skip_whitespace(i + 1)
        i += 1
        if "servers" not in seen:
            problems.append((1, "servers", "missing; give the servers as a list under 'servers'"))
    else:
        # Decode anyway, so a syntax error is reported as such.
        line = text.line_at(i)
        _, i = text.decode(decoder, i, "the document", max_value_chars)
        problems.append((line, None, "must be a list of servers, or an object with 'servers'"))
    i = text.skip_whitespace(i)
    if text.char(i):
        raise text.syntax_at(i, "Extra data")


def _walk_list(
    text: JsonText, decoder: json.JSONDecoder, start: int, max_value_chars: int
) -> Generator[tuple[int, int, Any], None, int]:
    """The list's entries; returns where the list ends."""
    i = text.skip_whitespace(start + 1)
    number = 0
    if text.char(i) == "]":
        return i + 1
    while True:
        number += 1
        line = text.line_at(i)
        value, end = text.decode(decoder, i, "entry", max_value_chars, number)
        yield number, line, value
        text.release(end)
        delimiter, i = text.after_entry(end)
        if delimiter == "]":
            return i


def _name(what: str, number: int | None) -> str:
    return what if number is None else f"{what} {number}"
