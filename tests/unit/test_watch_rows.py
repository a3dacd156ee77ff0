"""Which attached volume is the system disk, on a list row without boot indexes."""

from __future__ import annotations

import pytest

from orchestrator.cloud.interface import ServerView
from orchestrator.engine.watch import _system_disk_by


def reading(system: str | None, *attached: str) -> ServerView:
    return ServerView("s1", "ACTIVE", "active", None, None, system_volume=system, attached=attached)


@pytest.mark.parametrize(
    ("attached", "previous", "expected"),
    [
        # The system disk still attached: not replaced, whatever else changed.
        (("sys", "data"), reading("sys", "sys", "data"), "sys"),
        (("sys", "data", "more"), reading("sys", "sys", "data"), "sys"),
        # Gone, and one new volume in its place: that is the new system disk.
        (("new", "data"), reading("sys", "sys", "data"), "new"),
        (("new",), reading("sys", "sys"), "new"),
        # Gone, and no single volume took its place: cannot tell (read singly).
        (("new", "other", "data"), reading("sys", "sys", "data"), None),
        (("data",), reading("sys", "sys", "data"), None),
        # No previous reading that knew the system disk.
        (("sys",), None, None),
        (("sys",), reading(None, "sys"), None),
        (("sys",), ServerView("s1", "ACTIVE", None, None, None, system_volume="sys"), None),
    ],
)
def test_the_system_disk_is_told_from_the_previous_reading(
    attached: tuple[str, ...], previous: ServerView | None, expected: str | None
) -> None:
    assert _system_disk_by(attached, previous) == expected
