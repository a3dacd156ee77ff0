"""Log lines: JSON parses line by line with the documented fields; secrets never appear;
the console shows state changes only at DEBUG."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.console.logs import (
    STATE_CHANGE_FIELDS,
    BufferedFileHandler,
    console_handler,
    existing_format,
    log_format_for,
    setup_logging,
)
from orchestrator.errors import UsageError

SECRET = 'tok"en\\with-quote-and-ü-31f0'  # JSON escapes it: the raw form is not enough


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("orchestrator")
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()
    root.setLevel(logging.NOTSET)
    root.propagate = True


def state_change(**extra: Any) -> None:
    fields = {
        "project_id": "a" * 32,
        "server_id": "3a902931-cd44-4e35-b8b6-d8fe442e3d43",
        "from_state": "submitted",
        "to_state": "failed",
        **extra,
    }
    logging.getLogger("orchestrator.run").info(
        "%s/%s %s -> %s: %s",
        fields["project_id"],
        fields["server_id"],
        fields["from_state"],
        fields["to_state"],
        "job 1 FAIL",
        extra=fields,
    )


def flushed() -> None:
    """The log file is buffered (flushed each second): write out what is pending."""
    for handler in logging.getLogger("orchestrator").handlers:
        handler.flush()


def lines(path: Path) -> list[dict[str, Any]]:
    flushed()
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]  # every line must parse


def test_json_state_change_lines_have_the_documented_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file, "INFO", fmt="json")
    state_change()  # as the runner logs today: no job_id / error_code extras
    state_change(job_id="j-1", error_code="Ecs.0202")
    logging.getLogger("orchestrator.progress").info(
        "progress: ...", extra={"event": "progress", "final": 1, "total": 2}
    )
    logging.getLogger("orchestrator.campaign").warning("something odd")

    records = lines(log_file)
    assert len(records) == 4
    for record in records:
        assert {"time", "level", "logger", "event", "message"} <= set(record)
    first, second, progress, warning = records
    assert first["event"] == "state_change"
    assert set(STATE_CHANGE_FIELDS) <= set(first)
    assert (first["from"], first["to"]) == ("submitted", "failed")
    assert (first["job_id"], first["error_code"]) == (None, None)
    assert (second["job_id"], second["error_code"]) == ("j-1", "Ecs.0202")
    assert "from_state" not in first and "to_state" not in first
    assert (progress["event"], progress["final"], progress["total"]) == ("progress", 1, 2)
    assert (warning["event"], warning["level"]) == ("log", "WARNING")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_blanked_in_messages_and_in_extra_fields(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file, "DEBUG", secrets=[SECRET], fmt=fmt)
    logging.getLogger("orchestrator.client").warning("answer echoed %s back", SECRET)
    state_change(error_code=f"X {SECRET}")
    flushed()

    written = log_file.read_text(encoding="utf-8") + capsys.readouterr().err
    assert "***" in written
    for form in (SECRET, json.dumps(SECRET)[1:-1], json.dumps(SECRET, ensure_ascii=False)[1:-1]):
        assert form not in written
    if fmt == "json":
        assert len(lines(log_file)) == 2


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_console_shows_state_changes_only_at_debug(
    level: str, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(None, level, fmt="json")
    state_change()
    logging.getLogger("orchestrator.progress").info("progress: 1/2", extra={"event": "progress"})
    logging.getLogger("orchestrator.progress").info("file only", extra={"console": False})
    logging.getLogger("orchestrator.run").warning("deferred: busy")
    err = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    events = [r["event"] for r in err]
    assert ("state_change" in events) is shown
    assert "progress" in events
    assert all(r["message"] != "file only" for r in err)
    assert any(r["level"] == "WARNING" for r in err)


def test_console_lines_go_to_the_redirect_while_one_is_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(None, "INFO")
    handler = console_handler()
    assert handler is not None
    caught: list[str] = []
    handler.redirect(caught.append)
    logging.getLogger("orchestrator.run").warning("stop requested")
    handler.redirect(None)
    logging.getLogger("orchestrator.run").warning("after")
    assert caught == ["WARNING: stop requested"]
    assert capsys.readouterr().err == "WARNING: after\n"


def test_the_log_file_is_buffered_but_a_warning_and_close_reach_the_disk(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    handler = BufferedFileHandler(log_file, interval=3600.0)  # no timed flush in this test
    log = logging.getLogger("orchestrator.test-buffered")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info("one")
        assert log_file.read_text() == ""  # buffered: no write per line
        log.warning("two")
        assert log_file.read_text() == "one\ntwo\n"  # a warning flushes, with what came before
        log.info("three")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert log_file.read_text() == "one\ntwo\nthree\n"


def test_a_quiet_log_is_flushed_within_the_interval(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    handler = BufferedFileHandler(log_file, interval=0.02)
    record = logging.LogRecord("orchestrator.x", logging.INFO, __file__, 1, "waiting", None, None)
    try:
        handler.handle(record)
        deadline = time.monotonic() + 5.0
        while log_file.read_text() != "waiting\n" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log_file.read_text() == "waiting\n"
    finally:
        handler.close()


def test_text_log_lines_keep_their_format(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file, "INFO")
    logging.getLogger("orchestrator.run").info("a %s", "line")
    flushed()
    line = log_file.read_text().splitlines()[0]
    # 2026-11-30 11:36:16,887 INFO orchestrator.run a line: as logging.Formatter writes it
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO orchestrator\.run a line", line)


def test_the_log_format_is_the_files_own_unless_given_and_never_mixed(tmp_path: Path) -> None:
    new, empty, text, json_log = (tmp_path / n for n in ("new", "empty", "text", "json"))
    empty.write_text("\n\n")
    text.write_text("2026-12-06 09:14:16,557 INFO orchestrator.run x\n")
    json_log.write_text('\n{"time": "2026-12-06T09:14:16Z", "event": "log"}\n')
    link = tmp_path / "link"
    link.symlink_to(json_log)
    assert [existing_format(p) for p in (new, empty, text, json_log, link)] == [
        None, None, "text", "json", None  # a link is refused when the log opens
    ]  # fmt: skip
    assert log_format_for(None, None) == "text"
    assert log_format_for(new, None) == "text" and log_format_for(new, "JSON") == "json"
    assert log_format_for(json_log, None) == "json" and log_format_for(json_log, "json") == "json"
    assert log_format_for(text, None) == "text"
    with pytest.raises(UsageError, match="holds json lines"):
        log_format_for(json_log, "text")
    with pytest.raises(UsageError, match="holds text lines"):
        log_format_for(text, "json")
