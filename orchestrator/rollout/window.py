"""When reinstalls may be sent: --not-before, --deadline and a daily --window in a time zone.

Everything is computed on aware datetimes; the caller passes `now`. A daily
window is a run of wall-clock time in an IANA zone, and may cross midnight
(`22:00-02:00`). On DST change days the wall clock skips or repeats an hour:

- a wall time that does not exist (spring forward, 02:30 in Europe/Berlin)
  is reached when the clock jumps over it, i.e. at the transition instant;
- a wall time that happens twice (fall back) is taken at its first occurrence,
  so a window opens as early and closes as early as the wall clock allows --
  closing early is the safe side for a maintenance window.

An opening of zero length (`02:00-03:00` on the spring-forward day) is skipped.

Every instant this module returns is in UTC: Python compares and adds aware
datetimes of the same zone by wall clock, ignoring `fold`, which is wrong on
exactly the days this module has to get right.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.errors import UsageError
from orchestrator.timetext import example_instant, zone_name

__all__ = [
    "DailyWindow",
    "Opening",
    "Schedule",
    "local_zone",
    "parse_instant",
    "parse_window",
    "parse_zone",
]

_BEGINNING = datetime.min.replace(tzinfo=UTC)  # the start of an opening with no start
# Openings of a daily window looked at for one long enough: a week covers DST days.
FIT_TRIES = 8
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_instant(text: str, option: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 time with an offset or `Z`, e.g. for --not-before/--deadline.

    A time without an offset is refused rather than guessed: "03:00" on a
    laptop in another zone than the fleet is how windows get missed. The
    example the error gives carries the offset `zone` (--tz, else this
    machine's) really has on that day: a fixed "+02:00" is wrong half the year.
    """
    raw = text.strip()
    zone = zone if zone is not None else local_zone()
    example = f"{example_instant(zone)} for 05:00 in {zone_name(zone)}"
    try:
        parsed = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw)
    except (ValueError, IndexError):
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 time (e.g. {example})") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise UsageError(
            f"{option}: {text!r} has no UTC offset; add the offset of the zone you mean"
            f" (e.g. {example}) or Z for UTC"
        )
    try:
        parsed.astimezone(UTC)  # what every comparison does; year 9999 at -23:59 overflows
    except OverflowError:
        raise UsageError(f"{option}: {text!r} is out of the range of times") from None
    return parsed


def parse_zone(name: str | None) -> tzinfo:
    """The IANA zone for --tz; None means this machine's local zone."""
    if name is None:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: {name!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def local_zone() -> tzinfo:
    """This machine's zone with its DST rules: $TZ, else what /etc/localtime links to.

    The last resort, today's fixed offset, knows no DST; it is only used where
    the system names no zone at all.
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        candidates.append(target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else "")
    except OSError:  # pragma: no cover
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


@dataclass(frozen=True, slots=True)
class Opening:
    """One stretch of time in which reinstalls may be sent; `end` None is open-ended."""

    start: datetime
    end: datetime | None

    def contains(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """`start`-`end` every day in `zone`; end <= start means it ends the next day."""

    start: time
    end: time
    zone: tzinfo

    def opening_on(self, day: date) -> Opening:
        """The opening that starts on local `day` (it may be empty on a DST day)."""
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        return Opening(_resolve(day, self.start, self.zone), _resolve(end_day, self.end, self.zone))

    def opening(self, now: datetime) -> Opening:
        """The opening containing `now`, or else the next one."""
        now = now.astimezone(UTC)
        today = now.astimezone(self.zone).date()
        for offset in range(-1, 4):
            candidate = self.opening_on(today + timedelta(days=offset))
            assert candidate.end is not None
            if candidate.start < candidate.end and now < candidate.end:
                return candidate
        raise AssertionError("a daily window opens within three days")  # pragma: no cover


def parse_window(text: str, zone: tzinfo) -> DailyWindow:
    """`HH:MM-HH:MM` for --window, in `zone` (see `parse_zone`)."""
    match = _WINDOW.match(text)
    if match is None:
        raise UsageError(f"--window: {text!r} is not HH:MM-HH:MM (e.g. 02:00-05:00)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
        raise UsageError(f"--window: {text!r} has a time out of range (00:00 to 23:59)")
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise UsageError(f"--window: {text!r} starts and ends at the same time")
    return DailyWindow(start, end, zone)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The time allowed for sending: not before, before the deadline, inside the window."""

    not_before: datetime | None = None
    deadline: datetime | None = None
    window: DailyWindow | None = None
    # The zone messages show times in besides UTC: the window's (--tz, else this
    # machine's), the operator's wall clock.
    zone: tzinfo = UTC

    def opening(self, now: datetime) -> Opening | None:
        """The opening containing `now`, or the next one; None when none is left."""
        now = now.astimezone(UTC)
        t = now if self.not_before is None or now >= self.not_before else self.not_before
        # An opening keeps its own start whatever `now` is, so that two calls
        # can tell "the same opening" from "the next one" by comparing starts.
        floor = _BEGINNING if self.not_before is None else self.not_before.astimezone(UTC)
        if self.window is None:
            found = Opening(floor, self.deadline)
        else:
            daily = self.window.opening(t)
            end = daily.end
            if self.deadline is not None and end is not None and self.deadline < end:
                end = self.deadline
            found = Opening(max(floor, daily.start), end)
        if found.end is not None and max(t, found.start) >= found.end:
            return None  # only the deadline can end an opening before `t`: none is left
        return found

    def is_open(self, now: datetime) -> bool:
        found = self.opening(now)
        return found is not None and found.contains(now)

    def next_open(self, now: datetime) -> datetime | None:
        """`now` when open, else when it next opens; None when it never will."""
        found = self.opening(now)
        return None if found is None else max(now.astimezone(UTC), found.start)

    def closes_at(self, now: datetime) -> datetime | None:
        """When the opening containing `now` closes (None: never). Only meaningful when open."""
        found = self.opening(now)
        return None if found is None else found.end

    def first_fit(self, now: datetime, seconds: float) -> Opening | None:
        """The first opening, from `now` on, in which a job of `seconds` started at once
        still ends before the close (its start is then `now` or later); None when none is
        left (the deadline) or none is long enough (a window shorter than a job)."""
        now = now.astimezone(UTC)
        length = timedelta(seconds=seconds)
        found = self.opening(now)
        # A daily window's openings differ by an hour at most (DST): a few tell.
        for _ in range(FIT_TRIES):
            if found is None:
                return None
            start = max(found.start, now)
            if found.end is None or start + length <= found.end:
                return Opening(start, found.end)
            if self.window is None:
                return None  # one opening only: the deadline's
            found = self.opening(found.end)
        return None


def _resolve(day: date, wall: time, zone: tzinfo) -> datetime:
    """The instant the wall clock in `zone` first reaches `wall` on `day` (see the docstring)."""
    first = datetime.combine(day, wall, tzinfo=zone)  # fold=0: first occurrence when repeated
    if _exists(first):
        return first.astimezone(UTC)
    # In a gap: the clock jumps over `wall` at the transition, which lies between
    # the two readings of the wall time (with the offset before and after).
    low = datetime.combine(day, wall, tzinfo=zone).replace(fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= datetime.combine(day, wall):
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


def _exists(local: datetime) -> bool:
    """Whether an aware local time survives a round trip through UTC (not in a DST gap)."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None, fold=0) == local.replace(tzinfo=None, fold=0)
