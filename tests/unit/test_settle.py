"""Settling an uncertain reinstall from what the server shows: tables of cases.

The rules are asymmetric (settle.py): any sign of activity since the intent means
"maybe accepted" (follow, never resend); "not accepted" needs the quiet period
watched since the intent (monotonic) and two agreeing readings in which nothing
moved. Times the service wrote are compared with the intent on the service's
clock, within the error of that clock: inside it, "cannot tell".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.cloud.client import ServerView
from orchestrator.engine.settle import (
    LOCAL_INTENT_ERROR,
    Before,
    Clock,
    QuietPeriod,
    Settlement,
    Verdict,
    activity,
    follow,
    is_rebuilding,
    parse_time,
    reinstalled_since,
    relaunched_since,
    settle,
)

V = Verdict
SID = "0b3a8a5c-6c9f-4c2a-9f59-6d1c1c2d3e4f"
FIRST = "2020-01-01T09:00:00.000000"  # launched_at before the first attempt
BEFORE = "2020-03-01T10:00:00.000000"  # the simulator's launched_at format: no zone
LATER = "2020-03-01T10:00:00.000001"
EARLIER = "2020-02-28T09:00:00.000000"
UPDATED = "2020-03-01T10:00:00Z"  # `updated` as read before sending
INTENT = "2027-01-15T08:00:00.000000+00:00"  # ServiceTime.iso(): the service's clock
INTENT_AT = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
QUIET = timedelta(seconds=600)
ERROR = 2.0  # seconds the intent may be off the service's clock
DURING = INTENT_AT + timedelta(seconds=30)  # inside the quiet period
AFTER = INTENT_AT + QUIET + timedelta(seconds=1)  # the quiet period is over


def server(
    status: str | None = "SHUTOFF",
    task_state: str | None = None,
    launched_at: str | None = BEFORE,
    updated: str | None = UPDATED,
    vm_state: str | None = "stopped",
) -> ServerView:
    return ServerView(
        server_id=SID,
        status=status,
        vm_state=vm_state,
        task_state=task_state,
        launched_at=launched_at,
        updated=updated,
    )


def before(
    launched_at: str | None = BEFORE,
    status: str | None = "SHUTOFF",
    updated: str | None = UPDATED,
    first: str | None = None,
) -> Before:
    return Before(launched_at=launched_at, status=status, updated=updated, first_launched_at=first)


def clock(now: datetime = AFTER, intent: str | None = INTENT, **changes: object) -> Clock:
    """The clock of a reinstall watched since INTENT_AT, `now - INTENT_AT` seconds in."""
    watched = (now - INTENT_AT).total_seconds()
    base = Clock(intent_at=intent, intent_error=ERROR, watched=watched, quiet=QUIET.total_seconds())
    return replace(base, **changes)  # type: ignore[arg-type]


# -- activity: every sign means "maybe accepted" -> FOLLOW, before or after the quiet period


@pytest.mark.parametrize("now", [DURING, AFTER], ids=["during-quiet", "after-quiet"])
@pytest.mark.parametrize(
    ("view", "fragment"),
    [
        # Rebuilding now: accepted, whatever the timestamps say.
        (server("REBUILD", "rebuilding"), "rebuilding"),
        (server("REBUILD", None), "rebuilding"),
        (server("SHUTOFF", "rebuilding"), "rebuilding"),
        (server("ACTIVE", "rebuild_spawning"), "rebuilding"),
        (server("ACTIVE", "rebuild_block_device_mapping"), "rebuilding"),
        # withStopServer: first powered off while still ACTIVE (the old test asserted
        # "not accepted" here, and the reinstall was sent twice).
        (server("ACTIVE", "powering-off"), "task state powering-off"),
        (server("SHUTOFF", "powering-on"), "task state powering-on"),
        # Status other than the one read before sending (ACTIVE -> SHUTOFF: powered off).
        (server("ACTIVE"), "status SHUTOFF -> ACTIVE"),
        (server("HARD_REBOOT"), "status SHUTOFF -> HARD_REBOOT"),
        # `updated` moved since before sending.
        (server(updated="2020-03-01T10:05:00Z"), "updated"),
    ],
)
def test_any_sign_of_activity_is_followed_never_resent(
    view: ServerView, fragment: str, now: datetime
) -> None:
    result = settle(view, before(), clock(now))
    assert isinstance(result, Settlement)
    assert result.verdict is V.FOLLOW, result.reason
    assert fragment in result.reason


@pytest.mark.parametrize("now", [DURING, AFTER], ids=["during-quiet", "after-quiet"])
def test_a_known_job_id_means_accepted(now: datetime) -> None:
    result = settle(server(), before(), clock(now), previous=server(), job_id="job-7")
    assert result.verdict is V.FOLLOW
    assert "job job-7" in result.reason


def test_launched_at_moved_is_success_not_follow() -> None:
    # Moved since the latest attempt, finished: the reinstall was done.
    result = settle(server(launched_at=LATER), before(), clock(DURING))
    assert result.verdict is V.SUCCEEDED
    assert BEFORE in result.reason and LATER in result.reason


# -- nothing moved: WAIT, then NOT_ACCEPTED only with an agreeing previous reading


@pytest.mark.parametrize(
    ("now", "previous", "verdict", "fragment"),
    [
        (DURING, None, V.WAIT, "quiet period ends in"),
        (DURING, server(), V.WAIT, "quiet period ends in"),  # agreeing, but too early
        (INTENT_AT, server(), V.WAIT, "quiet period ends in"),
        (INTENT_AT + QUIET - timedelta(seconds=1), server(), V.WAIT, "ends in"),
        (AFTER, None, V.WAIT, "second, agreeing reading"),
        # A previous reading that disagrees (something moved between them) is no help.
        (AFTER, server("ACTIVE"), V.WAIT, "second, agreeing reading"),
        (AFTER, server(updated="2020-03-01T09:00:00Z"), V.WAIT, "second, agreeing reading"),
        (AFTER, server(launched_at=EARLIER), V.WAIT, "second, agreeing reading"),
        (AFTER, server("SHUTOFF", "powering-off"), V.WAIT, "second, agreeing reading"),
        (AFTER, server(), V.NOT_ACCEPTED, "two readings agree"),
        (INTENT_AT + QUIET, server(), V.NOT_ACCEPTED, "two readings agree"),
    ],
)
def test_not_accepted_needs_the_quiet_period_and_two_agreeing_readings(
    now: datetime, previous: ServerView | None, verdict: Verdict, fragment: str
) -> None:
    result = settle(server(), before(), clock(now), previous=previous)
    assert result.verdict is verdict, result.reason
    assert fragment in result.reason


def test_not_accepted_names_the_quiet_period() -> None:
    result = settle(server(), before(), clock(AFTER), previous=server())
    assert "600 s" in result.reason


def test_the_quiet_period_is_the_time_watched() -> None:
    now = INTENT_AT + timedelta(seconds=100)
    short = clock(now, quiet=99.0)
    long = clock(now, quiet=101.0)
    assert settle(server(), before(), short, previous=server()).verdict is V.NOT_ACCEPTED
    assert settle(server(), before(), long, previous=server()).verdict is V.WAIT


@pytest.mark.parametrize("intent", [INTENT, "2030-01-01T00:00:00+00:00", "2001-01-01T00:00:00Z"])
def test_the_quiet_period_does_not_read_the_intent_time(intent: str) -> None:
    # However far the clock that stamped the intent was off, only what this process
    # watched counts: a clock a day ahead neither ends nor stretches the wait.
    during = settle(server(), before(), clock(DURING, intent=intent), previous=server())
    after = settle(server(), before(), clock(AFTER, intent=intent), previous=server())
    assert during.verdict is V.WAIT
    assert after.verdict is V.NOT_ACCEPTED


@pytest.mark.parametrize("intent", [None, "garbage"])
def test_an_unknown_intent_time_still_settles_from_readings_made_before(
    intent: str | None,
) -> None:
    # With the server read before the request, the readings decide; no clock is compared.
    result = settle(server(), before(), clock(AFTER, intent=intent), previous=server())
    assert result.verdict is V.NOT_ACCEPTED, result.reason


# -- ERROR: never resent


@pytest.mark.parametrize(
    ("view", "prior"),
    [
        (server("ERROR"), before()),
        (server("ERROR", launched_at=LATER), before()),
        (server("ERROR", launched_at=None), before(launched_at=None, updated=None)),
        (server("ERROR", launched_at=EARLIER), before(launched_at=None)),
        (server("ERROR", updated="2020-03-01T10:05:00Z"), before(status="ERROR")),
    ],
)
@pytest.mark.parametrize("now", [DURING, AFTER], ids=["during-quiet", "after-quiet"])
def test_error_is_failed(view: ServerView, prior: Before, now: datetime) -> None:
    result = settle(view, prior, clock(now), previous=view)
    assert result.verdict is V.FAILED
    assert "ERROR" in result.reason


# -- relaunched since the FIRST attempt


@pytest.mark.parametrize("now", [DURING, AFTER], ids=["during-quiet", "after-quiet"])
def test_relaunched_since_the_first_attempt_is_success_even_if_unchanged_since_the_latest(
    now: datetime,
) -> None:
    # The first attempt was acted on (FIRST -> BEFORE); the latest one read BEFORE
    # and nothing moved since. Not "not accepted": the server was already reinstalled.
    prior = before(launched_at=BEFORE, first=FIRST)
    result = settle(server(), prior, clock(now), previous=server())
    assert result.verdict is V.SUCCEEDED
    assert FIRST in result.reason and "first attempt" in result.reason


def test_first_and_latest_the_same_compares_as_usual() -> None:
    prior = before(launched_at=BEFORE, first=BEFORE)
    assert settle(server(), prior, clock(AFTER), previous=server()).verdict is V.NOT_ACCEPTED
    assert settle(server(launched_at=LATER), prior, clock()).verdict is V.SUCCEEDED


def test_only_a_first_value_is_the_reference() -> None:
    prior = before(launched_at=None, first=BEFORE)
    assert settle(server(launched_at=LATER), prior, clock()).verdict is V.SUCCEEDED
    assert settle(server(), prior, clock(AFTER), previous=server()).verdict is V.NOT_ACCEPTED


@pytest.mark.parametrize(
    ("now_launched", "prior", "expected"),
    [
        (BEFORE, before(), False),
        (LATER, before(), True),
        (EARLIER, before(), False),  # older: clock trouble at the service, not a relaunch
        (None, before(), None),
        ("not a time", before(), None),
        ("2020-03-02 10:00:00 UTC", before(), None),  # changed to an unreadable format
        (LATER, before(launched_at="13/01/2020 10:00"), True),  # changed, not comparable
        ("13/01/2020 10:00", before(launched_at="13/01/2020 10:00"), False),  # identical
        (BEFORE, before(first=FIRST), True),
    ],
)
def test_relaunched_since(now_launched: str | None, prior: Before, expected: bool | None) -> None:
    relaunched, how = relaunched_since(now_launched, prior, clock())
    assert relaunched is expected
    assert how


def test_a_changed_launch_time_that_cannot_be_compared_is_never_not_accepted() -> None:
    # Taking the server as untouched would send the reinstall again and wipe it twice.
    view = server(launched_at="2020-03-02 10:00:00 UTC")
    result = settle(view, before(), clock(AFTER), previous=view)
    assert result.verdict is not V.NOT_ACCEPTED, result.reason


# -- no value from before the request: times compared with the intent, on the service's clock


@pytest.mark.parametrize(
    ("launched_at", "verdict"),
    [
        ("2027-01-15T08:00:05.000000", V.SUCCEEDED),  # after the intent and its error
        ("2027-01-15T08:00:02.000001", V.SUCCEEDED),  # just past the error
        ("2027-01-15T08:00:01.000000", V.UNVERIFIED),  # within the error: cannot tell
        ("2027-01-15T07:59:58.000000", V.UNVERIFIED),  # exactly intent - error
        ("2027-01-15T07:59:57.999999", V.NOT_ACCEPTED),  # before it
        ("2026-12-01T00:00:00.000000", V.NOT_ACCEPTED),  # long before
        ("2027-01-15T09:00:05+01:00", V.SUCCEEDED),  # 08:00:05 UTC, with a zone
        ("2027-01-15T08:54:00+01:00", V.NOT_ACCEPTED),  # 07:54 UTC
    ],
)
def test_no_before_launch_time_is_compared_with_the_intent_on_the_service_clock(
    launched_at: str, verdict: Verdict
) -> None:
    view = server("ACTIVE", launched_at=launched_at, updated=None)
    prior = Before(status="ACTIVE")
    result = settle(view, prior, clock(AFTER), previous=view)
    assert result.verdict is verdict, result.reason
    assert "service clock" in result.reason or "cannot tell" in result.reason


def test_the_intent_error_is_a_parameter() -> None:
    view = server("ACTIVE", launched_at="2027-01-15T07:30:00", updated=None)
    prior = Before(status="ACTIVE")
    narrow = settle(view, prior, clock(AFTER), previous=view)
    wide = settle(view, prior, clock(AFTER, intent_error=3600.0), previous=view)
    assert narrow.verdict is V.NOT_ACCEPTED
    # Within an hour of an intent an hour uncertain: cannot tell, so never sent again.
    assert wide.verdict is V.UNVERIFIED
    assert "3600.0 s" in wide.reason


def test_an_intent_stamped_on_this_hosts_clock_is_compared_within_minutes() -> None:
    # Stamped by an older version on the wall clock of a host up to minutes off.
    view = server("ACTIVE", launched_at="2027-01-15T07:56:00", updated=None)
    prior = Before(status="ACTIVE")
    result = settle(view, prior, clock(AFTER, intent_error=LOCAL_INTENT_ERROR), previous=view)
    assert result.verdict is V.UNVERIFIED, result.reason


@pytest.mark.parametrize(
    ("updated", "verdict"),
    [
        # No `updated` from before: updated near or after the intent (within the clock's
        # error) may be our reinstall at work; before it, it is not.
        ("2027-01-15T08:00:01Z", V.FOLLOW),
        ("2027-01-15T07:59:59Z", V.FOLLOW),  # within the error
        ("2027-01-15T07:59:58Z", V.FOLLOW),  # exactly intent - error
        ("2027-01-15T07:59:57Z", V.NOT_ACCEPTED),
        ("2026-12-01T00:00:00Z", V.NOT_ACCEPTED),
        ("yesterday", V.FOLLOW),  # unreadable: err towards "maybe accepted"
    ],
)
def test_no_before_updated_is_compared_with_the_intent_on_the_service_clock(
    updated: str, verdict: Verdict
) -> None:
    view = server(updated=updated)
    prior = before(updated=None)
    result = settle(view, prior, clock(AFTER), previous=view)
    assert result.verdict is verdict, result.reason


@pytest.mark.parametrize(
    ("launched_at", "intent"),
    [
        (None, INTENT),  # nothing known about the launch
        ("not a time", INTENT),
        ("", INTENT),
        (BEFORE, None),  # no intent time either
        (BEFORE, "garbage"),
    ],
)
def test_unknown_times_without_a_before_value_are_unverified(
    launched_at: str | None, intent: str | None
) -> None:
    # No evidence either way: "not accepted" would allow a second wipe.
    view = server(launched_at=launched_at, updated=None)
    prior = Before(status="SHUTOFF")
    result = settle(view, prior, clock(AFTER, intent=intent), previous=view)
    assert result.verdict is V.UNVERIFIED
    assert "not sent again" in result.reason


# -- activity() on its own


@pytest.mark.parametrize(
    ("view", "prior", "count"),
    [
        (server(), before(), 0),
        (server(task_state="powering-off"), before(), 1),
        (server("ACTIVE"), before(), 1),
        (server(updated="2020-03-01T10:00:01Z"), before(), 1),
        (server("ACTIVE", "powering-off", updated="2020-03-01T10:00:01Z"), before(), 3),
        (server("ACTIVE"), before(status=None), 0),  # no status from before: not a sign
        (server(updated=None), before(), 0),  # the service stopped showing it
    ],
)
def test_activity_lists_each_sign(view: ServerView, prior: Before, count: int) -> None:
    assert len(activity(view, prior, clock())) == count


# -- follow(): a server followed without a job to ask


@pytest.mark.parametrize(
    ("view", "prior", "seen", "verdict", "fragment"),
    [
        (server("REBUILD", "rebuilding"), before(), False, V.FOLLOW, "still rebuilding"),
        (server("ACTIVE", "rebuild_spawning"), before(), True, V.FOLLOW, "still rebuilding"),
        (server("ERROR"), before(), True, V.FAILED, "ERROR"),
        (server("ERROR", launched_at=LATER), before(), False, V.FAILED, "ERROR"),
        (server("ACTIVE", launched_at=LATER), before(), True, V.SUCCEEDED, LATER),
        (server("ACTIVE", launched_at=LATER), before(), False, V.SUCCEEDED, LATER),
        (server("SHUTOFF"), before(first=FIRST), False, V.SUCCEEDED, FIRST),
        # The rebuild ended with launched_at unchanged: a failed job put the server
        # back as it was. Never success (it was, before bbdba76).
        (server("SHUTOFF"), before(), True, V.FAILED, "shows no reinstall"),
        (server("ACTIVE"), before(), True, V.FAILED, "shows no reinstall"),
        # Not seen rebuilding yet (queued, or powering off): keep following.
        (server("SHUTOFF"), before(), False, V.FOLLOW, "waiting for the rebuild"),
        (server("ACTIVE", "powering-off"), before(), False, V.FOLLOW, "waiting"),
        # Seen rebuilding, now in passing through a task state: not ended yet.
        (server("SHUTOFF", "powering-on"), before(), True, V.FOLLOW, "waiting"),
        (server("HARD_REBOOT"), before(), True, V.FOLLOW, "waiting"),
    ],
)
def test_follow_table(
    view: ServerView, prior: Before, seen: bool, verdict: Verdict, fragment: str
) -> None:
    result = follow(view, prior, clock(), seen_rebuild=seen)
    assert result.verdict is verdict, result.reason
    assert fragment in result.reason


@pytest.mark.parametrize(
    ("launched_at", "seen", "verdict"),
    [
        ("2027-01-15T08:03:00", False, V.SUCCEEDED),  # after the intent: relaunched
        ("2027-01-15T08:00:01", False, V.FOLLOW),  # within the error: keep following
        ("2026-12-01T00:00:00", True, V.FAILED),  # long before, rebuild seen: failed
        ("2026-12-01T00:00:00", False, V.FOLLOW),
    ],
)
def test_follow_without_a_before_value_uses_the_intent_on_the_service_clock(
    launched_at: str, seen: bool, verdict: Verdict
) -> None:
    view = server("SHUTOFF", launched_at=launched_at)
    result = follow(view, Before(), clock(), seen_rebuild=seen)
    assert result.verdict is verdict, result.reason


@pytest.mark.parametrize(
    ("view", "still_for", "verdict"),
    [
        # Resting and unchanged for the quiet period, never seen rebuilding (a follow
        # taken up after a restart): the reinstall ended without a relaunch.
        (server("SHUTOFF"), 600.0, V.FAILED),
        (server("ACTIVE"), 900.0, V.FAILED),
        # Not yet: the stopped pause before a rebuild looks just like this.
        (server("SHUTOFF"), 599.0, V.FOLLOW),
        # Not resting: a task state, or a status in transition.
        (server("ACTIVE", "powering-off"), 900.0, V.FOLLOW),
        (server("HARD_REBOOT"), 900.0, V.FOLLOW),
        # Relaunched wins whatever the stillness.
        (server("ACTIVE", launched_at=LATER), 900.0, V.SUCCEEDED),
    ],
)
def test_follow_ends_a_still_resting_server_after_the_quiet_period(
    view: ServerView, still_for: float, verdict: Verdict
) -> None:
    result = follow(view, before(), clock(), seen_rebuild=False, still_for=still_for)
    assert result.verdict is verdict, result.reason


# -- QuietPeriod: never lowered, raised when a job starts later than it


def test_quiet_period_rises_to_a_margin_over_the_slowest_start() -> None:
    quiet = QuietPeriod(10.0)
    assert quiet.observe(3.0) is False  # 3 * 2 <= 10
    assert quiet.observe(5.0) is False  # exactly 10: not raised
    assert quiet.seconds == 10.0
    assert quiet.observe(8.0) is True
    assert quiet.seconds == 16.0


@pytest.mark.parametrize("faster", [0.0, 1.0, 7.9, 8.0])
def test_quiet_period_is_never_lowered(faster: float) -> None:
    quiet = QuietPeriod(10.0)
    quiet.observe(8.0)
    assert quiet.observe(faster) is False
    assert quiet.seconds == 16.0


@pytest.mark.parametrize("took", [86_417.0, float("inf")])
def test_quiet_period_is_never_raised_past_its_ceiling(took: float) -> None:
    # A day learned from a clock step (or anything absurd) raises it to the ceiling only.
    quiet = QuietPeriod(600.0)
    assert quiet.ceiling == 2400.0
    assert quiet.observe(took) is True
    assert quiet.seconds == 2400.0
    assert quiet.observe(took) is False


def test_quiet_period_ignores_nan() -> None:
    quiet = QuietPeriod(600.0)
    assert quiet.observe(float("nan")) is False
    assert quiet.seconds == 600.0


def test_quiet_period_margin_is_a_parameter() -> None:
    quiet = QuietPeriod(10.0, margin=3.0)
    assert quiet.observe(4.0) is True
    assert quiet.seconds == 12.0


# -- helpers


@pytest.mark.parametrize(
    ("view", "rebuilding"),
    [
        (server("REBUILD"), True),
        (server("ACTIVE", "rebuilding"), True),
        (server("ACTIVE", "rebuild_spawning"), True),
        (server("ACTIVE", "rebuild_block_device_mapping"), True),
        (server("ACTIVE", None), False),
        (server("ACTIVE", "powering-off"), False),
        (server("SHUTOFF", "powering-on"), False),
        (server(None, None), False),
    ],
)
def test_is_rebuilding(view: ServerView, rebuilding: bool) -> None:
    assert is_rebuilding(view) is rebuilding


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2018-09-13T07:04:09.197749", "2018-09-13T07:04:09.197749+00:00"),
        ("2018-09-13T07:04:09Z", "2018-09-13T07:04:09+00:00"),
        ("2016-04-25T20:04:47.591Z", "2016-04-25T20:04:47.591000+00:00"),
        ("2018-09-13T09:04:09+02:00", "2018-09-13T09:04:09+02:00"),
        (" 2018-09-13T07:04:09 ", "2018-09-13T07:04:09+00:00"),
    ],
)
def test_parse_time(text: str, iso: str) -> None:
    parsed = parse_time(text)
    assert parsed is not None
    assert parsed.isoformat() == iso


@pytest.mark.parametrize("text", [None, "", "yesterday", "2018-13-40T00:00:00"])
def test_parse_time_refuses_garbage(text: str | None) -> None:
    assert parse_time(text) is None


# -- the system disk and launched_at: two pieces of evidence ----------------------------

OLD_DISK, NEW_DISK = "vol-old", "vol-new"


def on_disk(view: ServerView, volume: str | None) -> ServerView:
    return replace(view, system_volume=volume)


def with_disk(prior: Before, volume: str | None, first: str | None = None) -> Before:
    return replace(prior, volume=volume, first_volume=first)


@pytest.mark.parametrize(
    ("launched", "volume", "expected", "says"),
    [
        # Both agree.
        (LATER, NEW_DISK, True, "system disk replaced"),
        (BEFORE, OLD_DISK, False, "system disk not replaced"),
        # The disk replaced, launched_at unchanged (a cloud that does not move it): the
        # disk is what a reinstall replaces.
        (BEFORE, NEW_DISK, True, "the disk is what a reinstall replaces"),
        # launched_at moved on the same disk (a start moves it too): not a reinstall.
        (LATER, OLD_DISK, False, "a start moves launched_at too"),
        # The disk not shown now (a list without boot indexes): launched_at decides.
        (LATER, None, True, "not shown now"),
        (BEFORE, None, False, "not shown now"),
    ],
)
def test_reinstalled_since_the_disk_decides_and_each_verdict_names_its_evidence(
    launched: str, volume: str | None, expected: bool, says: str
) -> None:
    verdict, how = reinstalled_since(
        on_disk(server("ACTIVE", launched_at=launched), volume),
        with_disk(before(), OLD_DISK),
        clock(),
    )
    assert verdict is expected and says in how
    assert "launched_at" in how and "volume" in how  # both pieces of evidence named


def test_no_volume_before_leaves_launched_at_to_decide() -> None:
    verdict, how = reinstalled_since(
        on_disk(server("ACTIVE", launched_at=LATER), NEW_DISK), before(), clock()
    )
    assert verdict is True and "was not read before the request" in how


def test_a_disk_replaced_since_the_first_attempt_is_a_reinstall() -> None:
    prior = with_disk(before(), NEW_DISK, first=OLD_DISK)
    verdict, how = reinstalled_since(on_disk(server("ACTIVE"), NEW_DISK), prior, clock())
    assert verdict is True and "since the first attempt" in how


def test_a_disk_seen_after_the_intent_then_replaced_is_a_reinstall() -> None:
    prior = replace(before(launched_at=None, updated=None), seen_volume=OLD_DISK)
    verdict, how = reinstalled_since(
        on_disk(server("ACTIVE", launched_at=None), NEW_DISK), prior, clock()
    )
    assert verdict is True and "read after the intent" in how


def test_launched_at_moved_on_the_same_disk_is_never_resent_nor_succeeded() -> None:
    """A start moved launched_at, the disk is the one before: not a reinstall (no
    success), but something ran since the intent (never "not accepted")."""
    prior = with_disk(before(status="SHUTOFF"), OLD_DISK)
    view = on_disk(server("SHUTOFF", launched_at=LATER), OLD_DISK)
    got = settle(view, prior, clock(), previous=view)
    assert got.verdict is V.FOLLOW and "launched_at" in got.reason


def test_a_replaced_disk_with_launched_at_unchanged_settles_succeeded() -> None:
    prior = with_disk(before(status="SHUTOFF"), OLD_DISK)
    got = settle(on_disk(server("SHUTOFF"), NEW_DISK), prior, clock())
    assert got.verdict is V.SUCCEEDED and "system disk replaced" in got.reason


@pytest.mark.parametrize(("volume", "expected"), [(NEW_DISK, V.SUCCEEDED), (OLD_DISK, V.FAILED)])
def test_follow_after_a_rebuild_goes_by_the_disk(volume: str, expected: Verdict) -> None:
    prior = with_disk(before(), OLD_DISK)
    view = on_disk(server("ACTIVE", launched_at=LATER), volume)
    got = follow(view, prior, clock(), seen_rebuild=True)
    assert got.verdict is expected and "volume" in got.reason
