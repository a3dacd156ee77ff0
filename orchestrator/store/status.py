"""Reading a state file for `status`, safely while a run writes it.

This module only reads, through its own connection: `mode=ro` (it cannot write,
so it never takes SQLite's write lock, and never the run's `.lock` file either),
`query_only`, and a short busy timeout, so it gives up quickly rather than wait.
In WAL mode a reader neither blocks nor is blocked by the writer; all queries
run in one read transaction, so the counts, failures and runs agree with each
other. Everything is an aggregate or a bounded list: a status of a 100,000-target
file reads no per-target rows beyond the examples it prints.

The queries are written as the store's are (SQL both databases accept, `?`
placeholders, states by their `TargetState` value) and run unchanged on a
PostgreSQL campaign's read-only snapshot; the tables a file holds are read by the
same introspection as the store's (`schema.sqlite_table_names`). They do not go
through `StateStore.open`: that checks the whole file (`PRAGMA quick_check`, a
read of every page) and may wait on its busy timeout, where `status` must answer
at once and never stand in a run's way.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from orchestrator.console.status_view import (
    DeferredTarget,
    FailureGroup,
    InvocationView,
    StatusSnapshot,
    TargetRef,
)
from orchestrator.errors import StateError
from orchestrator.model import TargetState
from orchestrator.report.times import parse_timestamp
from orchestrator.store import is_dsn, pg_location
from orchestrator.store.files import check_state_file
from orchestrator.store.schema import sqlite_table_names

BUSY_TIMEOUT_MS = 250
UNKNOWN_CODE = "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alive(pid: int | None) -> bool:
    """Whether a process with this id exists (the run's; same host assumed)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    check_state_file(path)  # a regular SQLite file: never a device or a pipe
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state file {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = 1")
        yield conn
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise StateError(f"state file {path} is busy right now; try again in a moment") from exc
        raise StateError(f"cannot read state file {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StateError(f"state file {path} is unreadable or corrupt: {exc}") from exc
    finally:
        conn.close()


def read_status(
    path: Path | str,
    *,
    examples: int = 5,
    listed: int = 20,
    now: datetime | None = None,
    campaign: str | None = None,
) -> StatusSnapshot:
    """The status of the state file at `path` (or of `campaign` in the PostgreSQL
    database `path`); `examples` server IDs per error code, `listed` in-doubt and
    deferred targets at most."""
    now = now or _now()
    if is_dsn(path):
        return _read_campaign(str(path), campaign, examples, listed, now)
    path = Path(path)
    with _connect(path) as conn:
        conn.execute("BEGIN")  # one snapshot for every query below
        try:
            tables = sqlite_table_names(conn)
            return _read(conn, str(path), tables, examples, listed, now, _alive)
        finally:
            conn.execute("ROLLBACK")


def _read_campaign(
    dsn: str, campaign: str | None, examples: int, listed: int, now: datetime
) -> StatusSnapshot:
    """The same queries on a PostgreSQL campaign, from any host: whether its run is
    still running is whether a runner holds the campaign's lock, not a local pid."""
    from orchestrator.store.pg import PgStore

    location = pg_location(dsn, campaign)
    with location.open(readonly=True) as store:
        assert isinstance(store, PgStore)
        with store.snapshot() as (conn, tables, running):
            return _read(conn, location.label, tables, examples, listed, now, lambda _: running)


def _read(
    conn: Any,
    path: str,
    tables: set[str],
    examples: int,
    listed: int,
    now: datetime,
    alive: Callable[[int | None], bool],
) -> StatusSnapshot:
    """`conn`: a sqlite3 connection, or the PostgreSQL store's (same `?` queries)."""
    if not {"meta", "runs", "targets", "events"} <= tables:
        raise StateError(f"{path} is not an orchestrator state file (or was never finished)")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if "run_id" not in meta:
        raise StateError(f"state file {path} holds an import that never finished")

    counts = {state.value: 0 for state in TargetState}
    for state, n in conn.execute("SELECT state, count(*) FROM targets GROUP BY state"):
        counts[state] = n
    total = sum(counts.values())

    failures = _failures(conn, examples)
    in_doubt = [
        TargetRef(p, s, d)
        for p, s, d in conn.execute(
            "SELECT project_id, server_id, coalesce(fail_reason, error_code) FROM targets"
            " WHERE state = ? ORDER BY id LIMIT ?",
            (TargetState.IN_DOUBT.value, listed),
        )
    ]
    deferred_count, deferred = _deferred(conn, listed)

    runs = conn.execute(
        "SELECT id, started_at, ended_at, outcome, pid, options FROM runs ORDER BY id"
    ).fetchall()
    invocation = _invocation(conn, runs, counts, total, now, alive) if runs else None
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    options: dict[str, Any] = {}
    if runs and runs[-1][5]:
        with contextlib.suppress(ValueError):
            options = json.loads(runs[-1][5])

    return StatusSnapshot(
        run_id=meta["run_id"],
        state_path=path,
        inventory_path=meta.get("inventory_path"),
        created_at=meta.get("created_at", ""),
        generated_at=_iso(now),
        total=total,
        counts=counts,
        failures=failures,
        in_doubt=in_doubt,
        deferred=deferred,
        deferred_count=deferred_count,
        invocations=len(runs),
        invocation=invocation,
        first_started_at=runs[0][1] if runs else None,
        requests={
            k.removeprefix("requests."): int(v)
            for k, v in sorted(counters.items())
            if k.startswith("requests.")
        },
        throttled=int(counters.get("throttled", 0)),
        options=options,
    )


def _failures(conn: Any, examples: int) -> list[FailureGroup]:
    groups = conn.execute(
        "SELECT coalesce(error_code, ?) AS code, count(*) FROM targets WHERE state = ?"
        " GROUP BY code ORDER BY count(*) DESC, code",
        (UNKNOWN_CODE, TargetState.FAILED.value),
    ).fetchall()
    out = []
    for code, n in groups:
        refs = tuple(
            TargetRef(p, s, d)
            for p, s, d in conn.execute(
                "SELECT project_id, server_id, fail_reason FROM targets"
                " WHERE state = ? AND coalesce(error_code, ?) = ? ORDER BY id LIMIT ?",
                (TargetState.FAILED.value, UNKNOWN_CODE, code, examples),
            )
        )
        out.append(FailureGroup(code, n, refs))
    return out


def _deferred(conn: Any, listed: int) -> tuple[int, list[DeferredTarget]]:
    """Pending targets with a "deferred: ..." event: left for a later run, and why."""
    rows = conn.execute(
        "SELECT project_id, server_id, why FROM ("
        "  SELECT t.id, t.project_id, t.server_id,"
        "    (SELECT e.detail FROM events e WHERE e.target_id = t.id"
        "       AND e.detail LIKE 'deferred:%' ORDER BY e.id DESC LIMIT 1) AS why"
        "  FROM targets t WHERE t.state = ?"
        ") AS d WHERE why IS NOT NULL ORDER BY id",
        (TargetState.PENDING.value,),
    )
    count = 0
    shown: list[DeferredTarget] = []
    for project_id, server_id, why in rows:
        count += 1
        if len(shown) < listed:
            shown.append(DeferredTarget(project_id, server_id, why.removeprefix("deferred: ")))
    return count, shown


def _invocation(
    conn: Any,
    runs: list[tuple[Any, ...]],
    counts: dict[str, int],
    total: int,
    now: datetime,
    alive: Callable[[int | None], bool],
) -> InvocationView:
    _number, started_at, ended_at, outcome, pid, _options = runs[-1]
    if ended_at:
        state = "ended"
    elif alive(pid):
        state = "running"
    else:
        state = "interrupted"
    start = parse_timestamp(started_at)
    end = parse_timestamp(ended_at) if ended_at else (now if state == "running" else None)
    elapsed = (end - start).total_seconds() if start and end else None
    final_since = 0
    if started_at:
        final_since = conn.execute(
            "SELECT count(*) FROM targets WHERE state IN (?, ?) AND finished_at >= ?",
            (TargetState.SUCCEEDED.value, TargetState.FAILED.value, started_at),
        ).fetchone()[0]
    rate = final_since / elapsed if elapsed and elapsed > 0 and final_since else None
    remaining = total - counts[TargetState.SUCCEEDED.value] - counts[TargetState.FAILED.value]
    eta: float | None = None
    if remaining == 0:
        eta = 0.0
    elif state == "running" and rate:
        eta = remaining / rate
    return InvocationView(
        number=len(runs),
        state=state,
        pid=pid,
        started_at=started_at,
        ended_at=ended_at,
        outcome=outcome if ended_at else (None if state == "running" else "interrupted"),
        elapsed_s=None if elapsed is None else round(elapsed, 1),
        final_since_start=final_since,
        targets_per_s=None if rate is None else round(rate, 3),
        eta_s=None if eta is None else round(eta, 1),
    )
