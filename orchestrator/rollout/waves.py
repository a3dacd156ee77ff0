"""Waves and the canary: which target goes in which wave, and when a wave may start.

`--waves 1,5,10%,100%` gives the size of each wave in inventory order, as a
count or a percentage of the fleet (rounded up, at least one); the last size
repeats until the fleet is covered. `--canary N` puts a first wave of N in
front that must fully succeed. Waves are numbered from 1. The assignment is a
pure function of the fleet size and the options, but the lead persists it at
the first run so that a resume with other options keeps the same plan.

Wave k starts only when every target of every earlier wave is final, and
`--pause-between-waves` after the last of them became final.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from orchestrator.errors import UsageError
from orchestrator.timetext import spoken

__all__ = [
    "WaveCounts",
    "WaveGate",
    "WaveSize",
    "assign_waves",
    "parse_canary",
    "parse_waves",
    "wave_gate",
    "wave_sizes",
]


@dataclass(frozen=True, slots=True)
class WaveSize:
    """A count of targets, or a percentage of the fleet."""

    count: int | None = None
    percent: float | None = None

    def resolve(self, fleet: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return max(1, math.ceil(self.percent * fleet / 100 - 1e-9))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_waves(text: str) -> tuple[WaveSize, ...]:
    """`1,5,10%,100%` for --waves."""
    sizes: list[WaveSize] = []
    for i, part in enumerate(text.split(","), start=1):
        item = part.strip()
        try:
            if item.endswith("%"):
                percent = float(item[:-1])
                if not (0 < percent <= 100):
                    raise ValueError
                sizes.append(WaveSize(percent=percent))
            else:
                count = int(item)
                if count < 1:
                    raise ValueError
                sizes.append(WaveSize(count=count))
        except ValueError:
            raise UsageError(
                f"--waves: item {i} ({item!r}) is not a count >= 1 or a percentage in (0, 100]%"
            ) from None
    return tuple(sizes)


def parse_canary(value: int) -> int:
    if value < 1:
        raise UsageError(f"--canary: {value} is not a number of servers >= 1")
    return value


def wave_sizes(fleet: int, waves: Sequence[WaveSize] = (), canary: int | None = None) -> list[int]:
    """The size of each wave, canary first, summing to `fleet`."""
    sizes: list[int] = []
    left = fleet
    if canary is not None and left > 0:
        sizes.append(min(canary, left))
        left -= sizes[-1]
    resolved = [w.resolve(fleet) for w in waves] or [fleet]
    i = 0
    while left > 0:
        size = min(resolved[min(i, len(resolved) - 1)], left)
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def assign_waves(
    fleet: int, waves: Sequence[WaveSize] = (), canary: int | None = None
) -> list[int]:
    """The wave number (from 1) of each target index, in inventory order."""
    numbers: list[int] = []
    for number, size in enumerate(wave_sizes(fleet, waves, canary), start=1):
        numbers.extend([number] * size)
    return numbers


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """What the state says about one wave."""

    total: int
    final: int = 0
    failed: int = 0  # final as FAILED, whatever the code: a canary must fully succeed
    last_final_at: datetime | None = None  # when its last target became final

    @property
    def done(self) -> bool:
        return self.final >= self.total


@dataclass(frozen=True, slots=True)
class WaveGate:
    """Whether wave k may start: `open`, or why not and until when."""

    open: bool
    canary_failed: bool = False
    waiting_for: int | None = None  # the earliest wave not yet final
    until: datetime | None = None  # a pause that ends at a known time
    why: str = ""


def wave_gate(
    wave: int,
    counts: Mapping[int, WaveCounts],
    now: datetime,
    *,
    pause_seconds: float = 0.0,
    canary: bool = False,
    zone: tzinfo = UTC,
) -> WaveGate:
    """May targets of `wave` be sent at `now`?

    With a canary, wave 1 is the canary: once any of it failed, nothing more is
    sent, not even the rest of the canary.
    """
    if canary:
        first = counts.get(1)
        if first is not None and first.failed > 0:
            return WaveGate(
                False, canary_failed=True, why=f"{first.failed} of {first.total} canaries failed"
            )
    for earlier in range(1, wave):
        c = counts.get(earlier)
        if c is not None and not c.done:
            return WaveGate(
                False,
                waiting_for=earlier,
                why=f"wave {earlier} not final yet ({c.final} of {c.total})",
            )
    previous = counts.get(wave - 1)
    if previous is not None and previous.last_final_at is not None and pause_seconds > 0:
        until = previous.last_final_at.astimezone(UTC) + timedelta(seconds=pause_seconds)
        if now < until:
            return WaveGate(
                False,
                until=until,
                why=f"--pause-between-waves: wave {wave} starts at {spoken(until, zone)}",
            )
    return WaveGate(True)
