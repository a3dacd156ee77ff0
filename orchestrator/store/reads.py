"""The store's reads: targets, events, runs and rollout records, as dataclasses.

Large reads are paged by id (`iter_targets`, `events_iter`, `samples_iter`) or
streamed from the query (`final_records`), so that memory stays flat on a file of
a million targets. Every query is written in the SQL both stores accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.engine.shard import Shard
from orchestrator.model import FINAL_STATES, InvocationInfo, RunInfo, Target, TargetState
from orchestrator.store.base import StoreBase, translated
from orchestrator.store.records import (
    TARGET_COLUMNS,
    Event,
    FinalRecord,
    RolloutRecord,
    parse_time,
    target_from_row,
)


class TargetReads(StoreBase):
    """What a run, `status`, `report` and the rollout read back from the store."""

    def counts(self, shard: Shard | None = None) -> dict[TargetState, int]:
        """Targets by state: of the whole campaign, or of one shard."""
        where, params = self._shard_filter(shard, "WHERE")
        counts = {state: 0 for state in TargetState}
        rows = self._conn.execute(
            f"SELECT state, count(*) FROM targets {where} GROUP BY state", params
        )
        for state, n in rows:
            counts[TargetState(state)] = int(n)
        return counts

    def to_do_by_project(self, shard: Shard | None = None) -> dict[tuple[str, str | None], int]:
        """Targets not final, by project and region: what a run still reads and sends."""
        final = [s.value for s in FINAL_STATES]
        marks = ",".join("?" * len(final))
        where, params = self._shard_filter(shard, "AND")
        rows = self._conn.execute(
            f"SELECT project_id, region, count(*) FROM targets WHERE state NOT IN ({marks})"
            f" {where} GROUP BY project_id, region",
            [*final, *params],
        )
        return {(project, region): int(n) for project, region, n in rows}

    def get(self, target_id: int) -> Target:
        row = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE id = ?", (target_id,)
        ).fetchone()
        if row is None:
            raise KeyError(target_id)
        return target_from_row(row)

    def find(self, project_id: str, server_id: str) -> Target | None:
        row = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE project_id = ? AND server_id = ?",
            (project_id, server_id),
        ).fetchone()
        return target_from_row(row) if row else None

    def find_server(self, server_id: str) -> list[Target]:
        """Every target of this server ID (one per project that lists it)."""
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE server_id = ? ORDER BY id", (server_id,)
        ).fetchall()
        return [target_from_row(row) for row in rows]

    def in_states(self, states: Iterable[TargetState], shard: Shard | None = None) -> list[Target]:
        names = [s.value for s in states]
        marks = ",".join("?" * len(names))
        where, params = self._shard_filter(shard, "AND")
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE state IN ({marks}) {where} ORDER BY id",
            [*names, *params],
        )
        return [target_from_row(row) for row in rows]

    def job_lengths(self, limit: int = 1000) -> list[float]:
        """Seconds from begin to end of the latest jobs that ended (for polling).

        Both times are the service's own: a length measured from this host's clock to
        the service's would take any difference between the clocks (or a step of this
        host's) for job time. Newest targets first, by id: no sort of the whole
        table, so a resume of a large file stays quick. Computed here, not in SQL, so
        both stores share it.
        """
        rows = self._conn.execute(
            "SELECT job_begin_at, job_end_at FROM targets"
            " WHERE state IN ('succeeded', 'failed') AND job_begin_at IS NOT NULL"
            " AND job_end_at IS NOT NULL ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        lengths = []
        for submitted, ended in rows:
            start, end = parse_time(submitted), parse_time(ended)
            if start is not None and end is not None and end >= start:
                lengths.append((end - start).total_seconds())
        return lengths

    def pending_after(self, after_id: int, limit: int, shard: Shard | None = None) -> list[Target]:
        """The next page of pending targets (of `shard`); only those of `limit_feed`, when
        it was called."""
        only = " AND id IN (SELECT id FROM feed_only)" if self._feed_limited else ""
        where, params = self._shard_filter(shard, "AND")
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE state = ? AND id > ?{only} {where}"
            " ORDER BY id LIMIT ?",
            (TargetState.PENDING.value, after_id, *params, limit),
        )
        return [target_from_row(row) for row in rows]

    def limit_feed(self, target_ids: Iterable[int]) -> None:
        """From now on, `pending_after` offers only these targets (for `retry`).

        The runner sends what `pending_after` gives it, so this is what keeps a
        retry of a few targets from sending the other pending ones too. The list
        lives in a temporary table of this connection: never in the state file.
        """
        with translated("select the targets to retry"):
            # Unqualified: both SQLite and PostgreSQL look in the temporary schema first.
            self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS feed_only (id BIGINT PRIMARY KEY)")
            self._conn.execute("DELETE FROM feed_only")
            self._conn.executemany(
                "INSERT INTO feed_only (id) VALUES (?) ON CONFLICT DO NOTHING",
                [(i,) for i in target_ids],
            )
        self._feed_limited = True

    def has_cloud_init_targets(self) -> bool:
        row = self._conn.execute("SELECT 1 FROM targets WHERE cloud_init = 1 LIMIT 1").fetchone()
        return row is not None

    def deferred_pending(self) -> list[int]:
        """Pending targets an invocation deferred (its event says "deferred: ..."), by id."""
        rows = self._conn.execute(
            "SELECT t.id FROM targets t WHERE t.state = ? AND EXISTS (SELECT 1 FROM events e"
            " WHERE e.target_id = t.id AND e.to_state = ? AND e.detail LIKE 'deferred%')"
            " ORDER BY t.id",
            (TargetState.PENDING.value, TargetState.PENDING.value),
        )
        return [int(row[0]) for row in rows]

    def count_without_region(self) -> tuple[int, list[Target]]:
        """Targets with no region (a few of them as examples), for --endpoint-template."""
        n = self._conn.execute("SELECT count(*) FROM targets WHERE region IS NULL").fetchone()[0]
        rows = self._conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE region IS NULL ORDER BY id LIMIT 5"
        )
        return int(n), [target_from_row(row) for row in rows]

    def iter_targets(self, batch: int = 2000) -> Iterator[Target]:
        """Every target in inventory order, read in pages so memory stays flat."""
        last = 0
        while True:
            rows = self._conn.execute(
                f"SELECT {TARGET_COLUMNS} FROM targets WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield target_from_row(row)
            last = rows[-1][0]

    def events(self, target_id: int | None = None) -> list[Event]:
        if target_id is None:
            rows = self._conn.execute(
                "SELECT target_id, at, invocation, from_state, to_state, detail FROM events"
                " ORDER BY id"
            )
        else:
            rows = self._conn.execute(
                "SELECT target_id, at, invocation, from_state, to_state, detail FROM events"
                " WHERE target_id = ? ORDER BY id",
                (target_id,),
            )
        return [Event(*row) for row in rows]

    def invocations(self) -> list[InvocationInfo]:
        """Every invocation of this state file, oldest first (one row each: few)."""
        rows = self._conn.execute(
            "SELECT id, started_at, ended_at, outcome, options, pid FROM runs ORDER BY id"
        )
        return [
            InvocationInfo(
                number=number,
                started_at=started,
                ended_at=ended,
                outcome=outcome,
                options=json.loads(options) if options else {},
                pid=pid,
            )
            for number, started, ended, outcome, options, pid in rows
        ]

    def samples_iter(self, name: str, batch: int = 5000) -> Iterator[tuple[str, int]]:
        """(at, value) of a sampled counter over time, oldest first, read in pages."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT id, at, value FROM samples WHERE name = ? AND id > ? ORDER BY id LIMIT ?",
                (name, last, batch),
            ).fetchall()
            if not rows:
                return
            for _, at, value in rows:
                yield str(at), int(value)
            last = rows[-1][0]

    def events_iter(self, batch: int = 5000) -> Iterator[Event]:
        """Every event in the order written, read in pages so memory stays flat."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT id, target_id, at, invocation, from_state, to_state, detail FROM events"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Event(*row[1:])
            last = rows[-1][0]

    # -- rollout -----------------------------------------------------------------

    def waves_fixed(self) -> bool:
        """Whether every target has its wave (fixed at the first run with rollout)."""
        row = self._conn.execute("SELECT 1 FROM targets WHERE wave IS NULL LIMIT 1").fetchone()
        return row is None

    def sizes(self, column: str) -> dict[Any, int]:
        """Targets per project (`project_id`) or per wave (`wave`)."""
        if column not in ("project_id", "wave"):
            raise ValueError(column)
        rows = self._conn.execute(f"SELECT {column}, count(*) FROM targets GROUP BY {column}")
        return {key: int(n) for key, n in rows}

    def final_records(self) -> Iterator[FinalRecord]:
        """Every final target, in the order they became final (their last event).

        Streamed from the query (the database sorts), never held together: a
        resume of a million-target file would otherwise hold ~400 MB of them.
        Read it to the end before the next write on this store.
        """
        names = ",".join("?" * 3)
        rows = self._conn.execute(
            "SELECT (SELECT max(e.id) FROM events e WHERE e.target_id = t.id) AS seq,"
            " t.id, t.project_id, t.state, t.error_code, t.wave, t.intent_at, t.finished_at"
            f" FROM targets t WHERE t.state IN ({names}) ORDER BY seq, t.id",
            [TargetState.SUCCEEDED.value, TargetState.FAILED.value, TargetState.SKIPPED.value],
        )
        for seq, tid, project, state, code, wave, intent, finished in rows:
            yield FinalRecord(
                seq or 0, tid, project, TargetState(state), code, wave, intent, finished
            )

    def wave_state_counts(self) -> dict[int, dict[str, int]]:
        """Targets by wave and state, for the report and `status`."""
        found: dict[int, dict[str, int]] = {}
        for wave, state, n in self._conn.execute(
            "SELECT wave, state, count(*) FROM targets GROUP BY wave, state ORDER BY wave"
        ):
            found.setdefault(int(wave or 1), {})[state] = int(n)
        return found

    def last_event_id(self) -> int:
        row = self._conn.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    def rollout_records(self) -> list[RolloutRecord]:
        """Every rollout decision, oldest first (a few per run: not paged)."""
        rows = self._conn.execute(
            "SELECT kind, detail, project_id, wave, at, invocation FROM rollout ORDER BY id"
        )
        return [RolloutRecord(*row) for row in rows]

    # -- runs --------------------------------------------------------------------

    def last_options(self) -> dict[str, Any]:
        row = self._conn.execute("SELECT options FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def run_info(self) -> RunInfo:
        meta = self._meta()
        runs = self._conn.execute("SELECT count(*), max(id) FROM runs").fetchone()
        last = None
        if runs and runs[1] is not None:
            last = self._conn.execute(
                "SELECT started_at, ended_at, options FROM runs WHERE id = ?", (runs[1],)
            ).fetchone()
        counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        return RunInfo(
            run_id=meta["run_id"],
            state_path=self.location,
            inventory_path=meta.get("inventory_path"),
            inventory_sha256=meta.get("inventory_sha256", ""),
            created_at=meta.get("created_at", ""),
            started_at=last[0] if last else None,
            ended_at=last[1] if last else None,
            invocations=int(runs[0]) if runs else 0,
            options=json.loads(last[2]) if last and last[2] else {},
            extra_columns=tuple(json.loads(meta.get("extra_columns", "[]"))),
            requests={
                k.removeprefix("requests."): int(v)
                for k, v in counters.items()
                if k.startswith("requests.")
            },
            throttled=int(counters.get("throttled", 0)),
            selection=json.loads(meta.get("selection") or "{}"),
        )
