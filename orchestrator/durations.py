"""A duration in seconds as a person reads it: `0.25 s`, `11.4 s`, `900 s`.

Durations the run measures (a job's p90, an overrun, a wait) carry digits nobody
needs at 02:00 (`11.4072 s`); every message that shows seconds says them through
`seconds_text`: two significant digits under a second, one decimal under a hundred
seconds (none when it is .0), whole seconds above.
"""

from __future__ import annotations

import math

__all__ = ["seconds_text"]


def seconds_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return f"{seconds} s"
    size = abs(seconds)
    if size >= 100:
        return f"{round(seconds)} s"
    if size >= 1:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    if size == 0:
        return "0 s"
    return f"{seconds:.2g} s"
