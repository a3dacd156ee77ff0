"""The shape of a campaign over time, from its events: one pass, memory by time, not targets.

Each event is a state change (or a note) of one target. Per second of the
campaign we count reinstalls submitted, targets finished (succeeded, failed),
throttled answers that left a trace in an event, and the change in the number
of targets in flight (in an active state: submitting, submitted, running, in
doubt). Seconds with no event cost nothing, so a 10-hour run holds at most
36,000 small counters whatever the fleet size; a campaign with more distinct
seconds than `MAX_KEYS` is counted in coarser steps.

`Timeline.bins` then folds the seconds into at most `bins` equal intervals
for the chart. `last_activity` (the latest event per invocation) tells the
history when an invocation that was killed last did something.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from orchestrator.model import ACTIVE_STATES, TargetState
from orchestrator.report.times import parse_timestamp

ACTIVE_NAMES = frozenset(state.value for state in ACTIVE_STATES)

# Above this many distinct time keys, the step doubles (seconds, 2 s, 4 s, ...).
MAX_KEYS = 100_000

# Text in an event's detail that shows the service throttled a request.
THROTTLE_MARKERS: tuple[str, ...] = ("throttl", "HTTP 429", "Common.0024", "flow limit")
_LOWERED = tuple(marker.lower() for marker in THROTTLE_MARKERS)

SUBMITTED, SUCCEEDED, FAILED, THROTTLED, ACTIVE_DELTA = range(5)


class EventLike(Protocol):
    """What the timeline reads of a state-file event."""

    @property
    def at(self) -> str: ...
    @property
    def invocation(self) -> int | None: ...
    @property
    def from_state(self) -> str | None: ...
    @property
    def to_state(self) -> str: ...
    @property
    def detail(self) -> str: ...


def is_throttle(detail: str | None) -> bool:
    if not detail:
        return False
    lowered = detail.lower()
    return any(marker in lowered for marker in _LOWERED)


@dataclass(frozen=True, slots=True)
class Bin:
    """One interval of the chart; `in_flight` is the count at its end."""

    start: float  # epoch seconds
    end: float
    submitted: int
    succeeded: int
    failed: int
    throttled: int
    in_flight: int


@dataclass
class Timeline:
    """Per-step counters of a campaign; build with `build_timeline`."""

    step: int = 1  # seconds per key
    counts: dict[int, list[int]] = field(default_factory=dict)  # key: epoch // step
    last_activity: dict[int, str] = field(default_factory=dict)  # invocation -> latest `at`
    events: int = 0
    throttle_events: int = 0
    throttle_samples: int = 0  # throttled answers from the samples, where the file has them
    count_event_throttles: bool = True  # off when samples give every throttled answer
    _latest: dict[int, float] = field(default_factory=dict)  # invocation -> latest epoch

    def add_throttled(self, at: str, count: int) -> None:
        """Throttled answers counted at `at` (the state file's samples)."""
        moment = parse_timestamp(at)
        if moment is None:
            return
        self._row(moment.timestamp())[THROTTLED] += count
        self.throttle_samples += count

    def add(self, event: EventLike) -> None:
        moment = parse_timestamp(event.at)
        if moment is None:
            return
        self.events += 1
        epoch = moment.timestamp()
        if event.invocation is not None:
            latest = self._latest.get(event.invocation)
            if latest is None or latest < epoch:
                self._latest[event.invocation] = epoch
                self.last_activity[event.invocation] = event.at
        row = self._row(epoch)
        to_state, from_state = event.to_state, event.from_state
        if self.count_event_throttles and is_throttle(event.detail):
            row[THROTTLED] += 1
            self.throttle_events += 1
        if from_state == to_state:
            return  # a note: no change of state
        if to_state == TargetState.SUBMITTED.value:
            row[SUBMITTED] += 1
        elif to_state == TargetState.SUCCEEDED.value:
            row[SUCCEEDED] += 1
        elif to_state == TargetState.FAILED.value:
            row[FAILED] += 1
        row[ACTIVE_DELTA] += (to_state in ACTIVE_NAMES) - (from_state in ACTIVE_NAMES)

    def _row(self, epoch: float) -> list[int]:
        key = int(epoch // self.step)
        row = self.counts.get(key)
        if row is None:
            if len(self.counts) >= MAX_KEYS:
                self._coarsen()
                return self._row(epoch)
            row = self.counts[key] = [0, 0, 0, 0, 0]
        return row

    def _coarsen(self) -> None:
        merged: dict[int, list[int]] = {}
        for key, row in self.counts.items():
            target = merged.setdefault(key // 2, [0, 0, 0, 0, 0])
            for i, value in enumerate(row):
                target[i] += value
        self.step *= 2
        self.counts = merged

    @property
    def start(self) -> float | None:
        return min(self.counts) * self.step if self.counts else None

    @property
    def end(self) -> float | None:
        return (max(self.counts) + 1) * self.step if self.counts else None

    def bins(self, bins: int = 120) -> list[Bin]:
        """At most `bins` equal intervals from the first event to the last."""
        if not self.counts:
            return []
        start, end = self.start, self.end
        assert start is not None and end is not None
        width = max((end - start) / bins, float(self.step))
        n = max(1, min(bins, int(-(-(end - start) // width))))
        sums = [[0, 0, 0, 0, 0] for _ in range(n)]
        for key, row in self.counts.items():
            index = min(int((key * self.step - start) // width), n - 1)
            for i, value in enumerate(row):
                sums[index][i] += value
        result: list[Bin] = []
        in_flight = 0
        for i, row in enumerate(sums):
            in_flight += row[ACTIVE_DELTA]
            result.append(
                Bin(
                    start=start + i * width,
                    end=min(start + (i + 1) * width, end),
                    submitted=row[SUBMITTED],
                    succeeded=row[SUCCEEDED],
                    failed=row[FAILED],
                    throttled=row[THROTTLED],
                    in_flight=max(in_flight, 0),
                )
            )
        return result


def build_timeline(
    events: Iterable[EventLike], throttled: Iterable[tuple[str, int]] | None = None
) -> Timeline:
    """The timeline of the events; throttled answers from `throttled` samples where
    given (each answer, at its commit), else from the events that mention them."""
    timeline = Timeline(count_event_throttles=throttled is None)
    for at, count in throttled or ():
        timeline.add_throttled(at, count)
    for event in events:
        timeline.add(event)
    return timeline


def epoch_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
