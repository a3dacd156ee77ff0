"""Windows, deadlines and the cutoff, row by row, including DST change days in Europe/Berlin.

2026 in Europe/Berlin: the clock springs forward on Sunday 29 March at 02:00
CET (01:00 UTC) to 03:00 CEST, and falls back on Sunday 25 October at 03:00
CEST (01:00 UTC) to 02:00 CET.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import UsageError
from orchestrator.rollout.duration import (
    DEFAULT_EXPECTED_JOB_SECONDS,
    expected_job_seconds,
    may_start,
)
from orchestrator.rollout.window import (
    Schedule,
    parse_instant,
    parse_window,
    parse_zone,
)

BERLIN = ZoneInfo("Europe/Berlin")


def z(text: str) -> datetime:
    """A UTC instant from a short ISO string."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29T05:00+02:00", z("2026-03-29T03:00")),
        ("2026-03-29T05:00:00Z", z("2026-03-29T05:00")),
        ("2026-03-29T05:00z", z("2026-03-29T05:00")),
        (" 2026-03-29T05:00-05:00 ", z("2026-03-29T10:00")),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert parse_instant(text, "--deadline") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-29T05:00", "no UTC offset"),
        ("2026-03-29", "no UTC offset"),
        ("tomorrow", "not an ISO 8601 time"),
        ("", "not an ISO 8601 time"),
    ],
)
def test_parse_instant_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_instant(text, "--deadline")
    assert "--deadline" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("02:00", "not HH:MM-HH:MM"),
        ("2-5", "not HH:MM-HH:MM"),
        ("24:00-05:00", "out of range"),
        ("02:00-05:60", "out of range"),
        ("03:00-03:00", "same time"),
    ],
)
def test_parse_window_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_window(text, BERLIN)


def test_parse_zone() -> None:
    assert parse_zone("Europe/Berlin") == BERLIN
    assert parse_zone(None) is not None  # the local zone, whatever it is here
    with pytest.raises(UsageError, match="--tz: 'Mars/Olympus' is not an IANA"):
        parse_zone("Mars/Olympus")
    with pytest.raises(UsageError, match="--tz"):
        parse_zone("../etc/passwd")


# -- daily windows: the opening containing or following `now` ------------------


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        # An ordinary summer day: 02:00-05:00 CEST is 00:00-03:00 UTC.
        ("02:00-05:00", "2026-06-10T01:00", "2026-06-10T00:00", "2026-06-10T03:00"),
        ("02:00-05:00", "2026-06-09T23:00", "2026-06-10T00:00", "2026-06-10T03:00"),
        # Just closed: the next opening is tomorrow's.
        ("02:00-05:00", "2026-06-10T03:00", "2026-06-11T00:00", "2026-06-11T03:00"),
        # Winter: CET, 01:00-04:00 UTC.
        ("02:00-05:00", "2026-01-15T00:00", "2026-01-15T01:00", "2026-01-15T04:00"),
        # Spring forward: 02:00 does not exist; the window opens when the clock
        # jumps (01:00 UTC = 03:00 CEST) and is two hours long.
        ("02:00-05:00", "2026-03-28T23:30", "2026-03-29T01:00", "2026-03-29T03:00"),
        ("02:30-05:00", "2026-03-28T23:30", "2026-03-29T01:00", "2026-03-29T03:00"),
        # Ends in the gap: it closes at the jump, not an hour later.
        ("00:30-02:30", "2026-03-28T23:00", "2026-03-28T23:30", "2026-03-29T01:00"),
        # Across midnight into the spring-forward night: 22:00 CET to the jump.
        ("22:00-02:00", "2026-03-28T21:30", "2026-03-28T21:00", "2026-03-29T01:00"),
        # Empty on that day (02:00-03:00 does not happen): skipped to the next day.
        ("02:00-03:00", "2026-03-28T23:00", "2026-03-30T00:00", "2026-03-30T01:00"),
        # Fall back: 02:00 happens twice; the window opens at the first (CEST) and
        # closes at 05:00 CET: four hours.
        ("02:00-05:00", "2026-10-24T23:00", "2026-10-25T00:00", "2026-10-25T04:00"),
        # Ends at a repeated time: closes at its first occurrence (the early one).
        ("01:00-02:30", "2026-10-24T22:00", "2026-10-24T23:00", "2026-10-25T00:30"),
        # Across midnight, ordinary: 23:00-01:00 CEST.
        ("23:00-01:00", "2026-06-10T22:00", "2026-06-10T21:00", "2026-06-10T23:00"),
        ("23:00-01:00", "2026-06-10T23:00", "2026-06-11T21:00", "2026-06-11T23:00"),
    ],
)
def test_daily_window_opening(window: str, now: str, start: str, end: str) -> None:
    opening = parse_window(window, BERLIN).opening(z(now))
    assert opening.start == z(start)
    assert opening.end == z(end)


