"""A finished state file of any size, made in minutes instead of running the fleet.

    .venv/bin/python benchmarks/make_state.py --count 1000000 OUT.state.sqlite
    .venv/bin/orchestrator status --json --state OUT.state.sqlite
    .venv/bin/orchestrator report --state OUT.state.sqlite --report-dir /tmp/again

What `status` and `report` read at the end of a real run, with nothing sent:
the inventory (`make_inventory.py`, beside the state file) is imported through
the store's own API (`StateStore.create`, as `run` does), one invocation is
recorded (`begin_invocation`/`end_invocation`, the rollout plan and its
"wave 1 started" decision), and then, in one transaction on the store's own
connection, every target takes the path an instant job takes in a real run:

    pending -> submitting -> submitted -> running -> succeeded | failed

with the run's columns (job id, attempts, launched_at before, intent, submit and
finish times, the job's own begin/end, the wave) and one event per change,
worded as the runner words them, in the order a run at `--rate` targets per
second would have written them. One target in `--fail-every` fails with one of
the simulator's error codes; one in 100 is seen succeeding at its first query
(no `running`), as in a real run. Every table matches, column by column, the
file `orchestrator run --simulate` leaves (compared on a 1,000-target run).
Deterministic under `--seed`, apart from the times, which end now.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_inventory import write_csv

from orchestrator.inventory.reader import InventoryReader
from orchestrator.rollout.options import PLAN_META_KEY
from orchestrator.rollout.report import ADAPTIVE_META_KEY
from orchestrator.simulator.jobs import FAILURES
from orchestrator.store.files import file_sha256
from orchestrator.store.records import RolloutRecord
from orchestrator.store.sqlite import StateStore

BATCH = 10_000
SUBMIT_S = 0.05  # intent -> job id
FIRST_QUERY_S = 0.06  # job id -> the first job query (RUNNING)
JOB_S = (0.8, 3.0)  # the job's own length, uniform
SEEN_S = 0.1  # the job's end -> the end committed (verification read)
POLL_CAP_S = 0.2  # the recorded --poll-cap
RUNNING_SKIPPED_EVERY = 100  # a job that already ended at its first query


class Clock:
    """The state store's timestamp format, with the seconds formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def _head(self, epoch: float) -> tuple[str, int]:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._text, second

    def micro(self, epoch: float, zone: str = "Z") -> str:
        head, second = self._head(epoch)
        return f"{head}.{int((epoch - second) * 1_000_000):06d}{zone}"

    def milli(self, epoch: float) -> str:
        """The service's job times: milliseconds."""
        head, second = self._head(epoch)
        return f"{head}.{int((epoch - second) * 1000):03d}Z"


def options(args: argparse.Namespace, report_dir: Path) -> dict[str, Any]:
    """The options a real `run --simulate` records (same keys), with this run's figures."""
    return {
        "auth": "simulator", "busy_recheck_delay": 2.0, "busy_rechecks": 3, "ca_bundle": None,
        "ca_bundle_source": "system", "cloud": None, "credentials": None,
        "drain_timeout": 60.0, "encoding": None, "endpoint": None, "endpoint_template": None,
        "first_poll": 0.02, "group_by": None, "job_timeout": 3600.0, "max_in_flight": 2000,
        "no_preflight": False, "os_cloud": None, "poll_cap": 0.2, "poll_rate": 100000.0,
        "rate": 100000.0, "region": None, "report_dir": str(report_dir),
        "request_options": {"byol": None, "cloud_init": None, "keyname": None, "mode": None,
                            "user_data_sha256": None, "userid": None},
        "rollout": {"canary": None, "confirm_waves": False, "deadline": None,
                    "expected_job_seconds": 900.0, "keep_going": False,
                    "max_consecutive_failures": 10, "max_failures": None,
                    "max_failures_per_project": None, "not_before": None,
                    "pause_between_waves": 0.0, "project_max_in_flight": None, "tz": None,
                    "waves": None, "window": None},
        "settle_quiet": 10.0, "shard": None, "simulate": True, "skip_reinstalled_since": None,
        "state": str(args.out), "user_data": None, "verify": True,
    }  # fmt: skip


Event = tuple[float, int, str, str, str]  # at, target id, from, to, detail
TargetRow = tuple[Any, ...]


