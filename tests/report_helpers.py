"""A real state file with a known campaign, for the report tests and the benchmark.

`make_campaign(path, count)` imports `count` targets and plays three invocations
through the state store's own `apply`, with event times fixed from T0:

    #1  sends the first 60 %, then is killed (no end recorded)
    #2  resumes: sends the rest, ends "complete"
    #3  a re-run with nothing left to do, ends "complete" one second later

Every `FAIL_EVERY`-th target fails (error code by project), every
`THROTTLE_EVERY`-th is first deferred by a 429 and sent again. Target 3 has a
hostile name and target FAIL_EVERY a hostile failure reason.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.model import TargetSpec, TargetState
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

S = TargetState
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
PROJECTS = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "c0ffee")
OWNERS = ("team-web", "team-data", "team-ops")
FAIL_EVERY = 7
THROTTLE_EVERY = 11
HOSTILE_NAME = '<script>alert("name")</script>&amp;'
# If this ever became markup, its handler would mark the page as taken over.
HOSTILE_REASON = (
    '</script><img src=x onerror="document.documentElement.dataset.pwned=1"> <!-- disk |broken|'
)
STEP = 0.25  # seconds between two targets being sent


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def server_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


# A name that reorders what follows it (U+202E) and colours a terminal (ESC).
REORDERING_NAME = "web-\u202eexe.txt\x1b[31m"


def name_of(n: int) -> str:
    if n == 5:
        return REORDERING_NAME
    return HOSTILE_NAME if n == 3 else f"web-{n:05d}"


@dataclass(frozen=True)
class Campaign:
    path: Path
    count: int
    failed: frozenset[int]  # target numbers (1-based, = target id)
    throttled: frozenset[int]
    end: datetime  # when #2 ended

    @property
    def succeeded(self) -> int:
        return self.count - len(self.failed)


def error_code_of(n: int) -> str:
    return f"Ecs.01{(n % len(PROJECTS)):02d}"


def specs(count: int) -> list[TargetSpec]:
    return [
        TargetSpec(
            project_id=PROJECTS[n % len(PROJECTS)],
            server_id=server_id(n),
            keyname="fleet-key",
            userid="u1",
            line=n + 1,
            region="eu-de",
            extra={"name": name_of(n), "owner": OWNERS[n % len(OWNERS)]},
        )
        for n in range(1, count + 1)
    ]


def _play(store: StateStore, n: int, start: datetime) -> list[Change]:
    """The changes of target n, sent at `start`."""
    at = [iso(start + timedelta(seconds=s)) for s in (0, 0.2, 1.0, 2.0 + (n % 5) * 0.5)]
    changes: list[Change] = []
    if n % THROTTLE_EVERY == 0:
        changes += [
            Change(
                n, S.PENDING, S.SUBMITTING, "sending", {"attempts": 1, "intent_at": at[0]}, at[0]
            ),
            Change(
                n,
                S.SUBMITTING,
                S.PENDING,
                "deferred: still refused after retries: HTTP 429 APIGW.0308: throttled",
                {},
                at[0],
            ),
        ]
    changes += [
        Change(n, S.PENDING, S.SUBMITTING, "sending", {"attempts": 1, "intent_at": at[0]}, at[0]),
        Change(
            n,
            S.SUBMITTING,
            S.SUBMITTED,
            f"accepted as job job-{n}",
            {"job_id": f"job-{n}", "submitted_at": at[1]},
            at[1],
        ),
        Change(n, S.SUBMITTED, S.RUNNING, f"job job-{n} RUNNING", {}, at[2]),
    ]
    if n % FAIL_EVERY == 0:
        reason = HOSTILE_REASON if n == FAIL_EVERY else f"job failed on server {n}"
        fields = {"error_code": error_code_of(n), "fail_reason": reason, "finished_at": at[3]}
        changes.append(Change(n, S.RUNNING, S.FAILED, f"job job-{n} FAIL", fields, at[3]))
    else:
        changes.append(
            Change(n, S.RUNNING, S.SUCCEEDED, f"job job-{n} SUCCESS", {"finished_at": at[3]}, at[3])
        )
    return changes


def make_campaign(path: Path, count: int, *, batch: int = 5000) -> Campaign:
    store = StateStore.create(
        path,
        specs(count),
        inventory_path="fleet.csv",
        inventory_sha256="ab" * 32,
        extra_columns=lambda: ("name", "owner"),
    )
    killed_after = int(count * 0.6)
    times: list[tuple[str, str | None]] = []
    try:
        store.begin_invocation({"rate": 4.0, "max_in_flight": 50, "api_token": "SECRET"}, None)
        pending: list[Change] = []
        for n in range(1, killed_after + 1):
            pending += _play(store, n, T0 + timedelta(seconds=n * STEP))
            if len(pending) >= batch:
                store.apply(pending)
                pending = []
        store.apply(pending, {"requests.reinstall": count, "throttled": 3})
        times.append((iso(T0), None))  # killed: no end

        resume_at = T0 + timedelta(seconds=killed_after * STEP + 120)
        store.begin_invocation({"rate": 8.0, "max_in_flight": 50}, None)
        pending = []
        last = resume_at
        for n in range(killed_after + 1, count + 1):
            last = resume_at + timedelta(seconds=(n - killed_after) * STEP)
            pending += _play(store, n, last)
            if len(pending) >= batch:
                store.apply(pending)
                pending = []
        store.apply(pending)
        end = last + timedelta(seconds=5)
        store.end_invocation("complete")
        times.append((iso(resume_at), iso(end)))

        store.begin_invocation({"rate": 8.0, "max_in_flight": 50}, None)
        store.end_invocation("complete")
        times.append((iso(end + timedelta(hours=1)), iso(end + timedelta(hours=1, seconds=1))))
    finally:
        store.close()
    # The runs table records wall-clock times; pin them to the campaign's clock.
    with sqlite3.connect(path) as conn:
        for number, (started, ended) in enumerate(times, start=1):
            conn.execute(
                "UPDATE runs SET started_at = ?, ended_at = ? WHERE id = ?",
                (started, ended, number),
            )
        # The throttled answers' samples carry the wall clock too: pin them to the moment
        # of the first invocation's throttled deferrals.
        conn.execute("UPDATE samples SET at = ?", (iso(T0 + timedelta(seconds=11 * STEP)),))
    return Campaign(
        path=path,
        count=count,
        failed=frozenset(n for n in range(1, count + 1) if n % FAIL_EVERY == 0),
        throttled=frozenset(n for n in range(1, count + 1) if n % THROTTLE_EVERY == 0),
        end=end,
    )
