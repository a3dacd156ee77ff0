"""Choosing a file's encoding, and splitting lines in it: tables."""

from __future__ import annotations

import codecs
import io
import sys

import pytest

from orchestrator.inventory.encoding import (
    EncodingProblem,
    TextEncoding,
    check_encoding,
    choose_encoding,
    line_reader,
)

NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


@pytest.mark.parametrize(
    ("head", "given", "codec", "bom"),
    [
        (b"project_id", None, "utf-8", 0),
        (codecs.BOM_UTF8 + b"project_id", None, "utf-8", 3),
        (codecs.BOM_UTF16_LE + b"p\x00", None, "utf-16-le", 2),
        (codecs.BOM_UTF16_BE + b"\x00p", None, "utf-16-be", 2),
        (codecs.BOM_UTF32_LE + b"p\x00\x00\x00", None, "utf-32-le", 4),
        (codecs.BOM_UTF32_BE + b"\x00\x00\x00p", None, "utf-32-be", 4),
        (b"project_id", "cp1252", "cp1252", 0),
        (b"project_id", "Windows-1252", "cp1252", 0),
        (b"project_id", "latin-1", "iso8859-1", 0),
        (b"project_id", "utf-8-sig", "utf-8", 0),
        (codecs.BOM_UTF8 + b"project_id", "utf-8-sig", "utf-8", 3),
        (codecs.BOM_UTF8 + b"project_id", "utf8", "utf-8", 3),
        (codecs.BOM_UTF16_BE + b"\x00p", "utf-16", "utf-16-be", 2),
        (b"p\x00", "utf-16", NATIVE, 0),
        (b"\x00p", "utf_16_be", "utf-16-be", 0),
    ],
)
def test_choose_encoding(head: bytes, given: str | None, codec: str, bom: int) -> None:
    chosen = choose_encoding(head, given)
    assert (chosen.codec, chosen.bom, chosen.given) == (codec, bom, given)
    assert chosen.newline == "\n".encode(codec)


@pytest.mark.parametrize(
    ("head", "given", "words"),
    [
        (codecs.BOM_UTF8 + b"x", "cp1252", "UTF-8 byte order mark, but --encoding cp1252"),
        (codecs.BOM_UTF16_LE + b"x\x00", "utf-16-be", "UTF-16-LE byte order mark"),
        (b"p\x00r\x00", None, "--encoding utf-16-le"),
        (b"\x00p\x00r", None, "utf-16-be"),
        (b"x", "no-such-codec", "unknown text encoding 'no-such-codec'"),
        (b"x", "rot13", "'rot13' is not a text encoding"),
        (b"x", "hex", "'hex' is not a text encoding"),
    ],
)
def test_choose_encoding_refuses(head: bytes, given: str | None, words: str) -> None:
    with pytest.raises(EncodingProblem, match=words):
        choose_encoding(head, given)


def test_check_encoding_gives_pythons_name() -> None:
    assert check_encoding("CP-1252".replace("-", "")) == "cp1252"
    assert check_encoding("UTF-16") == "utf-16"


def test_decode_problem_messages() -> None:
    auto = TextEncoding("utf-8")
    assert auto.decode_problem(b"\xe9", 5, 40) == (
        "is not valid UTF-8: byte 0xe9 at byte 5 of the line (offset 40 of the file); "
        "a file saved by Excel or another Windows program is often cp1252: "
        "try --encoding cp1252"
    )
    given = TextEncoding("cp1252", given="windows-1252")
    assert given.decode_problem(b"\x81", 1, 0) == (
        "is not valid cp1252 (--encoding windows-1252): byte 0x81 at byte 1 of the line "
        "(offset 0 of the file); is that the file's encoding?"
    )


def lines_of(data: bytes, codec: str, limit: int = 1000) -> list[bytes]:
    readline = line_reader(io.BytesIO(data), choose_encoding(b"", codec))
    out = []
    while line := readline(limit):
        out.append(line)
    return out


def test_utf16_lines_split_only_on_aligned_newlines() -> None:
    text = "a\u0a0a\nb\u0a00\r\n\nc"  # U+0A0A and U+0A00 hold 0x0a bytes off the boundary
    lines = lines_of(text.encode("utf-16-le"), "utf-16-le")
    assert [line.decode("utf-16-le") for line in lines] == ["a\u0a0a\n", "b\u0a00\r\n", "\n", "c"]


def test_utf16_line_limit_cuts_whole_units_and_continues() -> None:
    data = ("x" * 10 + "\n" + "y\n").encode("utf-16-le")
    assert lines_of(data, "utf-16-le", limit=7) == [
        "xxx".encode("utf-16-le"),
        "xxx".encode("utf-16-le"),
        "xxx".encode("utf-16-le"),
        "x\n".encode("utf-16-le"),
        "y\n".encode("utf-16-le"),
    ]


def test_utf32_lines_over_many_chunks() -> None:
    text = "".join(f"line {n}\n" for n in range(5000))
    lines = lines_of(text.encode("utf-32-be"), "utf-32-be")
    assert len(lines) == 5000 and lines[-1].decode("utf-32-be") == "line 4999\n"
