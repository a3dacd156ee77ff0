"""verify.check_back, row by row: is a server back after its job said SUCCESS?"""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.cloud.client import ServerView
from orchestrator.engine.settle import Before, Clock, Verdict
from orchestrator.engine.verify import check_back

V = Verdict
OLD = "2025-01-01T00:00:00.000000"
NEW = "2026-11-30T10:05:00.000000"
INTENT = "2026-11-30T10:00:00+00:00"
CLOCK = Clock(intent_at=INTENT, intent_error=2.0, watched=360.0, quiet=600.0)


def server(status: str, launched_at: str | None = NEW, task_state: str | None = None) -> ServerView:
    return ServerView("s1", status, None, task_state, launched_at)


def on_disk(view: ServerView, volume: str) -> ServerView:
    return replace(view, system_volume=volume)


DISK_BEFORE = Before(launched_at=OLD, status="SHUTOFF", volume="vol-1")
SHUTOFF_BEFORE = Before(launched_at=OLD, status="SHUTOFF")
ACTIVE_BEFORE = Before(launched_at=OLD, status="ACTIVE")

CASES = [
    (server("ACTIVE"), SHUTOFF_BEFORE, V.SUCCEEDED),
    (server("ACTIVE"), ACTIVE_BEFORE, V.SUCCEEDED),
    (server("SHUTOFF"), SHUTOFF_BEFORE, V.SUCCEEDED),  # stopped before, stopped after
    (server("SHUTOFF"), ACTIVE_BEFORE, V.WAIT),  # was running: not back yet
    (server("ERROR"), SHUTOFF_BEFORE, V.FAILED),  # success_but_error
    (server("ERROR", OLD), SHUTOFF_BEFORE, V.FAILED),
    (server("ACTIVE", OLD), SHUTOFF_BEFORE, V.WAIT),  # success_but_stale: read again, then fail
    (server("ACTIVE", "2024-06-01T00:00:00"), SHUTOFF_BEFORE, V.WAIT),  # older than before
    (server("ACTIVE", None), SHUTOFF_BEFORE, V.WAIT),  # unreadable launched_at
    (server("REBUILD", NEW, "rebuilding"), SHUTOFF_BEFORE, V.WAIT),
    (server("ACTIVE", NEW, "powering-on"), SHUTOFF_BEFORE, V.WAIT),
    (server("REBOOT"), SHUTOFF_BEFORE, V.WAIT),
    # The latest attempt's reading counts, not the first's: relaunched between
    # attempts proves nothing about this job.
    (
        server("ACTIVE", "2026-01-01T00:00:00"),
        Before("2026-01-01T00:00:00", "SHUTOFF", None, OLD),
        V.WAIT,
    ),
    # Without a reading before (--no-preflight): against the intent on the service's clock.
    (server("ACTIVE", "2026-11-30T10:00:05"), Before(), V.SUCCEEDED),
    (server("ACTIVE", "2026-11-30T10:00:01"), Before(), V.WAIT),  # within the clock's error
    (server("ACTIVE", "2026-11-30T09:58:00"), Before(), V.WAIT),  # before the intent
    (server("ACTIVE", "2026-11-30T09:00:00"), Before(), V.WAIT),
    (server("SHUTOFF", NEW), Before(), V.SUCCEEDED),
    # Only the first attempt's value known: it is the reference.
    (server("ACTIVE"), Before(first_launched_at=OLD), V.SUCCEEDED),
    # The system disk decides where it is known: replaced with launched_at unchanged (a
    # cloud that does not move it) is back; launched_at moved on the same disk (a start
    # moves it) is not a reinstall.
    (on_disk(server("ACTIVE", OLD), "vol-2"), DISK_BEFORE, V.SUCCEEDED),
    (on_disk(server("SHUTOFF", OLD), "vol-2"), DISK_BEFORE, V.SUCCEEDED),
    (on_disk(server("ACTIVE"), "vol-1"), DISK_BEFORE, V.WAIT),
    # The disk not shown (no boot index): launched_at decides.
    (server("ACTIVE"), DISK_BEFORE, V.SUCCEEDED),
    (server("ACTIVE", OLD), DISK_BEFORE, V.WAIT),
    # Only the first attempt's volume known: it is the reference.
    (on_disk(server("ACTIVE", OLD), "vol-2"), Before(OLD, first_volume="vol-1"), V.SUCCEEDED),
]


@pytest.mark.parametrize(("reading", "before", "expected"), CASES)
def test_check_back(reading: ServerView, before: Before, expected: Verdict) -> None:
    result = check_back(reading, before, CLOCK)
    assert result.verdict is expected, result.reason
    assert result.reason
