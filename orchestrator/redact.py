"""The process's secrets, and blanking them out of any text before it is shown or kept.

    register(*values)   add secrets: the credentials when they are loaded (password,
                        token, SK, security token), and every token IAM issues mid-run
    blank(text)         the text with each registered secret replaced by '***'
    forget_all()        empty the registry (tests: one process runs many campaigns)

One registry for the whole process, so every place that blanks (the errors built
from service answers, the text taken from answers, the log handlers) sees the
same secrets, including a token fetched after those places were set up.

Which occurrences are blanked:

- a secret of `WHOLE_WORD_BELOW` (4) characters or more: every occurrence, as
  written and as JSON escapes it (a log line in JSON, an answer body quoted back);
- a shorter one: only where it stands alone, not next to a letter, digit or `_`.
  Blanking every occurrence of a one- or two-character password would mangle
  every message and, worse, show the secret by where the '***' land ("p***ssword"
  names the letter). A short secret quoted back alone ("password 'ab' rejected")
  is still blanked.

Nothing is refused: a short password is the cloud's business; this module only
keeps it out of what the orchestrator writes.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

MASK = "***"
WHOLE_WORD_BELOW = 4


@dataclass(frozen=True, slots=True)
class _Blanker:
    long_forms: tuple[str, ...]  # longest first: a secret containing another goes whole
    short: re.Pattern[str] | None

    def blank(self, text: str) -> str:
        for form in self.long_forms:
            if form in text:
                text = text.replace(form, MASK)
        if self.short is not None:
            text = self.short.sub(MASK, text)
        return text


_EMPTY = _Blanker((), None)
_lock = threading.Lock()
_secrets: set[str] = set()
_current = _EMPTY


def _forms(secret: str) -> set[str]:
    """The secret as written, and as JSON writes it with and without ASCII escapes."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


def _build(secrets: set[str]) -> _Blanker:
    long_forms: set[str] = set()
    short_forms: set[str] = set()
    for secret in secrets:
        (long_forms if len(secret) >= WHOLE_WORD_BELOW else short_forms).update(_forms(secret))
    short = None
    if short_forms:
        words = "|".join(re.escape(f) for f in sorted(short_forms, key=len, reverse=True))
        short = re.compile(rf"(?<!\w)(?:{words})(?!\w)")
    return _Blanker(tuple(sorted(long_forms, key=len, reverse=True)), short)


def register(*values: str | None) -> None:
    """Add secrets (empty values and None are ignored)."""
    global _current
    new = {v for v in values if v and v not in _secrets}
    if not new:
        return
    with _lock:
        _secrets.update(new)
        # Swapped whole: a reader in another thread (the log flusher) sees the
        # old set or the new one, never half of it.
        _current = _build(_secrets)


def blank(text: str) -> str:
    """`text` with every registered secret replaced by '***'."""
    return _current.blank(text) if text else text


def registered() -> frozenset[str]:
    return frozenset(_secrets)


def any_registered() -> bool:
    return _current is not _EMPTY


def forget_all() -> None:
    global _current
    with _lock:
        _secrets.clear()
        _current = _EMPTY