def fleet(
    count: int, start: float, args: argparse.Namespace
) -> Iterator[tuple[TargetRow | None, list[Event]]]:
    """Per target in id order, its final row and its events; events also come out
    in the order a run writes them (a heap holds the ones still in the future)."""
    rng = random.Random(args.seed)
    clock = Clock()
    pending: list[Event] = []
    for tid in range(1, count + 1):
        intent = start + (tid - 1) / args.rate
        submitted = intent + SUBMIT_S
        queried = submitted + FIRST_QUERY_S
        begin = submitted + rng.uniform(0.02, 0.04)
        end = begin + rng.uniform(*JOB_S)
        finished = end + SEEN_S
        job = f"{rng.getrandbits(128):032x}"
        before = rng.uniform(1.58e9, 1.61e9)  # launched in 2020
        before_text = clock.micro(before, zone="")
        failed = args.fail_every > 0 and tid % args.fail_every == 0
        code, reason = FAILURES[tid % len(FAILURES)] if failed else (None, None)
        events: list[Event] = [
            (intent, tid, "pending", "submitting", "intent to send a reinstall"),
            (submitted, tid, "submitting", "submitted", f"accepted as job {job}"),
        ]
        last = "submitted"
        if tid % RUNNING_SKIPPED_EVERY:
            events.append((queried, tid, "submitted", "running", f"job {job} RUNNING"))
            last = "running"
        if failed:
            events.append((finished, tid, last, "failed", f"job {job} FAIL"))
        else:
            after = clock.micro(end - 0.001, zone="")
            events.append(
                (
                    finished,
                    tid,
                    last,
                    "succeeded",
                    f"job {job} SUCCESS, verified: server back (status ACTIVE, task state -;"
                    f" launched_at moved from {before_text} to {after})",
                )
            )
        finished_text = clock.micro(finished)
        row = (
            "failed" if failed else "succeeded",
            job,
            1,
            code,
            reason,
            before_text,
            clock.micro(intent),
            clock.micro(submitted),
            finished_text,
            finished_text,
            before_text,
            "SHUTOFF",
            clock.micro(before, zone="Z")[:19] + "Z",
            0,
            clock.milli(begin),
            clock.milli(end),
            1,
            tid,
        )
        ready: list[Event] = []
        for event in events:
            heapq.heappush(pending, event)
        while pending and pending[0][0] <= intent:
            ready.append(heapq.heappop(pending))
        yield row, ready
    rest = []
    while pending:
        rest.append(heapq.heappop(pending))
    yield None, rest


def job_queries(row: TargetRow) -> int:
    """The job queries of `--first-poll 0.02 --poll-cap 0.2`: about one per 0.2 s of job."""
    begin, end = (datetime.fromisoformat(row[i].replace("Z", "+00:00")) for i in (14, 15))
    return 1 + max(1, round((end - begin).total_seconds() / POLL_CAP_S))


UPDATE = (
    "UPDATE targets SET state = ?, job_id = ?, attempts = ?, error_code = ?, fail_reason = ?,"
    " launched_at_before = ?, intent_at = ?, submitted_at = ?, finished_at = ?, updated_at = ?,"
    " first_launched_at = ?, status_before = ?, updated_before = ?, not_accepted = ?,"
    " job_begin_at = ?, job_end_at = ?, wave = ? WHERE id = ?"
)
INSERT = (
    "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def make_state(args: argparse.Namespace) -> None:
    out: Path = args.out
    inventory = out.with_suffix(".inventory.csv")
    if not inventory.exists():
        write_csv(inventory, args.count, args.projects, args.seed)
    reader = InventoryReader(inventory)
    span = args.count / args.rate + JOB_S[1] + 1
    start = time.time() - span
    store = StateStore.create(
        out,
        iter(reader),
        inventory_path=str(inventory),
        inventory_sha256=file_sha256(inventory),
        extra_columns=lambda: reader.columns,
    )
    clock = Clock()
    with store:
        invocation = store.begin_invocation(options(args, out.parent / "reports"), str(inventory))
        plan = {"waves": None, "canary": None, "sizes": [args.count]}
        store.set_meta(PLAN_META_KEY, json.dumps(plan))
        store.add_rollout(
            [RolloutRecord("wave_started", f"wave 1 started ({args.count} targets)", wave=1)]
        )
        conn = store._conn  # one bulk transaction, as the brief of this script allows
        counters = {
            "requests.server": 2 * args.count,
            "requests.reinstall": args.count,
            "requests.job": 0,  # added up per target below
        }
        with store._transaction():
            rows: list[TargetRow] = []
            events: list[tuple[Any, ...]] = []
            for row, ready in fleet(args.count, start, args):
                if row is not None:
                    rows.append(row)
                    counters["requests.job"] += job_queries(row)
                events.extend(
                    (tid, clock.micro(at), invocation, old, new, detail)
                    for at, tid, old, new, detail in ready
                )
                if len(rows) >= BATCH:
                    conn.executemany(UPDATE, rows)
                    conn.executemany(INSERT, events)
                    rows.clear()
                    events.clear()
            conn.executemany(UPDATE, rows)
            conn.executemany(INSERT, events)
            conn.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?)", sorted(counters.items())
            )
            # The invocation's times as the synthetic run had them (it "ended" just now).
            ended = start + span
            conn.execute(
                "UPDATE runs SET started_at = ? WHERE id = ?",
                (clock.micro(start - 0.1), invocation),
            )
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'created_at'", (clock.micro(start - 0.15),)
            )
            conn.execute("UPDATE rollout SET at = ?", (clock.micro(start - 0.01),))
        rates = {
            f"{kind} {region}": {"rate": 100000.0, "ceiling": 100000.0, "throttles": 0, "cuts": 0}
            for kind in ("job", "reinstall", "server")
            for region in ("eu-de", "eu-nl")
        }
        store.set_meta(ADAPTIVE_META_KEY, json.dumps(rates))
        store.end_invocation("complete")
        with store._transaction():
            conn.execute(
                "UPDATE runs SET ended_at = ? WHERE id = ?", (clock.micro(ended), invocation)
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the state file to create (must not exist)")
    parser.add_argument("--count", type=int, required=True, help="number of targets")
    parser.add_argument("--projects", type=int, default=20, help="number of projects")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same fleet and jobs")
    parser.add_argument("--rate", type=float, default=600.0, help="targets per second of the run")
    parser.add_argument("--fail-every", type=int, default=1000, help="one target in N fails")
    args = parser.parse_args(argv)
    began = time.monotonic()
    make_state(args)
    print(f"{args.out}: {args.count} targets in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
