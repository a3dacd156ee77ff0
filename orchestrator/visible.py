"""Text from outside (service answers, inventories, state files, file names) made safe to
show to a person: every character that a terminal or a text viewer would act on instead
of showing is written as a visible escape.

    C0 controls   U+0000-U+001F   ESC starts terminal sequences (clear the screen, set the
                                  window title, hyperlinks); BEL, BS, CR rewrite a line
    DEL           U+007F
    C1 controls   U+0080-U+009F   CSI (U+009B) and OSC (U+009D) are ESC [ and ESC ] in one
    bidi controls U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: reorder what
                                  follows them on the line ("Trojan Source")
    separators    U+2028, U+2029: a line break to some viewers, none to others

Escapes read as Python writes them: `\\x1b`, `\\u202e`. A backslash is left as it
is, so escaping is idempotent (escaped text has nothing left to escape) and a value
escaped at its source is not escaped again at the output.

`visible` is for one value or one line (a newline is escaped too, so a value cannot
forge a line); `visible_lines` for text whose own line breaks are meant; `echo` prints
through `visible_lines` (what the command line prints with), and `excepthook` shows an
unexpected traceback the same way. JSON output needs none of this: JSON escapes every
control character itself.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Final

import click

_BIDI: Final = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_SEPARATORS: Final = (0x2028, 0x2029)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TABLE: Final[dict[int, str]] = {
    code: _escape(code)
    for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_BIDI, *_SEPARATORS)
}
_LINES_TABLE: Final = {code: text for code, text in _TABLE.items() if code != 0x0A}


def visible(value: object) -> str:
    """`value` as text with every control character (newline too) shown as an escape."""
    text = value if isinstance(value, str) else str(value)
    # Printable text (the common case) holds none of them: the table maps only
    # characters str.isprintable() rejects.
    return text if text.isprintable() else text.translate(_TABLE)


def visible_lines(value: object) -> str:
    """As `visible`, but line breaks (`\\n`) are kept: for text of several lines."""
    text = value if isinstance(value, str) else str(value)
    return text if text.isprintable() else text.translate(_LINES_TABLE)


def echo(message: object = "", err: bool = False) -> None:
    """`click.echo` of `message` with its control characters shown as escapes."""
    click.echo(visible_lines(message), err=err)


def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """`sys.excepthook` that prints the traceback with its control characters escaped:
    an unexpected exception may quote a service answer."""
    text = "".join(traceback.format_exception(kind, exc, tb))
    sys.stderr.write(visible_lines(text))
    sys.stderr.flush()
