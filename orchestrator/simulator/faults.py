"""Injected faults, drawn from one `random.Random(seed)` stream.

Unlike per-server properties these depend on request order, as real transient
faults do; a fixed seed still makes a single-client run repeatable.
"""

from __future__ import annotations

import random

from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault


class Faults:
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

    def server_error(self) -> ApiFault | None:
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

    def busy(self) -> ApiFault | None:
        """501 Ecs.0603, refused before acting."""
        return ApiFault("Ecs.0603") if self._hit(self._busy_rate) else None

    def drop(self) -> bool:
        """Whether to close the connection instead of answering an applied reinstall."""
        return self._hit(self._drop_rate)
