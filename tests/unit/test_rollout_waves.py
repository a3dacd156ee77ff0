"""Waves and canary: parsing, the assignment in inventory order, and the gate, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.errors import UsageError
from orchestrator.rollout.waves import (
    WaveCounts,
    WaveSize,
    assign_waves,
    parse_canary,
    parse_waves,
    wave_gate,
    wave_sizes,
)

T0 = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)


def test_parse_waves() -> None:
    assert parse_waves("1, 5,10%,100%") == (
        WaveSize(count=1),
        WaveSize(count=5),
        WaveSize(percent=10.0),
        WaveSize(percent=100.0),
    )
    assert [str(w) for w in parse_waves("2,12.5%")] == ["2", "12.5%"]


@pytest.mark.parametrize("text", ["", "0", "-1", "1,,2", "0%", "101%", "x", "5%%"])
def test_parse_waves_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--waves: item"):
        parse_waves(text)


def test_parse_canary() -> None:
    assert parse_canary(3) == 3
    with pytest.raises(UsageError, match="--canary"):
        parse_canary(0)


@pytest.mark.parametrize(
    ("fleet", "waves", "canary", "sizes"),
    [
        (0, "1,5", None, []),
        (10, "", None, [10]),  # no waves: one wave of everything
        (100, "1,5,10%,100%", None, [1, 5, 10, 84]),
        (100, "1,5,10%", None, [1, 5, *[10] * 9, 4]),  # last size repeats
        (3, "1,5,10%", None, [1, 2]),
        (7, "10%", None, [1] * 7),  # rounded up, at least one
        (1000, "2.5%", None, [25] * 40),
        (100, "10,100%", 2, [2, 10, 88]),  # canary in front
        (1, "10", 3, [1]),
        (5, "", 2, [2, 3]),
    ],
)
def test_wave_sizes(fleet: int, waves: str, canary: int | None, sizes: list[int]) -> None:
    parsed = parse_waves(waves) if waves else ()
    assert wave_sizes(fleet, parsed, canary) == sizes
    numbers = assign_waves(fleet, parsed, canary)
    assert len(numbers) == fleet
    # Stable and in inventory order: non-decreasing, numbered from 1 without gaps.
    assert numbers == sorted(numbers)
    assert sorted(set(numbers)) == list(range(1, len(sizes) + 1))
    assert [numbers.count(k) for k in range(1, len(sizes) + 1)] == sizes


def test_assign_waves_example() -> None:
    assert assign_waves(8, parse_waves("1,3"), canary=None) == [1, 2, 2, 2, 3, 3, 3, 4]


DONE = WaveCounts(total=5, final=5, last_final_at=T0)


@pytest.mark.parametrize(
    ("wave", "counts", "now", "pause", "canary", "open", "why"),
    [
        (1, {}, T0, 0.0, False, True, ""),
        (1, {1: WaveCounts(total=5)}, T0, 60.0, False, True, ""),
        (2, {1: WaveCounts(total=5, final=4)}, T0, 0.0, False, False, "wave 1 not final"),
        (2, {1: DONE}, T0, 0.0, False, True, ""),
        # Every earlier wave, not only the one before.
        (3, {1: WaveCounts(total=5, final=3), 2: DONE}, T0, 0.0, False, False, "wave 1"),
        # The pause counts from the moment the previous wave's last target was final.
        (2, {1: DONE}, T0 + timedelta(seconds=59), 60.0, False, False, "pause-between"),
        (2, {1: DONE}, T0 + timedelta(seconds=60), 60.0, False, True, ""),
        # A failed canary stops everything, the canary's own remaining targets too.
        (2, {1: WaveCounts(total=2, final=2, failed=1)}, T0, 0.0, True, False, "1 of 2 canar"),
        (1, {1: WaveCounts(total=3, final=1, failed=1)}, T0, 0.0, True, False, "canar"),
        # Without --canary a failure in wave 1 does not hold wave 2 (budgets do that).
        (2, {1: WaveCounts(total=2, final=2, failed=1)}, T0, 0.0, False, True, ""),
        (2, {1: WaveCounts(total=2, final=2)}, T0, 0.0, True, True, ""),
    ],
)
def test_wave_gate(
    wave: int,
    counts: dict[int, WaveCounts],
    now: datetime,
    pause: float,
    canary: bool,
    open: bool,
    why: str,
) -> None:
    gate = wave_gate(wave, counts, now, pause_seconds=pause, canary=canary)
    assert gate.open is open
    assert why in gate.why
    if "pause" in why:
        assert gate.until == T0 + timedelta(seconds=pause)
