"""preflight.classify, row by row: what one server reading means for a reinstall."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.cloud.client import ServerView
from orchestrator.engine.preflight import BLOCKING, Finding, classify
from orchestrator.model import TargetSpec

F = Finding
SINCE = datetime(2026, 11, 1, tzinfo=UTC)


def server(
    status: str | None = "SHUTOFF",
    task_state: str | None = None,
    *,
    locked: bool | None = False,
    disk: bool | None = True,
    launched_at: str | None = "2025-01-01T00:00:00.000000",
) -> ServerView:
    return ServerView(
        server_id="s1",
        status=status,
        vm_state=None,
        task_state=task_state,
        launched_at=launched_at,
        updated=None,
        locked=locked,
        system_disk=disk,
    )


def spec(mode: str | None = None) -> TargetSpec:
    return TargetSpec("p1", "s1", "key", "user", line=2, mode=mode)


CASES = [
    # (reading, mode, skip since, finding)
    (server(), None, None, F.READY),
    (server("ACTIVE"), "withStopServer", None, F.READY),
    (server("ACTIVE"), None, None, F.RUNNING),
    (server(locked=True), None, None, F.LOCKED),
    (server("ACTIVE", locked=True), None, None, F.LOCKED),  # locked is named first
    (server(locked=None), None, None, F.READY),  # the answer did not say: no claim
    (server(disk=False), None, None, F.NO_SYSTEM_DISK),
    (server(disk=None), None, None, F.READY),
    (server("REBUILD", "rebuilding"), None, None, F.BUSY),
    (server("SHUTOFF", "rebuild_spawning"), None, None, F.BUSY),
    (server("ACTIVE", "powering-off"), "withStopServer", None, F.BUSY),
    (server("SHUTOFF", "powering-on"), None, None, F.BUSY),
    (server("REBOOT"), None, None, F.BUSY),
    (server("MIGRATING"), None, None, F.BUSY),
    (server("RESIZE"), None, None, F.BUSY),
    (server("ERROR"), None, None, F.NOT_REINSTALLABLE),
    (server("ERROR", "deleting"), None, None, F.BUSY),
    (server("SHELVED"), None, None, F.NOT_REINSTALLABLE),
    (server("VERIFY_RESIZE"), None, None, F.NOT_REINSTALLABLE),
    (server("DELETED"), None, None, F.NOT_REINSTALLABLE),
    (server("UNKNOWN"), None, None, F.NOT_REINSTALLABLE),
    (server(None), None, None, F.NOT_REINSTALLABLE),  # no status: harder assumption
    (server(launched_at="2026-11-20T10:00:00.000000"), None, SINCE, F.WOULD_SKIP),
    (server(launched_at="2026-10-20T10:00:00.000000"), None, SINCE, F.READY),
    (server(launched_at=None), None, SINCE, F.READY),
    # A blocker wins over a skip: the operator must know either way.
    (server("ERROR", launched_at="2026-11-20T10:00:00"), None, SINCE, F.NOT_REINSTALLABLE),
]


@pytest.mark.parametrize(("reading", "mode", "since", "expected"), CASES)
def test_classify(
    reading: ServerView, mode: str | None, since: datetime | None, expected: Finding
) -> None:
    verdict = classify(reading, spec(mode), skip_since=since)
    assert verdict.finding is expected, verdict.reason
    assert verdict.blocks is (expected in BLOCKING)
    assert verdict.reason


def test_what_blocks() -> None:
    assert {F.READY, F.WOULD_SKIP, F.DONE, F.IN_FLIGHT}.isdisjoint(BLOCKING)
    assert set(Finding) - BLOCKING == {F.READY, F.WOULD_SKIP, F.DONE, F.IN_FLIGHT}
