"""The inventory's field rules: which fields exist, what each accepts, and how a value is shown.

Every field arrives as text (a CSV cell, or a JSON value made text) and is
checked here, whatever the format. The IDs end up in URL paths and the region
in a hostname, so each must be exactly its canonical form. A value in a
message is shown repr'd, shortened and with a hint on look-alike characters,
since it may be anything the file holds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any, Final

STOP_SERVER: Final = "withStopServer"

KNOWN: Final = (
    "project_id",
    "server_id",
    "region",
    "keyname",
    "userid",
    "mode",
    "byol",
    "cloud_init",
)
_REQUIRED: Final = ("project_id", "server_id", "keyname", "userid")
DEFAULTABLE: Final = ("keyname", "userid", "mode", "byol", "region", "cloud_init")
BOOLEAN: Final = frozenset({"byol", "cloud_init"})  # fields written true/false
FLAGS: Final = {"keyname": "--keyname", "userid": "--userid"}
_MAX_NAME_CHARS: Final = 255
_MAX_REGION_CHARS: Final = 32
SHOW_CHARS: Final = 60  # of a value, before repr; keeps a message line readable

_PROJECT_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
_SERVER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
# The region is put into an endpoint hostname: DNS-label characters only.
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that are invisible or reorder text: in a key pair or user name
# they can only be a mistake or a trick.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BYOL_WORDS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class Bad(ValueError):
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
    shown = repr(value[:SHOW_CHARS])
    if len(value) > SHOW_CHARS:
        shown += f"... ({len(value)} characters)"
    if not value.isascii():
        odd = next(c for c in value if not c.isascii())
        shown += f" (contains {_describe_char(odd)})"
    return shown


def field_name(name: str) -> str:
    """A column or key name as the `field` of a problem: as it is when it is
    plain, else repr'd and shortened, so a message is always printable."""
    if len(name) <= SHOW_CHARS and name.isprintable():
        return name
    return repr(name[:SHOW_CHARS]) + ("..." if len(name) > SHOW_CHARS else "")


def _check_project_id(value: str) -> str:
    if _PROJECT_ID.fullmatch(value):
        return value
    hint = "; write it in lowercase" if _PROJECT_ID.fullmatch(value.lower()) else ""
    raise Bad(f"must be 32 lowercase hex characters [0-9a-f], got {_show(value)}{hint}")


def _check_server_id(value: str) -> str:
    if _SERVER_ID.fullmatch(value):
        return value
    hint = "; write it in lowercase" if _SERVER_ID.fullmatch(value.lower()) else ""
    raise Bad(
        "must be a lowercase UUID like 01234567-89ab-cdef-0123-456789abcdef, "
        f"got {_show(value)}{hint}"
    )


def _check_name(value: str) -> str:
    """keyname and userid: passed to the API as they are, so only sane text."""
    if len(value) > _MAX_NAME_CHARS:
        raise Bad(f"is {len(value)} characters; at most {_MAX_NAME_CHARS} are allowed")
    bad = _ASCII_CONTROL.search(value)
    if bad is None and not value.isascii():
        bad_char = next(
            (c for c in value if unicodedata.category(c) in _INVISIBLE_CATEGORIES), None
        )
    else:
        bad_char = bad.group() if bad else None
    if bad_char is not None:
        raise Bad(f"contains the control character {_describe_char(bad_char)}: {_show(value)}")
    return value


def _check_mode(value: str) -> str:
    if value == STOP_SERVER:
        return value
    raise Bad(f"must be empty or exactly {STOP_SERVER!r}, got {_show(value)}")


def _check_byol(value: str) -> bool:
    try:
        return _BYOL_WORDS[value.lower()]
    except KeyError:
        raise Bad(f"must be true/false, yes/no or 1/0, got {_show(value)}") from None


def _check_region(value: str) -> str:
    if len(value) <= _MAX_REGION_CHARS and _REGION.fullmatch(value):
        return value
    raise Bad(
        f"must be a region name like 'eu-de' (lowercase letters, digits and '-', "
        f"at most {_MAX_REGION_CHARS} characters), got {_show(value)}"
    )


CHECKS: Final[dict[str, Callable[[str], Any]]] = {
    "project_id": _check_project_id,
    "server_id": _check_server_id,
    "region": _check_region,
    "keyname": _check_name,
    "userid": _check_name,
    "mode": _check_mode,
    "byol": _check_byol,
    "cloud_init": _check_byol,  # the same words: true/false, yes/no, 1/0
}
CHECK_LIST: Final = tuple(CHECKS[key] for key in KNOWN)
REQUIRED_INDEXES: Final = tuple(KNOWN.index(key) for key in _REQUIRED)


def header_key(name: str) -> str:
    """Column/key names match case-insensitively, but only ASCII is folded:
    str.lower() would turn the Kelvin sign 'K' into 'k'."""
    return name.lower() if name.isascii() else name


class _Unusable:
    """Marks a default that was invalid (and already reported): rows relying
    on it are dropped without a second problem each."""

    def __repr__(self) -> str:
        return "<unusable default>"


UNUSABLE: Final = _Unusable()
