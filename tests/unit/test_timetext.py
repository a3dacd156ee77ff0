"""How times are said: to the second, in the operator's zone and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from orchestrator.timetext import example_instant, offset_now, spoken, utc_second, zone_name

WINTER = datetime(2026, 12, 7, 1, 0, 0, 987654, tzinfo=UTC)
SUMMER = datetime(2026, 7, 7, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "zone", "said"),
    [
        (WINTER, ZoneInfo("Europe/Berlin"), "2026-12-07 02:00:00 CET (01:00:00 UTC)"),
        (SUMMER, ZoneInfo("Europe/Berlin"), "2026-07-07 03:00:00 CEST (01:00:00 UTC)"),
        (WINTER, UTC, "2026-12-07 01:00:00 UTC"),
        (WINTER, None, "2026-12-07 01:00:00 UTC"),
        (WINTER, ZoneInfo("Europe/London"), "2026-12-07 01:00:00 UTC"),
        # The local day differs from UTC's: the UTC date is said too.
        (WINTER, ZoneInfo("America/New_York"), "2026-12-06 20:00:00 EST (2026-12-07 01:00:00 UTC)"),
        # A zone named by an offset only ("+04") is said as one.
        (WINTER, ZoneInfo("Asia/Dubai"), "2026-12-07 05:00:00 UTC+04:00 (01:00:00 UTC)"),
        (
            WINTER,
            timezone(timedelta(hours=5, minutes=30)),
            "2026-12-07 06:30:00 UTC+05:30 (01:00:00 UTC)",
        ),
    ],
)
def test_spoken(moment: datetime, zone: timezone | ZoneInfo | None, said: str) -> None:
    assert spoken(moment, zone) == said


def test_examples_carry_the_offset_of_that_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert example_instant(berlin, WINTER) == "2026-12-08T05:00+01:00"
    assert example_instant(berlin, SUMMER) == "2026-07-08T05:00+02:00"
    assert example_instant(ZoneInfo("America/New_York"), WINTER) == "2026-12-07T05:00-05:00"
    assert offset_now(berlin, WINTER) == "UTC+01:00"
    assert offset_now(ZoneInfo("America/St_Johns"), WINTER) == "UTC-03:30"
    assert zone_name(berlin) == "Europe/Berlin" and zone_name(UTC) == "UTC"
    assert utc_second(WINTER) == "2026-12-07T01:00:00Z"
