"""Text encodings of inventory files: which one a file is read in, and where its lines end.

Without `--encoding`, a byte order mark decides (UTF-8, UTF-16 or UTF-32, either
byte order); without one the file must be UTF-8. Nothing else is guessed: a
cp1252 file and a UTF-8 file differ only in bytes that may sit in one cell of
line 90,000, so a wrong guess would silently change text. `--encoding` takes
any text encoding Python knows. A BOM that contradicts it is a problem, not a
choice between them.

Lines are split on the encoding's own newline bytes, aligned to its code unit,
so a UTF-16 file is read line by line like any other (streaming, with byte
limits and positions in the file's own bytes).
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol


class ByteStream(Protocol):
    """The part of a binary file the formats read from."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class EncodingProblem(ValueError):
    """The file cannot be read in the chosen encoding; the message says why."""


# (BOM, codec, names of --encoding that agree with it). UTF-32 LE first: its
# BOM starts with UTF-16 LE's.
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le", frozenset({"utf-32", "utf-32-le"})),
    (codecs.BOM_UTF32_BE, "utf-32-be", frozenset({"utf-32", "utf-32-be"})),
    (codecs.BOM_UTF8, "utf-8", frozenset({"utf-8", "utf-8-sig"})),
    (codecs.BOM_UTF16_LE, "utf-16-le", frozenset({"utf-16", "utf-16-le"})),
    (codecs.BOM_UTF16_BE, "utf-16-be", frozenset({"utf-16", "utf-16-be"})),
)
# Codecs whose decoder would itself look for a BOM (at every line, since lines
# are decoded one by one): the BOM is handled here instead.
_NATIVE: Final = "le" if sys.byteorder == "little" else "be"
_WITHOUT_BOM: Final = {
    "utf-8-sig": "utf-8",
    "utf-16": f"utf-16-{_NATIVE}",
    "utf-32": f"utf-32-{_NATIVE}",
}


@dataclass(frozen=True, slots=True)
class TextEncoding:
    """How one inventory file is decoded."""

    codec: str  # a Python codec name that needs no BOM, e.g. "utf-8", "cp1252", "utf-16-le"
    bom: int = 0  # bytes of byte order mark at the start of the file, skipped
    given: str | None = None  # the --encoding value, if one was given
    newline: bytes = b"\n"  # "\n" in this encoding; lines end here
    cr: bytes = b"\r"

    @property
    def label(self) -> str:
        """The encoding as messages name it."""
        return self.codec.upper() if self.codec.startswith("utf") else self.codec

    def decode_problem(self, bad: bytes, column: int, offset: int) -> str:
        """A message for the byte `bad` that does not decode, at byte `column`
        (1-based) of its line and `offset` (0-based) of the file."""
        shown = f"byte 0x{bad.hex()}" if bad else "an incomplete character"
        where = f"{shown} at byte {column} of the line (offset {offset} of the file)"
        if self.given is not None:
            return (
                f"is not valid {self.label} (--encoding {self.given}): {where}; "
                "is that the file's encoding?"
            )
        hint = ""
        if self.codec == "utf-8":
            hint = (
                "; a file saved by Excel or another Windows program is often cp1252: "
                "try --encoding cp1252"
            )
        return f"is not valid {self.label}: {where}{hint}"


def check_encoding(name: str) -> str:
    """Python's name for the text encoding `name`; EncodingProblem if it has none."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise EncodingProblem(
            f"unknown text encoding {name!r}; give one Python knows, "
            "e.g. utf-8, cp1252, latin-1, utf-16"
        ) from None
    try:
        "\n".encode(codec)  # codecs.lookup also knows bytes-to-bytes codecs (base64, zip)
    except (LookupError, UnicodeError):
        raise EncodingProblem(
            f"{name!r} is not a text encoding; give one such as utf-8, cp1252, latin-1, utf-16"
        ) from None
    return codec


def choose_encoding(head: bytes, given: str | None = None) -> TextEncoding:
    """The encoding of a file that starts with `head`, with `--encoding` `given` or None."""
    codec = None if given is None else check_encoding(given)
    for bom, bom_codec, agree in _BOMS:
        if head.startswith(bom):
            if codec is not None and codec not in agree:
                raise EncodingProblem(
                    f"the file starts with a {bom_codec.upper()} byte order mark, but "
                    f"--encoding {given} was given; leave --encoding out to read it as "
                    f"{bom_codec.upper()}"
                )
            return _with_lines(bom_codec, len(bom), given)
    if codec is None:
        if len(head) >= 2 and (head[0] == 0) != (head[1] == 0):
            raise EncodingProblem(
                "the file looks like UTF-16 or UTF-32 without a byte order mark "
                "(NUL bytes between the first letters); give --encoding utf-16-le "
                "or utf-16-be (utf-32-le, utf-32-be)"
            )
        return TextEncoding("utf-8")
    return _with_lines(_WITHOUT_BOM.get(codec, codec), 0, given)


def _with_lines(codec: str, bom: int, given: str | None) -> TextEncoding:
    try:
        newline, cr = "\n".encode(codec), "\r".encode(codec)
        usable = len(newline) == len(cr) in (1, 2, 4) and "\n\n".encode(codec) == newline * 2
    except (LookupError, UnicodeError):
        usable = False
    if not usable:
        raise EncodingProblem(f"--encoding {given}: its line ends cannot be found")
    return TextEncoding(codec, bom, given, newline, cr)


def line_reader(stream: ByteStream, encoding: TextEncoding) -> Callable[[int], bytes]:
    """`readline(limit)` for the file's encoding: up to and including the next
    newline, or `limit` bytes, or what is left; b"" at the end."""
    if len(encoding.newline) == 1:
        return stream.readline  # ASCII-compatible: b"\n" is never inside a character
    return _WideLines(stream, encoding.newline).readline


class _WideLines:
    """Lines of a UTF-16 or UTF-32 stream: the newline must start on a code unit
    boundary, so b"\\n\\x00" inside U+0A0A or across two units is not one."""

    _CHUNK = 1 << 16

    def __init__(self, stream: ByteStream, newline: bytes) -> None:
        self._stream = stream
        self._newline = newline
        self._unit = len(newline)
        self._buffer = b""
        self._pos = 0  # every cut is a whole number of units, so alignment is pos-relative

    def readline(self, limit: int) -> bytes:
        limit = max(limit - limit % self._unit, self._unit)
        while True:
            buffer, pos = self._buffer, self._pos
            end = min(len(buffer), pos + limit)
            found = buffer.find(self._newline, pos, end)
            while found != -1 and (found - pos) % self._unit:
                found = buffer.find(self._newline, found + 1, end)
            if found != -1:
                return self._cut(found + self._unit)
            if end - pos >= limit:
                return self._cut(end)
            chunk = self._stream.read(self._CHUNK)
            if not chunk:
                return self._cut(len(buffer))
            self._buffer = buffer[pos:] + chunk
            self._pos = 0

    def _cut(self, end: int) -> bytes:
        line = self._buffer[self._pos : end]
        self._pos = end
        return line