def test_every_opening_of_a_year_is_well_formed() -> None:
    # Walk a whole year of 02:00-05:00 openings in Berlin, both DST days included.
    window = parse_window("02:00-05:00", BERLIN)
    now = z("2026-01-01T00:00")
    lengths: dict[float, int] = {}
    for _ in range(365):
        opening = window.opening(now)
        assert opening.end is not None and opening.start < opening.end
        assert opening.start >= now or opening.contains(now)
        hours = (opening.end - opening.start) / timedelta(hours=1)
        lengths[hours] = lengths.get(hours, 0) + 1
        now = opening.end
    assert lengths == {3.0: 363, 2.0: 1, 4.0: 1}


# -- schedules: window, not-before and deadline together -----------------------

WINDOW = parse_window("02:00-05:00", BERLIN)


@pytest.mark.parametrize(
    ("schedule", "now", "is_open", "next_open", "closes_at"),
    [
        # Nothing set: always open, never closes.
        (Schedule(), "2026-06-10T12:00", True, "2026-06-10T12:00", None),
        # Not before.
        (
            Schedule(not_before=z("2026-06-10T13:00")),
            "2026-06-10T12:00",
            False,
            "2026-06-10T13:00",
            None,
        ),
        # Deadline: open until it, closed at and after it, forever.
        (
            Schedule(deadline=z("2026-06-10T13:00")),
            "2026-06-10T12:00",
            True,
            "2026-06-10T12:00",
            "2026-06-10T13:00",
        ),
        (Schedule(deadline=z("2026-06-10T13:00")), "2026-06-10T13:00", False, None, None),
        # Window.
        (Schedule(window=WINDOW), "2026-06-10T01:00", True, "2026-06-10T01:00", "2026-06-10T03:00"),
        (
            Schedule(window=WINDOW),
            "2026-06-10T04:00",
            False,
            "2026-06-11T00:00",
            "2026-06-11T03:00",
        ),
        # Window cut short by the deadline.
        (
            Schedule(window=WINDOW, deadline=z("2026-06-10T02:00")),
            "2026-06-10T01:00",
            True,
            "2026-06-10T01:00",
            "2026-06-10T02:00",
        ),
        # Deadline before the next opening: never opens again.
        (
            Schedule(window=WINDOW, deadline=z("2026-06-10T23:00")),
            "2026-06-10T04:00",
            False,
            None,
            None,
        ),
        # Not-before inside an opening: opens then, closes with the window.
        (
            Schedule(window=WINDOW, not_before=z("2026-06-10T01:30")),
            "2026-06-10T00:30",
            False,
            "2026-06-10T01:30",
            "2026-06-10T03:00",
        ),
        # Not-before after today's opening: tomorrow's.
        (
            Schedule(window=WINDOW, not_before=z("2026-06-10T05:00")),
            "2026-06-10T01:00",
            False,
            "2026-06-11T00:00",
            "2026-06-11T03:00",
        ),
    ],
)
def test_schedule(
    schedule: Schedule, now: str, is_open: bool, next_open: str | None, closes_at: str | None
) -> None:
    t = z(now)
    assert schedule.is_open(t) is is_open
    assert schedule.next_open(t) == (z(next_open) if next_open else None)
    assert schedule.closes_at(t) == (z(closes_at) if closes_at else None)


# -- expected duration and the cutoff ------------------------------------------


