"""User data for the Cloud-Init API: read, checked and base64-encoded before anything is sent.

The reference (`reinstalling_an_ecs_os_using_an_image_with_cloud-init_installed`)
says `metadata.user_data` carries text or a text file, base64-encoded, at most
32 KB before encoding. So a file is refused unless it is a regular file of
1..32768 bytes of UTF-8 text without NUL bytes, and its encoding is checked
against the size that 32 KB gives after base64 too. Everything is decided
here, before the state file or the network is touched: bad input costs zero
requests.

The content is a secret for this program: it can hold passwords or keys. It
lives only in memory (`UserData.encoded`, kept out of `repr`); what is logged,
recorded in the state file and shown in reports is the path, the size and the
sha256 (`UserData.describe`). A resumed run reads the file again and compares
the hash, so a file edited between invocations is noticed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from orchestrator.errors import UsageError

MAX_BYTES: Final = 32 * 1024  # before base64, per the reference
MAX_ENCODED_CHARS: Final = 4 * ((MAX_BYTES + 2) // 3)  # the same limit after base64


@dataclass(frozen=True, slots=True)
class UserData:
    path: str  # as given, resolved to an absolute path
    sha256: str  # of the file's bytes
    size: int  # bytes before encoding
    encoded: str = field(repr=False)  # base64: the value of metadata.user_data

    def describe(self) -> dict[str, object]:
        """What may be recorded and shown: never the content."""
        return {"path": self.path, "sha256": self.sha256, "bytes": self.size}


def load_user_data(path: Path) -> UserData:
    """Read and check one user data file; UsageError (exit 2) naming the file otherwise."""
    where = f"--user-data {path}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it: {exc.strerror}") from None
    # Checked before opening: opening a FIFO or a device could block or never end.
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UsageError(f"{where}: is {kind}; give a text file (a script or cloud-config)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # never more than one byte past the limit
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it: {exc.strerror}") from None
    check_user_data(data, where)
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > MAX_ENCODED_CHARS:  # cannot happen below MAX_BYTES; kept as the rule
        raise UsageError(
            f"{where}: {len(encoded)} characters after base64; at most {MAX_ENCODED_CHARS}"
        )
    return UserData(
        path=str(Path(path).resolve()),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        encoded=encoded,
    )


def check_user_data(data: bytes, where: str) -> None:
    """Raise UsageError unless `data` is what the API accepts as user data.

    Messages give sizes and byte offsets, never the content.
    """
    if len(data) > MAX_BYTES:
        raise UsageError(
            f"{where}: larger than {MAX_BYTES} bytes (32 KB), the limit before base64 encoding"
        )
    if not data:
        raise UsageError(f"{where}: is empty")
    nul = data.find(b"\0")
    if nul >= 0:
        raise UsageError(f"{where}: is binary (a NUL byte at offset {nul}); user data must be text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{where}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start});"
            " user data must be text"
        ) from None
