"""`visible`: every character a terminal acts on is shown as an escape, the rest kept."""

from __future__ import annotations

import io
import logging
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.console.logs import setup_logging
from orchestrator.console.status_view import (
    DeferredTarget,
    FailureGroup,
    StatusSnapshot,
    TargetRef,
    render_text,
)
from orchestrator.visible import excepthook, visible, visible_lines

TITLE_AND_CLEAR = "\x1b]0;title\x07\x1b[2J"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Ecs.0100", "Ecs.0100"),
        ("plain text, ünïcode, 中文, emoji 🚀", "plain text, ünïcode, 中文, emoji 🚀"),
        (TITLE_AND_CLEAR, "\\x1b]0;title\\x07\\x1b[2J"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("nul\x00 del\x7f", "nul\\x00 del\\x7f"),
        ("c1 csi\x9b31m osc\x9d nel\x85", "c1 csi\\x9b31m osc\\x9d nel\\x85"),
        ("rtl \u202eevil\u202c", "rtl \\u202eevil\\u202c"),
        ("isolates \u2066\u2067\u2068\u2069 marks \u200e\u200f\u061c", None),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("back\\slash \\x1b stays", "back\\slash \\x1b stays"),
    ],
)
def test_controls_are_shown_as_escapes(raw: str, shown: str | None) -> None:
    out = visible(raw)
    if shown is not None:
        assert out == shown
    assert out.isprintable()


def test_visible_lines_keeps_line_breaks_only() -> None:
    assert visible_lines("one\ntwo\x1b[2J\r\n") == "one\ntwo\\x1b[2J\\x0d\n"
    assert visible_lines(42) == "42"


BIDI = {
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}


def acted_on(char: str) -> bool:
    """Whether a terminal or a viewer acts on `char` instead of showing it."""
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI


@given(st.text())
def test_nothing_acted_on_is_left_and_escaping_is_idempotent(text: str) -> None:
    once = visible(text)
    assert not any(acted_on(c) for c in once)
    assert visible(once) == once
    lines = visible_lines(text)
    assert not any(acted_on(c) for c in lines.replace("\n", ""))
    assert lines.count("\n") == text.count("\n")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("orchestrator")
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()


@pytest.mark.usefixtures("restore_logging")
def test_text_log_lines_show_escapes_on_the_console_and_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file, "INFO", secrets=["s3cr\x1bet"])
    log = logging.getLogger("orchestrator.run")
    log.warning("job failed: %s (%s)", TITLE_AND_CLEAR, "s3cr\x1bet")
    log.warning("two\nlines")
    for handler in logging.getLogger("orchestrator").handlers:
        handler.flush()
    err = capsys.readouterr().err
    text = log_file.read_text(encoding="utf-8")
    for out in (err, text):
        assert "\x1b" not in out and "\x07" not in out
        assert "job failed: \\x1b]0;title\\x07\\x1b[2J (***)" in out
        assert "two\\x0alines" in out  # one record, one line
    assert "s3cr" not in err + text


@pytest.mark.usefixtures("restore_logging")
def test_json_log_lines_stay_as_json_escapes_them(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(None, "INFO", fmt="json")
    logging.getLogger("orchestrator.run").warning("code %s", TITLE_AND_CLEAR)
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\u001b]0;title\\u0007" in err  # JSON's own escapes, readable back as the text


def test_an_unexpected_traceback_is_printed_with_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        raise RuntimeError("answer: " + TITLE_AND_CLEAR)
    except RuntimeError as exc:
        excepthook(type(exc), exc, exc.__traceback__)
    out = stderr.getvalue()
    assert "RuntimeError: answer: \\x1b]0;title\\x07\\x1b[2J" in out
    assert "\x1b" not in out and "\n" in out


def test_status_text_shows_the_state_files_service_text_as_escapes() -> None:
    snap = StatusSnapshot(
        run_id="run-1",
        state_path="/x/fleet.sqlite",
        inventory_path=None,
        created_at="2026-11-26T19:00:00Z",
        generated_at="2026-11-26T20:00:00Z",
        total=3,
        counts={"failed": 1, "in_doubt": 1, "pending": 1},
        failures=[FailureGroup(TITLE_AND_CLEAR, 1, (TargetRef("p", "s1", "r\x1b[5m"),))],
        in_doubt=[TargetRef("p", "s2", "lost \x9b2J\nforged line")],
        deferred=[DeferredTarget("p", "s3", "deferred: busy \u202eevil")],
        deferred_count=1,
        invocations=0,
        invocation=None,
        first_started_at=None,
        requests={},
        throttled=0,
    )
    text = render_text(snap)
    assert not any(acted_on(c) for c in text.replace("\n", ""))
    assert "  \\x1b]0;title\\x07\\x1b[2J: 1" in text
    assert "  p/s2: lost \\x9b2J\\x0aforged line" in text
    assert "  p/s3: deferred: busy \\u202eevil" in text
