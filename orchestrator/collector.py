"""The garbage collector's settings while a run's event loop runs.

CPython collects its youngest generation after every 700 net allocations of
container objects. A run allocates dozens per request (futures, tasks, header
dicts, Target copies); most are freed at once by reference counting, but those
alive at a collection (the in-flight requests' objects) are walked, promoted,
and then die in an older generation, which brings full collections sooner.
Measured on 20,000 targets (benchmarks/README.md, "Measured", target 1): 804
collections took 0.74 s, 5 % of the run's CPU; with the youngest generation's
threshold at 10,000, 16 collections took 0.05 s. Cycles are still collected,
in fewer, larger rounds: garbage waiting for one is at most ~10,000 objects.

Everything that exists when the loop starts (modules, the settings, the
client's caches) lives as long as the process: `gc.freeze()` keeps it out of
the generations, so a full collection does not walk it again. Frozen objects
are still freed by reference counting; only cycles among them would stay.

ORCHESTRATOR_GC=default keeps Python's own settings (to measure the difference).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

GC_ENV = "ORCHESTRATOR_GC"
YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """Within: the youngest generation collected every YOUNG_THRESHOLD allocations,
    and what exists on entry frozen. On exit both are as they were."""
    if os.environ.get(GC_ENV, "").strip().lower() == "default":
        yield
        return
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gc.set_threshold(YOUNG_THRESHOLD, *threshold[1:])
    gc.freeze()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if frozen == 0:  # frozen by us only: give them back (in-process callers, tests)
            gc.unfreeze()
