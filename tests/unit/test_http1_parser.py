"""`http1._Parser`: an answer fed in pieces is the same answer as fed whole.

The pool feeds whatever `data_received` got, and TCP splits a message anywhere: in
the status line, between CR and LF, inside a chunk size or a trailer. Hypothesis
builds valid answers (interim answers first or not, random status and headers, a
body framed by Content-Length or chunked in random sizes with extensions and
trailers) and splits them at random points.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.http1 import Answer, _Parser

MAX_BODY = 4096

_NAME = st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True)
# Values as a parser returns them: no surrounding blanks (it strips them), no CR/LF.
_VALUE = st.one_of(st.just(""), st.from_regex(r"[!-~]([ -~]{0,16}[!-~])?", fullmatch=True))
_HEADERS = st.lists(st.tuples(_NAME, _VALUE), max_size=6)
_STATUS = st.integers(200, 599).filter(lambda s: s not in (204, 304))
_EXTENSION = st.sampled_from([b"", b";a=b", b'; name="q"', b";x"])


@dataclass(frozen=True)
class Message:
    raw: bytes
    expected: Answer


@st.composite
def messages(draw: st.DrawFn) -> Message:
    status = draw(_STATUS)
    headers = draw(_HEADERS)
    body = draw(st.binary(max_size=600))
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n"]))
    lines = [f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', 'Whatever', '']))}"]
    lines += [f"{name}:{draw(st.sampled_from(['', ' ', '  ']))}{value}" for name, value in headers]
    if draw(st.booleans()):
        lines.append(f"Content-Length: {len(body)}")
        framed = body
        headers = [*headers, ("content-length", str(len(body)))]
    else:
        lines.append("Transfer-Encoding: chunked")
        headers = [*headers, ("transfer-encoding", "chunked")]
        framed = b""
        rest = body
        while rest:
            size = draw(st.integers(1, len(rest)))
            hex_size = b"%x" % size if draw(st.booleans()) else b"%X" % size
            framed += hex_size + draw(_EXTENSION) + b"\r\n" + rest[:size] + b"\r\n"
            rest = rest[size:]
        trailers = draw(st.lists(st.tuples(_NAME, _VALUE), max_size=3))
        framed += b"0" + draw(_EXTENSION) + b"\r\n"
        framed += b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n"
    raw = interim + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + framed
    expected: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        expected[key] = f"{expected[key]}, {value}" if key in expected else value
    return Message(raw, Answer(status, expected, body))


def _feed(pieces: list[bytes]) -> tuple[list[bool], _Parser]:
    parser = _Parser(MAX_BODY)
    return [parser.feed(piece) for piece in pieces], parser


@settings(max_examples=150, deadline=None)
@given(message=messages(), data=st.data())
def test_answer_split_anywhere_parses_as_whole(message: Message, data: st.DataObject) -> None:
    raw = message.raw
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=min(40, len(raw) - 1))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]

    whole_done, whole = _feed([raw])
    split_done, split = _feed(pieces)

    assert whole_done == [True]
    assert whole.answer() == message.expected
    assert whole.keep_alive
    # Not whole before the last byte, whole at it; and the same answer.
    assert split_done == [False] * (len(pieces) - 1) + [True]
    assert split.answer() == whole.answer()
    assert split.keep_alive


@settings(max_examples=50, deadline=None)
@given(message=messages())
def test_answer_byte_by_byte_parses_as_whole(message: Message) -> None:
    done, parser = _feed([message.raw[i : i + 1] for i in range(len(message.raw))])
    assert done[-1] and not any(done[:-1])
    assert parser.answer() == message.expected
