"""The three timestamp formats the ECS API uses, from epoch seconds (UTC).

Every answer carries a few of them, mostly of the current second or of a job's
end a moment ago, so the whole-second part (`2016-04-25T20:04:47`) is formatted
once per second and kept in a small table; only the fraction is formatted per call.
"""

from __future__ import annotations

from datetime import UTC, datetime

_SECONDS_KEPT = 4096  # distinct seconds remembered before the table starts afresh
_seconds: dict[int, str] = {}


def _utc_seconds(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a whole epoch second, from the table when seen before."""
    text = _seconds.get(second)
    if text is None:
        if len(_seconds) >= _SECONDS_KEPT:
            _seconds.clear()
        text = _seconds[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text


def job_time(t: float) -> str:
    """Job `begin_time` / `end_time`: `2016-04-25T20:04:47.591Z`."""
    millis = round(t * 1000)
    return f"{_utc_seconds(millis // 1000)}.{millis % 1000:03d}Z"


def launched_at(t: float) -> str:
    """`OS-SRV-USG:launched_at`: `2018-09-13T07:04:09.197749` (microseconds, no zone)."""
    micros = round(t * 1_000_000)
    return f"{_utc_seconds(micros // 1_000_000)}.{micros % 1_000_000:06d}"


def stamp(t: float) -> str:
    """Server `created` / `updated`: `2018-09-13T07:06:51Z`."""
    return _utc_seconds(int(t)) + "Z"
