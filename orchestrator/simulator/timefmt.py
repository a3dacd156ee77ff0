"""The three timestamp formats the ECS API uses, from epoch seconds (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def job_time(t: float) -> str:
    """Job `begin_time` / `end_time`: `2016-04-25T20:04:47.591Z`."""
    millis = round(t * 1000)
    return _utc(millis // 1000).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def launched_at(t: float) -> str:
    """`OS-SRV-USG:launched_at`: `2018-09-13T07:04:09.197749` (microseconds, no zone)."""
    micros = round(t * 1_000_000)
    return _utc(micros // 1_000_000).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros % 1_000_000:06d}"


def stamp(t: float) -> str:
    """Server `created` / `updated`: `2018-09-13T07:06:51Z`."""
    return _utc(int(t)).strftime("%Y-%m-%dT%H:%M:%SZ")
