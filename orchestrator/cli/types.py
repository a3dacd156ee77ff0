"""Option types of the command line that refuse what no option means: nan, inf, and
negative durations and rates.

`float` lets "nan", "inf" and "-1" through, and click's FloatRange lets nan through
(every comparison with nan is false). A duration of nan or inf hangs a run or
makes it send nothing; so every number option goes through `Number`, which fails
with click's usage error (exit 2, the option named) before anything is created.

    SECONDS     a finite duration >= 0         POSITIVE  a finite number > 0
    SHARE       a finite number in [0, 1]      Number(min=, max=, min_open=)  others
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    _FloatType = click.ParamType[float]
else:  # generic only from click 8.4 on
    _FloatType = click.ParamType


class Number(_FloatType):
    """A finite float within [min, max] (min excluded when `min_open`)."""

    name = "number"

    def __init__(
        self,
        *,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        metavar: str = "NUMBER",
    ) -> None:
        self.min = min
        self.max = max
        self.min_open = min_open
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self.metavar

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        # The option's name leads the message, as the project's other usage errors do.
        name = param.opts[0] if param is not None and param.opts else "the value"
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{name} must be a number, got {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{name} must be a finite number, got {value!r}", param, ctx)
        below = self.min is not None and (
            number < self.min or (self.min_open and number == self.min)
        )
        if below or (self.max is not None and number > self.max):
            self.fail(f"{name} must be {self.wanted()}, got {value!r}", param, ctx)
        return number

    def wanted(self) -> str:
        if self.min is not None and self.max is not None:
            return f"a number in [{self.min:g}, {self.max:g}]"
        if self.min == 0 and self.min_open:
            return "a positive number"
        if self.min is not None:
            return f"a number {'>' if self.min_open else '>='} {self.min:g}"
        if self.max is not None:
            return f"a number <= {self.max:g}"
        return "a finite number"

    def __repr__(self) -> str:
        return f"Number(min={self.min}, max={self.max}, min_open={self.min_open})"


SECONDS = Number(min=0.0, metavar="SECONDS")
POSITIVE_SECONDS = Number(min=0.0, min_open=True, metavar="SECONDS")
POSITIVE = Number(min=0.0, min_open=True)
SHARE = Number(min=0.0, max=1.0, metavar="SHARE")
