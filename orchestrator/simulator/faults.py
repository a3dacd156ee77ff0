"""Injected faults, drawn from one `random.Random(seed)` stream, or scripted.

Unlike per-server properties these depend on request order, as real transient
faults do; a fixed seed still makes a single-client run repeatable.

`ScriptedFaults` puts faults a test names before the draws: "the next reinstall
that reaches the fault checks is answered 500", "the next one acted on loses its
answer". The in-memory cloud (`orchestrator.cloud.fake`) uses it so a runner test
meets exactly the fault it is about, not one drawn at some rate.
"""

from __future__ import annotations

import random
from collections import deque
from enum import StrEnum

from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault
from orchestrator.simulator.stats import API_KINDS


class Faults:
    """The faults of `config`'s rates. `kind` (reinstall, job, server) is the API a
    request is for; the draws do not depend on it, so the stream stays one per seed."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._rng = random.Random(config.seed)
        self._error_rate = config.error_rate
        self._busy_rate = config.busy_rate
        self._drop_rate = config.drop_rate
        self._after_acting_rate = config.error_after_acting_rate
        self._slow_rate = config.slow_answer_rate

    # A rate of 0 draws nothing, so enabling one fault does not shift the others.
    def _hit(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate

    def server_error(self, kind: str) -> ApiFault | None:
        """A 500 or 503, refused before acting; None most of the time."""
        return self._5xx() if self._hit(self._error_rate) else None

    def error_after_acting(self) -> ApiFault | None:
        """A 500 or 503 in place of the answer of a reinstall that was acted on."""
        return self._5xx() if self._hit(self._after_acting_rate) else None

    def slow(self) -> bool:
        """Whether to hold the answer of a reinstall that was acted on."""
        return self._hit(self._slow_rate)

    def _5xx(self) -> ApiFault:
        if self._rng.random() < 0.5:
            return ApiFault("Common.0001")
        return ApiFault("APIGW.0203", "The service is temporarily unavailable.")

    def busy(self, kind: str) -> ApiFault | None:
        """501 Ecs.0603, refused before acting."""
        return ApiFault("Ecs.0603") if self._hit(self._busy_rate) else None

    def drop(self) -> bool:
        """Whether to close the connection instead of answering an applied reinstall."""
        return self._hit(self._drop_rate)


class Scripted(StrEnum):
    """A fault named for the next request of one kind (`ScriptedFaults.script`)."""

    ERROR = "error"  # 500 Common.0001, before acting
    BUSY = "busy"  # 501 Ecs.0603, before acting
    DROP = "drop"  # a reinstall acted on; the connection closed instead of the answer
    ERROR_AFTER_ACTING = "error_after_acting"  # a reinstall acted on, answered 500


# Faults that happen after the service acted: only a reinstall acts.
AFTER_ACTING = frozenset({Scripted.DROP, Scripted.ERROR_AFTER_ACTING})


class ScriptedFaults(Faults):
    """Faults in the order a test scripted them per kind, then the seeded draws.

    Each kind's script is a queue: its head applies to the first request of that kind
    to reach the stage where that fault happens (ERROR and BUSY at the checks before
    acting, DROP and ERROR_AFTER_ACTING once a reinstall was acted on), then the next
    entry is the head. A request refused earlier (auth, a server busy with a job)
    leaves the head for the next one.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self._script: dict[str, deque[Scripted]] = {kind: deque() for kind in API_KINDS}

    def script(self, kind: str, *faults: Scripted) -> None:
        """Add `faults` to the script of `kind` (reinstall, job, server)."""
        if kind not in self._script:
            raise ValueError(f"kind must be one of {', '.join(API_KINDS)}, got {kind!r}")
        wanted = [Scripted(f) for f in faults]
        for fault in wanted:
            if fault in AFTER_ACTING and kind != "reinstall":
                raise ValueError(f"{fault.value} happens only to a reinstall, not to a {kind}")
        self._script[kind].extend(wanted)

    def left(self) -> dict[str, list[Scripted]]:
        """What no request has met yet, by kind."""
        return {kind: list(queue) for kind, queue in self._script.items() if queue}

    def _take(self, kind: str, fault: Scripted) -> bool:
        queue = self._script[kind]
        if queue and queue[0] is fault:
            queue.popleft()
            return True
        return False

    def server_error(self, kind: str) -> ApiFault | None:
        if self._take(kind, Scripted.ERROR):
            return ApiFault("Common.0001")
        return super().server_error(kind)

    def busy(self, kind: str) -> ApiFault | None:
        if self._take(kind, Scripted.BUSY):
            return ApiFault("Ecs.0603")
        return super().busy(kind)

    def drop(self) -> bool:
        return self._take("reinstall", Scripted.DROP) or super().drop()

    def error_after_acting(self) -> ApiFault | None:
        if self._take("reinstall", Scripted.ERROR_AFTER_ACTING):
            return ApiFault("Common.0001")
        return super().error_after_acting()
