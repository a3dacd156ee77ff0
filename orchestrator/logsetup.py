"""Logging: every state change to a log file, warnings and progress to the console,
and a filter that blanks any secret value that might slip into a message."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path


class RedactSecrets(logging.Filter):
    """Replace secret values in formatted messages with '***' (defence in depth)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            if any(s in message for s in self._secrets):
                for secret in self._secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


class _ConsoleFormatter(logging.Formatter):
    # Progress lines read as plain text; only warnings and errors carry a level.
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname}: {text}"


class _ConsoleFilter(logging.Filter):
    # The console gets warnings, and the periodic progress line.
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == "orchestrator.progress"


def setup_logging(log_file: Path | None, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger("orchestrator")
    root.handlers.clear()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False
    redact = RedactSecrets(secrets)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_ConsoleFormatter("%(message)s"))
    console.addFilter(_ConsoleFilter())
    console.addFilter(redact)
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.close(fd)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(redact)
        root.addHandler(handler)
