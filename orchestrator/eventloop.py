"""Which event loop a run uses: the standard one, or uvloop when asked for.

ORCHESTRATOR_LOOP=uvloop runs the same code on uvloop (`pip install
'ecs-reinstall-orchestrator[uvloop]'`). Measured for issue 10 (benchmarks/README.md)
it made no difference beyond the noise over aiohttp's client, and over the `http1`
pool it was slower (0.95–0.99 against 0.77–0.81 ms of CPU per target). So it stays
opt-in (and tested); without it installed the standard loop runs, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from orchestrator import collector

T = TypeVar("T")
LOOP_ENV = "ORCHESTRATOR_LOOP"


def loop_name() -> str:
    """'uvloop' when it was asked for and is installed, else 'asyncio'."""
    if os.environ.get(LOOP_ENV, "").strip().lower() != "uvloop":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        logging.getLogger("orchestrator").warning(
            "%s=uvloop but uvloop is not installed; using the standard event loop", LOOP_ENV
        )
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_name` names, the collector tuned for it
    (`orchestrator.collector`)."""
    with collector.tuned():
        if loop_name() == "uvloop":
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
        return asyncio.run(main)
