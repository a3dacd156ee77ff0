"""Settling an uncertain reinstall from what the server shows: a table of cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.client import ServerView
from orchestrator.settle import (
    DEFAULT_SKEW,
    Settlement,
    Verdict,
    follow,
    is_rebuilding,
    parse_time,
    settle,
)

V = Verdict
SID = "0b3a8a5c-6c9f-4c2a-9f59-6d1c1c2d3e4f"
BEFORE = "2020-03-01T10:00:00.000000"  # the simulator's launched_at format: no zone
LATER = "2020-03-01T10:00:00.000001"
EARLIER = "2020-02-28T09:00:00.000000"
INTENT = "2027-01-15T08:00:00.000000Z"  # the state store's utc_now() format


def server(
    status: str | None = "SHUTOFF",
    task_state: str | None = None,
    launched_at: str | None = BEFORE,
    vm_state: str | None = "stopped",
) -> ServerView:
    return ServerView(
        server_id=SID,
        status=status,
        vm_state=vm_state,
        task_state=task_state,
        launched_at=launched_at,
    )


@pytest.mark.parametrize(
    ("view", "before", "intent", "verdict"),
    [
        # Rebuilding now: accepted, whatever the timestamps say.
        (server("REBUILD", "rebuilding"), BEFORE, INTENT, V.REBUILDING),
        (server("REBUILD", None), BEFORE, INTENT, V.REBUILDING),
        (server("SHUTOFF", "rebuilding"), BEFORE, INTENT, V.REBUILDING),
        (server("ACTIVE", "rebuild_spawning"), BEFORE, INTENT, V.REBUILDING),
        (server("ACTIVE", "rebuild_block_device_mapping"), None, None, V.REBUILDING),
        (server("REBUILD", "rebuilding", launched_at=None), None, None, V.REBUILDING),
        # launched_at moved since before the request: accepted and finished.
        (server("ACTIVE", launched_at=LATER), BEFORE, INTENT, V.SUCCEEDED),
        (server("ACTIVE", launched_at="2027-01-15T08:01:00Z"), BEFORE, INTENT, V.SUCCEEDED),
        (server("ERROR", launched_at=LATER), BEFORE, INTENT, V.FAILED),
        # Unchanged: never acted on, may be sent again.
        (server("SHUTOFF"), BEFORE, INTENT, V.NOT_ACCEPTED),
        (server("ACTIVE"), BEFORE, INTENT, V.NOT_ACCEPTED),
        # Older than before (clock trouble at the service): not a relaunch.
        (server("ACTIVE", launched_at=EARLIER), BEFORE, INTENT, V.NOT_ACCEPTED),
        # ERROR without a relaunch may be our reinstall failing: never resend to it.
        (server("ERROR"), BEFORE, INTENT, V.FAILED),
        (server("ERROR", launched_at=None), None, INTENT, V.FAILED),
        (server("ERROR", launched_at=EARLIER), None, INTENT, V.FAILED),
        # Other task states are not a rebuild.
        (server("ACTIVE", "powering-off"), BEFORE, INTENT, V.NOT_ACCEPTED),
    ],
)
def test_settle_table(
    view: ServerView, before: str | None, intent: str | None, verdict: Verdict
) -> None:
    result = settle(view, before, intent)
    assert isinstance(result, Settlement)
    assert result.verdict is verdict
    assert result.reason


def test_relaunch_reason_names_both_times() -> None:
    result = settle(server("ACTIVE", launched_at=LATER), BEFORE, INTENT)
    assert BEFORE in result.reason and LATER in result.reason


def test_rebuilding_reason_names_the_status() -> None:
    assert "REBUILD" in settle(server("REBUILD", "rebuilding"), BEFORE, INTENT).reason


# Without a launched_at from before the request, the launch time is compared with the
# intent less the skew allowance: erring towards "accepted".
@pytest.mark.parametrize(
    ("launched_at", "verdict"),
    [
        ("2027-01-15T08:00:05.000000", V.SUCCEEDED),  # after the intent
        ("2027-01-15T07:58:00.000000", V.SUCCEEDED),  # 2 min before: within skew
        ("2027-01-15T07:55:00.000000", V.SUCCEEDED),  # exactly intent - 5 min
        ("2027-01-15T07:54:59.999999", V.NOT_ACCEPTED),  # just before intent - skew
        ("2026-12-01T00:00:00.000000", V.NOT_ACCEPTED),  # long before
        ("2027-01-15T09:00:00+01:00", V.SUCCEEDED),  # 08:00 UTC, with a zone
        ("2027-01-15T08:54:00+01:00", V.NOT_ACCEPTED),  # 07:54 UTC
    ],
)
def test_no_before_value_uses_intent_less_skew(launched_at: str, verdict: Verdict) -> None:
    result = settle(server("ACTIVE", launched_at=launched_at), None, INTENT)
    assert result.verdict is verdict
    assert "clock skew" in result.reason
    assert str(int(DEFAULT_SKEW.total_seconds())) in result.reason


def test_no_before_value_relaunch_in_error_is_failed() -> None:
    result = settle(server("ERROR", launched_at="2027-01-15T08:00:05"), None, INTENT)
    assert result.verdict is V.FAILED
    assert "clock skew" in result.reason


def test_skew_allowance_is_a_parameter() -> None:
    view = server("ACTIVE", launched_at="2027-01-15T07:30:00")  # 30 min before the intent
    assert settle(view, None, INTENT).verdict is V.NOT_ACCEPTED
    wide = settle(view, None, INTENT, skew=timedelta(hours=1))
    assert wide.verdict is V.SUCCEEDED
    assert "3600" in wide.reason


@pytest.mark.parametrize(
    ("launched_at", "before", "intent"),
    [
        (None, None, INTENT),  # nothing known about the launch
        ("not a time", None, INTENT),
        (BEFORE, None, None),  # no intent time either
        (BEFORE, None, "garbage"),
        ("", None, INTENT),
    ],
)
def test_unknown_times_without_a_before_value(
    launched_at: str | None, before: str | None, intent: str | None
) -> None:
    # No evidence either way: "not accepted" would allow a second wipe, so the
    # target is reported as unverified instead, never resent.
    result = settle(server("SHUTOFF", launched_at=launched_at), before, intent)
    assert result.verdict is V.UNVERIFIED
    assert "not sent again" in result.reason


def test_unparseable_but_identical_launch_time_is_unchanged() -> None:
    odd = "13/01/2020 10:00"
    assert settle(server("SHUTOFF", launched_at=odd), odd, INTENT).verdict is V.NOT_ACCEPTED


@pytest.mark.parametrize(
    ("launched_at", "before"),
    [
        ("2020-03-02 10:00:00 UTC", BEFORE),  # the launch time changed to an odd format
        (LATER, "13/01/2020 10:00"),  # the recorded value was odd, the current one moved
    ],
)
def test_changed_launch_time_that_cannot_be_compared_is_not_taken_as_untouched(
    launched_at: str, before: str
) -> None:
    # launched_at is not what it was before the request: that is evidence of a relaunch.
    # Taking the server as untouched would send the reinstall again and wipe it twice;
    # the module errs towards "accepted" exactly to avoid that.
    result = settle(server("ACTIVE", launched_at=launched_at), before, INTENT)
    assert result.verdict is not V.NOT_ACCEPTED, result.reason


@pytest.mark.parametrize(
    ("view", "before", "verdict", "fragment"),
    [
        (server("REBUILD", "rebuilding"), BEFORE, V.REBUILDING, "still rebuilding"),
        (server("ACTIVE", "rebuild_spawning"), BEFORE, V.REBUILDING, "still rebuilding"),
        (server("ERROR"), BEFORE, V.FAILED, "ERROR"),
        (server("ERROR", launched_at=LATER), BEFORE, V.FAILED, "ERROR"),
        (server("ACTIVE", launched_at=LATER), BEFORE, V.SUCCEEDED, LATER),
        (server("ACTIVE", launched_at=LATER), None, V.SUCCEEDED, LATER),
        (server("SHUTOFF"), BEFORE, V.SUCCEEDED, "unverified"),
    ],
)
def test_follow_table(
    view: ServerView, before: str | None, verdict: Verdict, fragment: str
) -> None:
    result = follow(view, before)
    assert result.verdict is verdict
    assert fragment in result.reason


def test_follow_without_before_value_is_not_marked_unverified() -> None:
    assert "unverified" not in follow(server("ACTIVE"), None).reason


@pytest.mark.parametrize(
    ("view", "rebuilding"),
    [
        (server("REBUILD"), True),
        (server("ACTIVE", "rebuilding"), True),
        (server("ACTIVE", "rebuild_spawning"), True),
        (server("ACTIVE", "rebuild_block_device_mapping"), True),
        (server("ACTIVE", None), False),
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
