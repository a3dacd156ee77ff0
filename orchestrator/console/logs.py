"""Logging: every state change to a log file, warnings and progress to the console, as
text or as JSON lines, with every secret value blanked on the way out.

    log file   every state change (INFO), warnings, the interval summaries;
               at --log-level DEBUG also the debug lines
    console    warnings and errors, the interval summary, and at --log-level DEBUG
               every state change; while the live panel is up, routed above it
               (`ConsoleHandler.redirect`), so the panel never overwrites a warning

JSON lines are made by python-json-logger's JsonFormatter (the standard logging's
records and extras, so the runner's `extra=` fields become JSON fields); the
field names are listed in the manual, docs/reference/logs.md:

    time, level, logger, message, event          on every line
    project_id, server_id, from, to, job_id,     on a state change (event "state_change");
    error_code                                   job_id / error_code null when unknown
    counts, final, total, ...                    on an interval summary (event "progress")

The log file is written through a buffer, not flushed per line: a line reaches
the disk within a second (`BufferedFileHandler`), a warning or worse at once, and
everything at exit or stop. Flushing every state change would cost a system call
per line; the state file, not the log, is what a resume relies on.

Secrets are blanked twice: a filter on the message (as before), and the
formatted line itself, raw and JSON-escaped, since extras reach JSON unfiltered.
Both ask `orchestrator.redact`'s process-wide registry at each line, so a token
IAM issues mid-run is blanked from its first mention on.

Text lines (console and file) show control characters as escapes (`visible`): a
message quotes service answers and inventory values, and an ESC from them must not
reach a terminal (or a `tail -f` of the log). JSON lines escape them by themselves.
The log file is opened without following a symbolic link (`nofollow.open_append`):
it lives beside the state file, maybe in a folder others can write to.

One log file holds one format: a run appends to the file of every earlier run of
its state, and a collector (or a person) reading it expects one kind of line.
`log_format_for` takes the format of the lines already there when --log-format is
not given, and refuses (exit 2) a --log-format that differs from them.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from orchestrator import redact
from orchestrator.errors import UsageError
from orchestrator.nofollow import LinkRefused, open_append
from orchestrator.visible import visible, visible_lines

LOG_FORMATS = ("text", "json")
PROGRESS_LOGGER = "orchestrator.progress"
# Extras the runner puts on a state-change record, and the JSON names they get.
STATE_CHANGE_RENAMES = {"from_state": "from", "to_state": "to"}
STATE_CHANGE_FIELDS = ("project_id", "server_id", "from", "to", "job_id", "error_code")


class RedactSecrets(logging.Filter):
    """Replace secret values in formatted messages with '***' (defence in depth).

    `secrets` are added to the process's registry (`orchestrator.redact`), which
    is what every message is blanked against, including secrets added later."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        redact.register(*secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if redact.any_registered():
            # Kept formatted: the formatter and the next handler's filter then take
            # the message as it is instead of formatting it again.
            record.msg, record.args = redact.blank(record.getMessage()), None
        return True


class Redacting(logging.Formatter):
    """Wraps a formatter and blanks secrets in its output, as written and as JSON escapes them."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._inner = inner
        redact.register(*secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact.blank(self._inner.format(record))


def is_state_change(record: logging.LogRecord) -> bool:
    return hasattr(record, "to_state")


class JsonLines(JsonFormatter):
    """One JSON object per record: time, level, logger, message, event, then the extras."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", **STATE_CHANGE_RENAMES},
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        if "to" in log_data:
            log_data["event"] = "state_change"
            for name in STATE_CHANGE_FIELDS:
                log_data.setdefault(name, None)
        else:
            log_data.setdefault("event", "log")
        log_data.pop("console", None)
        first: dict[str, Any] = {
            k: log_data.pop(k) for k in ("time", "level", "logger", "event") if k in log_data
        }
        return {**first, **log_data}


class _VisibleFormatter(logging.Formatter):
    """A text line whose message is one line, its control characters shown as escapes."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return visible_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return visible_lines(super().formatStack(stack_info))


class _TextFormatter(_VisibleFormatter):
    # Progress lines read as plain text; only warnings and errors carry a level.
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname}: {text}"


class _FileFormatter(_VisibleFormatter):
    """The text log file's format; the time's seconds are formatted once per second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._text},{int(record.msecs):03d}"


