"""Creating files in folders other people may write to (a shared --report-dir).

Whoever can create a file in such a folder can plant a symbolic link under a name
the tool is about to write (`.write-test-<pid>`, `<state>.log`, a temp file), and
a plain `open(..., "w")` follows it: the link's target, anywhere the operator can
write, is truncated or overwritten. So every file the product creates there is

    created exclusively   O_CREAT | O_EXCL: never an existing file, link or not
    never through a link  O_NOFOLLOW: a link in the last component is an error
    under a name nobody   temp and probe names carry secrets.token_hex, so nobody
    can guess             can plant something there in advance

and gets its permissions set exactly (`fchmod`, whatever the umask). A file that is
opened again (the log, appended to by each invocation) is opened with O_NOFOLLOW:
an existing symbolic link is refused, never followed. Renaming a finished temp file
over its final name (`os.replace`) replaces a planted link itself, never its target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

PRIVATE_FILE: Final = 0o600  # the state file's and the log's permissions
PRIVATE_DIR: Final = 0o700

_NEW: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def parse_mode(text: str) -> int:
    """A file mode given in octal (`0640`, `640`, `0o640`) for files the tool writes and
    rewrites; ValueError saying why not. The owner must be able to read and write; no
    execute bit, and nobody else may write."""
    digits = text.strip().lower().removeprefix("0o")
    if not (1 <= len(digits) <= 5 and all(c in "01234567" for c in digits)):
        raise ValueError(f"{text!r} is not an octal file mode such as 0600 or 0640")
    mode = int(digits, 8)
    if mode > 0o777:
        raise ValueError(f"{text!r}: only permission bits (at most 0777)")
    if mode & 0o600 != 0o600:
        raise ValueError(f"{text!r}: the owner must be able to read and write (0600 at least)")
    if mode & 0o111:
        raise ValueError(f"{text!r}: a report is not a program: no execute bit")
    if mode & 0o002:
        raise ValueError(f"{text!r}: reports writable by anyone could be changed by anyone")
    return mode


def folder_mode(file_mode: int) -> int:
    """The permissions of a folder holding files of `file_mode`: those who may read
    the files may also enter it (0600 -> 0700, 0640 -> 0750)."""
    return file_mode | (file_mode & 0o444) >> 2


class LinkRefused(OSError):
    """A path the tool writes to is a symbolic link: refused, not followed."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link; refusing to follow it", str(path))


def create_new(path: Path, mode: int = PRIVATE_FILE) -> int:
    """Create `path`, which must not exist (not even as a link); an fd open for writing."""
    fd = os.open(path, _NEW, mode)
    try:
        os.fchmod(fd, mode)  # exactly `mode`: the umask only ever removes bits
    except BaseException:
        os.close(fd)
        raise
    return fd


def unique_name(final: Path, tag: str = "tmp") -> Path:
    """A hidden name beside `final` that nobody can guess in advance."""
    return final.with_name(f".{final.name}.{secrets.token_hex(8)}.{tag}")


def create_beside(final: Path, mode: int = PRIVATE_FILE) -> tuple[Path, TextIO]:
    """A new temp file beside `final`, to be renamed over it once complete: (its path,
    the file open for writing UTF-8 text, newline="" as the csv module wants)."""
    temp = unique_name(final)
    fd = create_new(temp, mode)
    try:
        return temp, os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


@contextlib.contextmanager
def replacing(final: Path, mode: int = PRIVATE_FILE) -> Iterator[TextIO]:
    """Write `final` whole or not at all: a temp file beside it (`create_beside`),
    renamed over it when the block ends without an error, removed otherwise."""
    temp, out = create_beside(final, mode)
    try:
        with out:
            yield out
        os.replace(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def probe_writable(directory: Path) -> None:
    """Create and remove a file in `directory`; the OSError if that cannot be done."""
    probe = directory / f".write-test-{secrets.token_hex(8)}"
    os.close(create_new(probe))
    probe.unlink()


def open_append(path: Path, mode: int = PRIVATE_FILE) -> int:
    """Open `path` for appending, creating it with `mode` if it does not exist; an fd.

    Raises LinkRefused if `path` is a symbolic link (whether or not it leads anywhere).
    """
    try:
        fd = os.open(path, _APPEND, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(path) from None
        raise
    return fd


def make_dir(path: Path, mode: int = PRIVATE_DIR, *, link_ok: bool = True) -> bool:
    """Create folder `path` (and missing parents) with `mode`; True if this call made it.

    With `link_ok=False` an existing `path` that is a symbolic link is refused
    (LinkRefused): a folder the tool names itself inside a shared one, which someone
    could have pointed elsewhere.
    """
    if not link_ok and path.is_symlink():
        raise LinkRefused(path)
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode)
    except FileExistsError:
        if not link_ok and path.is_symlink():
            raise LinkRefused(path) from None
        if path.is_dir():
            return False  # made meanwhile by another process
        raise
    # Exactly `mode`, whatever the umask; through a descriptor, so that a link put
    # in the folder's place meanwhile is refused rather than followed.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True
