"""Timestamps as the state store writes them, read forgivingly."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """Now, in the state store's timestamp format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | None) -> datetime | None:
    """An aware datetime for an ISO 8601 string, or None if absent or unreadable.

    A report must not fail over one odd timestamp, so garbage gives None (the
    target then simply has no duration). Naive values are taken as UTC, which
    is what the state store writes.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