class BufferedFileHandler(logging.FileHandler):
    """A log file flushed every `interval` seconds, at once for a warning, and at close.

    The same lines as a FileHandler, in the same order; a background thread
    flushes what a quiet run has buffered, so no line waits longer than `interval`.
    `logging.shutdown` (at exit, also after a stop signal) and `close` flush the rest.
    """

    def __init__(self, filename: Path, interval: float = 1.0, encoding: str = "utf-8") -> None:
        super().__init__(filename, encoding=encoding)
        self._interval = interval
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _open(self) -> io.TextIOWrapper:
        # Never through a symbolic link: the file may sit in a folder others write to.
        fd = open_append(Path(self.baseFilename))
        raw = io.FileIO(fd, "a")
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding=self.encoding, errors=self.errors)

    def _flush_every(self) -> None:
        while not self._closed.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        super().close()


class _ConsoleFilter(logging.Filter):
    """The console gets warnings, the progress lines and, at DEBUG, every state change."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if not getattr(record, "console", True):
            return False  # meant for the log file only (the panel shows the same)
        if record.name == PROGRESS_LOGGER:
            return record.levelno >= self._level
        return self._level <= logging.DEBUG and is_state_change(record)


class _FileFilter(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self._level


class ConsoleHandler(logging.Handler):
    """Writes to stderr, or to a sink while something (the live panel) owns the terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream  # None: sys.stderr as it is when a line is written
        self._sink: Callable[[str], None] | None = None

    def redirect(self, sink: Callable[[str], None] | None) -> None:
        """Send formatted lines to `sink` (None: back to the stream)."""
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            sink = self._sink
            if sink is not None:
                sink(text)
                return
            stream = self._stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


_console: ConsoleHandler | None = None
_format = "text"


def console_handler() -> ConsoleHandler | None:
    """The console handler of the current logging setup, for the panel to route."""
    return _console


def log_format() -> str:
    return _format


# Enough to find the first line of any log this tool writes.
_HEAD = 65536


def existing_format(path: Path) -> str | None:
    """The format of the lines in log file `path` ("json" or "text"); None when it has
    none, or is no regular file (refused, with its reason, when it is opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise UsageError(f"cannot read log file {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, _HEAD)
    finally:
        os.close(fd)
    for line in head.splitlines():
        if line.strip():
            return "json" if line.lstrip().startswith(b"{") else "text"
    return None


def log_format_for(path: Path | None, given: str | None) -> str:
    """--log-format as given, else the log file's own, else text; a given format
    that is not the file's is refused (UsageError, nothing written)."""
    found = existing_format(path) if path is not None else None
    if given is None:
        return found or "text"
    given = given.lower()
    if found is not None and found != given:
        raise UsageError(
            f"--log-format {given}: the log file {path} holds {found} lines from earlier"
            f" runs, and one log file never mixes the two; leave --log-format out to go on"
            f" in {found}, or give another --log-file"
        )
    return given


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def setup_logging(
    log_file: Path | None,
    level: str = "INFO",
    secrets: Iterable[str] = (),
    fmt: str = "text",
) -> ConsoleHandler:
    """(Re)configure the `orchestrator` loggers; returns the console handler."""
    global _console, _format
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    secrets = [s for s in secrets if s]
    wanted = _level(level)
    # No format here shows the caller's file and line, the thread or the process:
    # skip finding them for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger("orchestrator")
    for old in root.handlers:
        old.close()
    root.handlers.clear()
    # State changes are always made (INFO) so the panel's failure list and the log
    # file see them; each handler decides what it shows.
    root.setLevel(min(wanted, logging.INFO))
    root.propagate = False
    redact = RedactSecrets(secrets)

    console = ConsoleHandler()
    console_inner: logging.Formatter = (
        JsonLines() if fmt == "json" else _TextFormatter("%(message)s")
    )
    console.setFormatter(Redacting(console_inner, secrets))
    console.addFilter(_ConsoleFilter(wanted))
    console.addFilter(redact)
    root.addHandler(console)

    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            handler = BufferedFileHandler(log_file)
        except LinkRefused:
            raise UsageError(
                f"log file {log_file} is a symbolic link; refusing to write through it"
                " (someone may have planted it): remove it, or give another --log-file"
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot open log file {log_file}: {exc.strerror}") from None
        file_inner: logging.Formatter = JsonLines() if fmt == "json" else _FileFormatter()
        handler.setFormatter(Redacting(file_inner, secrets))
        handler.addFilter(_FileFilter(wanted))
        handler.addFilter(redact)
        root.addHandler(handler)
    _console, _format = console, fmt
    return console