@pytest.mark.parametrize(
    ("durations", "fallback", "seconds", "source"),
    [
        ([], 600.0, 600.0, "--expected-job-seconds 600 (fewer than 20 finished jobs: 0)"),
        ([100.0] * 19, 600.0, 600.0, "fewer than 20 finished jobs: 19"),
        # 20 samples 1..20: nearest-rank p90 is the 18th.
        ([float(i) for i in range(20, 0, -1)], 600.0, 18.0, "p90 of 20 finished jobs"),
        ([float(i) for i in range(1, 101)], 600.0, 90.0, "p90 of 100 finished jobs"),
        # NaN and negative durations (clock steps) are not samples.
        ([float("nan"), -5.0] + [10.0] * 19, 600.0, 600.0, "19"),
    ],
)
def test_expected_job_seconds(
    durations: list[float], fallback: float, seconds: float, source: str
) -> None:
    estimate = expected_job_seconds(durations, fallback)
    assert estimate.seconds == seconds
    assert source in estimate.source


def test_expected_job_seconds_default() -> None:
    assert expected_job_seconds([]).seconds == DEFAULT_EXPECTED_JOB_SECONDS


@pytest.mark.parametrize(
    ("now", "expected", "closes_at", "allowed"),
    [
        ("2026-06-10T02:00", 600.0, None, True),
        ("2026-06-10T02:00", 600.0, "2026-06-10T02:10", True),  # ends exactly at closing
        ("2026-06-10T02:00:01", 600.0, "2026-06-10T02:10", False),
        ("2026-06-10T01:00", 3600.0, "2026-06-10T02:10", True),
    ],
)
def test_may_start(now: str, expected: float, closes_at: str | None, allowed: bool) -> None:
    assert may_start(z(now), expected, z(closes_at) if closes_at else None) is allowed


NEAR_DST = st.builds(
    lambda base, seconds: base + timedelta(seconds=seconds),
    st.sampled_from([z("2026-03-29T01:00"), z("2026-10-25T01:00"), z("2031-10-26T01:00")]),
    st.integers(min_value=-6 * 3600, max_value=6 * 3600),
)
ANY_TIME = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@given(
    st.one_of(NEAR_DST, ANY_TIME),
    # Edges outside the repeated hour (02:00-03:00 exclusive): where an edge is in
    # it, the window is one stretch of time that the wall clock reads twice.
    st.sampled_from(["02:00-05:00", "22:00-02:00", "00:00-01:00", "01:30-03:00", "03:00-02:00"]),
)
def test_is_open_agrees_with_the_wall_clock(now: datetime, text: str) -> None:
    # Whatever DST does, "open" means the Berlin wall clock reads inside the window
    # (a repeated hour is inside twice; a skipped one is never read).
    window = parse_window(text, BERLIN)
    wall = now.astimezone(BERLIN).time()
    inside = (
        window.start <= wall < window.end
        if window.start < window.end
        else wall >= window.start or wall < window.end
    )
    assert Schedule(window=window).is_open(now) is inside


# -- the first opening a job fits in ----------------------------------------------

NIGHT = parse_window("02:00-05:00", BERLIN)  # 01:00-04:00 UTC in winter


@pytest.mark.parametrize(
    ("schedule", "now", "seconds", "start"),
    [
        # Inside the window with room: from now.
        (Schedule(window=NIGHT), z("2026-12-07T02:00"), 900, z("2026-12-07T02:00")),
        # Too late in this opening: the next night's.
        (Schedule(window=NIGHT), z("2026-12-07T03:50"), 900, z("2026-12-08T01:00")),
        # A window shorter than a job: never.
        (Schedule(window=parse_window("02:00-02:10", BERLIN)), z("2026-12-07T00:00"), 900, None),
        # A deadline with room, and one without.
        (
            Schedule(deadline=z("2026-12-07T05:00")),
            z("2026-12-07T04:00"),
            900,
            z("2026-12-07T04:00"),
        ),
        (Schedule(deadline=z("2026-12-07T05:00")), z("2026-12-07T04:50"), 900, None),
        (Schedule(deadline=z("2026-12-07T05:00")), z("2026-12-07T06:00"), 900, None),
        # A deadline that cuts the next night short: none fits after it.
        (
            Schedule(deadline=z("2026-12-08T01:05"), window=NIGHT),
            z("2026-12-07T03:50"),
            900,
            None,
        ),
    ],
)
def test_first_fit(
    schedule: Schedule, now: datetime, seconds: float, start: datetime | None
) -> None:
    found = schedule.first_fit(now, seconds)
    assert (found.start if found is not None else None) == start
