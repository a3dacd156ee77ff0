"""User data files: what is refused before anything is sent, and what is kept of them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from orchestrator.cloud.userdata import MAX_BYTES, MAX_ENCODED_CHARS, load_user_data
from orchestrator.errors import UsageError

SCRIPT = b"#!/bin/bash\necho user_test > /home/user.txt\n"


def write(tmp_path: Path, data: bytes, name: str = "user-data.sh") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_script_is_base64_encoded_and_described_without_its_content(tmp_path: Path) -> None:
    loaded = load_user_data(write(tmp_path, SCRIPT))

    assert base64.b64decode(loaded.encoded) == SCRIPT
    # The reference's own example of the encoding, for the same script without the newline.
    example = load_user_data(write(tmp_path, SCRIPT.rstrip(b"\n"), "example.sh"))
    assert example.encoded == "IyEvYmluL2Jhc2gKZWNobyB1c2VyX3Rlc3QgPiAvaG9tZS91c2VyLnR4dA=="
    assert loaded.size == len(SCRIPT)
    assert loaded.describe() == {
        "path": str((tmp_path / "user-data.sh").resolve()),
        "sha256": loaded.sha256,
        "bytes": len(SCRIPT),
    }
    assert loaded.encoded not in repr(loaded) and "user_test" not in repr(loaded)


def test_exactly_32_kb_is_accepted_and_fits_the_limit_after_encoding(tmp_path: Path) -> None:
    loaded = load_user_data(write(tmp_path, b"#" * MAX_BYTES))

    assert loaded.size == MAX_BYTES == 32768
    assert len(loaded.encoded) == MAX_ENCODED_CHARS == 43692


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"#" * (MAX_BYTES + 1), "larger than 32768 bytes (32 KB), the limit before base64"),
        (b"#" * (10 * MAX_BYTES), "larger than 32768 bytes"),
        (b"", "is empty"),
        (b"#!/bin/sh\n\x00\x01\x02", "is binary (a NUL byte at offset 10)"),
        (b"\x7fELF\x02\x01\x01\x00\x00" + bytes(range(128, 256)), "is binary"),
        (b"echo M\xfcller\n", "is not UTF-8 text (byte 0xfc at offset 6)"),
    ],
)
def test_refused_contents_name_the_file_and_never_show_the_content(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write(tmp_path, data)

    with pytest.raises(UsageError) as caught:
        load_user_data(path)

    text = str(caught.value)
    assert text.startswith(f"--user-data {path}: ") and message in text
    assert "M\xfcller" not in text and "ELF" not in text


def test_not_a_file_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block: it must not be opened

    with pytest.raises(UsageError, match="is not a regular file"):
        load_user_data(fifo)
    with pytest.raises(UsageError, match="is a directory"):
        load_user_data(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        load_user_data(tmp_path / "missing.sh")
