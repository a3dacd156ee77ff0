"""The state store's own CPU per target, near the end of a small and of a large state file.

Issue 10 target 3 asks for the same CPU per target at 1,000,000 targets as at
20,000; a full 1M run costs half an hour of both cores. This measures only what
grows with the file: the last `--tail` targets of a finished state file (made by
`make_state.py`, copied first) are put back to pending, then taken through the
run's writes as the runner's group commit issues them (`StateStore.apply` in
batches, intents, job ids, RUNNING, the end, each with its event; the feed's
`pending_after` pages; `counts` as the end of a run reads it), and the thread's
CPU time is divided by the targets.

    .venv/bin/python benchmarks/make_state.py --count 100000 /tmp/s100k.sqlite
    .venv/bin/python benchmarks/make_state.py --count 1000000 /tmp/s1m.sqlite
    .venv/bin/python benchmarks/store_growth.py /tmp/s100k.sqlite /tmp/s1m.sqlite
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.model import TargetState
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

S = TargetState
PAGE = 1000  # the runner's FEED_PAGE
PER_STEP = 50  # targets per step and commit: 200 changes per group commit
STEPS = (  # (old, new, detail) of an instant job, as the runner writes them
    (S.PENDING, S.SUBMITTING, "intent to send a reinstall"),
    (S.SUBMITTING, S.SUBMITTED, "accepted as job {job}"),
    (S.SUBMITTED, S.RUNNING, "job {job} RUNNING"),
    (S.RUNNING, S.SUCCEEDED, "job {job} SUCCESS, verified: server back"),
)


def reopen_tail(path: Path, tail: int) -> int:
    """Put the last `tail` targets back to pending (no job, no events); the first id."""
    with StateStore.open(path) as store:
        conn = store._conn  # a benchmark's bulk reset: no API puts final targets back
        total = conn.execute("SELECT max(id) FROM targets").fetchone()[0]
        first = total - tail + 1
        with store._transaction():
            conn.execute(
                "UPDATE targets SET state = 'pending', job_id = NULL, intent_at = NULL,"
                " submitted_at = NULL, finished_at = NULL, error_code = NULL,"
                " fail_reason = NULL, job_begin_at = NULL, job_end_at = NULL WHERE id >= ?",
                (first,),
            )
            conn.execute("DELETE FROM events WHERE target_id >= ?", (first,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(first)


def replay(path: Path, first: int) -> tuple[int, float]:
    """The run's writes for every pending target; (targets, CPU seconds of this thread).

    A pipeline: each commit holds the intents of `PER_STEP` new targets, the job
    ids of the previous ones, RUNNING of the ones before, and the ends of the
    ones before those, as a steady run's group commits do.
    """
    with StateStore.open(path) as store:
        store.begin_invocation({"benchmark": "store_growth"}, None)
        began = time.thread_time()
        feed: deque[int] = deque()
        after, feed_done, done = first - 1, False, 0
        stages: list[list[int]] = [[] for _ in STEPS]  # the ids each step takes next
        while True:
            if len(feed) < PER_STEP and not feed_done:
                page = store.pending_after(after, PAGE)
                feed_done = not page
                if page:
                    after = page[-1].id
                    feed.extend(t.id for t in page)
            stages[0] = [feed.popleft() for _ in range(min(PER_STEP, len(feed)))]
            if not any(stages):
                break
            changes = [
                Change(
                    tid,
                    old,
                    new,
                    detail.format(job=f"{tid:032x}"),
                    {"job_id": f"{tid:032x}"} if new is S.SUBMITTED else {},
                )
                for (old, new, detail), ids in zip(STEPS, stages, strict=True)
                for tid in ids
            ]
            if not all(store.apply(changes, {"requests.job": len(stages[2])})):
                raise SystemExit("a change did not apply: the file is not what it should be")
            done += len(stages[-1])
            stages = [[], *stages[:-1]]
        store.counts()
        return done, time.thread_time() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("states", type=Path, nargs="+", help="finished state files")
    parser.add_argument("--tail", type=int, default=20_000, help="targets replayed per file")
    args = parser.parse_args(argv)
    print("targets in file | replayed | store CPU ms per target")
    for source in args.states:
        with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
            copy = Path(tmp) / source.name
            shutil.copyfile(source, copy)
            first = reopen_tail(copy, args.tail)
            done, cpu = replay(copy, first)
        print(f"{first + args.tail - 1:>15,} | {done:>8,} | {1000 * cpu / done:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
