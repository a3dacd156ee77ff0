"""What the live view reads from a run: one read-only snapshot, taken a few times a second.

The panel and the plain progress lines never reach into the runner; whoever
runs a campaign hands them a `Callable[[], LiveStats]`. Everything here is
plain data: cumulative counters (the meter turns them into rates), the limits
they run against, and optional parts (waves, windows, adaptive rates) that are
None until the runner has them.

`FailureTap` collects the last few failures from the runner's state-change log
records (`to_state == "failed"`), until the runner keeps that list itself.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.model import ACTIVE_STATES, TargetState

# An API error code quoted in a change's detail ("rejected: Ecs.0100 ...").
_CODE = re.compile(r"\b(?:Ecs|Common|IMS|EVS|Orchestrator)\.\w+")


@dataclass(frozen=True, slots=True)
class FailureNote:
    """One recent failure, as the panel lists it."""

    project_id: str
    server_id: str
    error_code: str | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WaveInfo:
    """The wave being sent (rollout control); None where the run has no waves."""

    number: int  # 1-based
    of: int | None  # how many waves, when known
    size: int  # targets in this wave
    final: int  # of them, final so far


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The maintenance window; None where the run has none."""

    opens_at: datetime | None = None  # set while the run waits for the opening
    closes_at: datetime | None = None  # the deadline for new reinstalls
    note: str | None = None  # e.g. "waiting for 02:00 Europe/Berlin"


@dataclass(frozen=True, slots=True)
class LiveStats:
    """A snapshot of a run in progress. Counters are cumulative for this invocation."""

    counts: Mapping[TargetState, int]
    total: int
    requests: Mapping[str, int]  # sent, by kind: "reinstall", "job", "server"
    throttled: int  # throttling answers (429 Common.1503, 202 Common.0024)
    submit_limit: float  # --rate
    query_limit: float  # --poll-rate
    in_flight: int
    max_in_flight: int
    recent_failures: Sequence[FailureNote] = ()
    submit_rate_adaptive: float | None = None  # where pacing adapts: the rate it settled at
    query_rate_adaptive: float | None = None
    deferred: int | None = None
    wave: WaveInfo | None = None
    window: WindowInfo | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # more lines, label -> text

    @property
    def final(self) -> int:
        return self.counts.get(TargetState.SUCCEEDED, 0) + self.counts.get(TargetState.FAILED, 0)

    @property
    def submitted_requests(self) -> int:
        return self.requests.get("reinstall", 0)

    @property
    def query_requests(self) -> int:
        return self.requests.get("job", 0) + self.requests.get("server", 0)


def in_flight(counts: Mapping[TargetState, int]) -> int:
    """Targets a reinstall may be under way for (what --max-in-flight bounds)."""
    return sum(counts.get(state, 0) for state in ACTIVE_STATES)


class FailureTap(logging.Handler):
    """Keeps the last `keep` failures seen in the runner's state-change records.

    The runner logs each change with extras `project_id`, `server_id`,
    `from_state`, `to_state` and (when known) `error_code`. Without
    `error_code`, the change's detail stands in for it.
    """

    def __init__(self, keep: int = 5) -> None:
        super().__init__(logging.INFO)
        self._recent: deque[FailureNote] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "to_state", None) != TargetState.FAILED.value:
            return
        try:
            detail = record.getMessage().partition(": ")[2]
        except (TypeError, ValueError):
            detail = ""
        code = getattr(record, "error_code", None)
        if code is None:
            found = _CODE.search(detail)
            code = found.group(0) if found else None
        self._recent.append(
            FailureNote(
                project_id=str(getattr(record, "project_id", "?")),
                server_id=str(getattr(record, "server_id", "?")),
                error_code=code,
                detail=detail[:120],
            )
        )

    def recent(self) -> tuple[FailureNote, ...]:
        """Oldest first."""
        return tuple(self._recent)
