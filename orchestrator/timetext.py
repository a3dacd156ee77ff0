"""Times as the command line says them: to the second, in the operator's zone and in UTC.

    spoken(t, zone)        2026-12-07 02:00:00 CET (01:00:00 UTC)
    zone_name(zone)        Europe/Berlin
    offset_now(zone)       UTC+01:00 (the offset the zone has now)
    example_instant(zone)  2026-12-08T05:00+01:00: an ISO 8601 time with the offset
                           `zone` really has on that day, for error messages

Nothing here knows about windows; the rollout and the CLI pass the zone in use
(--tz, else this machine's).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

__all__ = ["example_instant", "offset_now", "spoken", "utc_second", "zone_name"]


def zone_name(zone: tzinfo) -> str:
    """The zone's IANA name where it has one (a ZoneInfo), else what it calls itself."""
    key = getattr(zone, "key", None)
    if isinstance(key, str) and key:
        return key
    return zone.tzname(None) or str(zone)


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def offset_now(zone: tzinfo, now: datetime | None = None) -> str:
    """`UTC+01:00`: the offset `zone` has at `now`."""
    return _offset((now or datetime.now(UTC)).astimezone(zone))


def spoken(moment: datetime, zone: tzinfo | None = None) -> str:
    """`moment` to the second in `zone`, then in UTC; only UTC where they are the same."""
    utc = moment.astimezone(UTC).replace(microsecond=0)
    local = utc.astimezone(zone) if zone is not None else utc
    if local.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M:%S} UTC"
    name = local.tzname() or ""
    # A zone without a letter abbreviation calls itself "+03": say the offset instead.
    label = name if name and name[0] not in "+-" else _offset(local)
    in_utc = f"{utc:%H:%M:%S}" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M:%S}"
    return f"{local:%Y-%m-%d %H:%M:%S} {label} ({in_utc} UTC)"


def utc_second(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, `2026-12-07T01:00:00Z`: for lines scripts read."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def example_instant(zone: tzinfo, now: datetime | None = None) -> str:
    """Tomorrow 05:00 in `zone`, with the offset it has then: `2026-12-08T05:00+01:00`."""
    day = (now or datetime.now(UTC)).astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(5), tzinfo=zone).isoformat(timespec="minutes")
