"""The store's writes: state changes with their events, counters, runs, rollout
decisions and the runners sharing a campaign.

Every state change goes through `apply`, which checks it against the transition
table and against the state the caller believed the target was in
(`UPDATE ... WHERE state = old`), and writes the change and its event in one
transaction. `synchronous=FULL` makes a commit survive power loss, not only a
crash: the runner relies on an intent being durable before a request leaves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.errors import StateError
from orchestrator.model import TargetSpec, TargetState, check_reopen
from orchestrator.store.base import StoreBase, translated
from orchestrator.store.records import Change, RolloutRecord, utc_now, validate

# Counters whose increments are also kept with their time (table `samples`).
SAMPLED_COUNTERS = frozenset({"throttled"})


class TargetChanges(StoreBase):
    """Every write to a store that is open for a run."""

    def apply(
        self, changes: Sequence[Change], counters: Mapping[str, int] | None = None
    ) -> list[bool]:
        """Write state changes and counter increments in one transaction.

        Returns, per change, whether it applied: a change whose target is no
        longer in `old` is skipped (and reported False), never forced.
        """
        for change in changes:
            validate(change)
        applied: list[bool] = []
        # Every commit is durable (synchronous=FULL): an intent must be on disk before
        # its request leaves, and an answer (a job id) before the run relies on it.
        with translated("write state changes"), self._transaction():
            for change in changes:
                sets = ["state = ?", "updated_at = ?"]
                values: list[Any] = [change.new.value, change.at]
                for name, value in change.fields.items():
                    sets.append(f"{name} = ?")
                    values.append(value)
                cursor = self._conn.execute(
                    f"UPDATE targets SET {', '.join(sets)} WHERE id = ? AND state = ?",
                    [*values, change.target_id, change.old.value],
                )
                ok = cursor.rowcount == 1
                applied.append(ok)
                if ok:
                    self._conn.execute(
                        "INSERT INTO events (target_id, at, invocation, from_state, to_state,"
                        " detail) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            change.target_id,
                            change.at,
                            self.invocation,
                            change.old.value,
                            change.new.value,
                            change.detail,
                        ),
                    )
            # In name order: concurrent writers (shards on PostgreSQL) then lock the
            # counter rows in one order and cannot deadlock.
            for name, value in sorted((counters or {}).items()):
                if value:
                    self._conn.execute(
                        "INSERT INTO counters (name, value) VALUES (?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
                        (name, value),
                    )
                if value and name in SAMPLED_COUNTERS:
                    self._conn.execute(
                        "INSERT INTO samples (at, name, value) VALUES (?, ?, ?)",
                        (utc_now(), name, value),
                    )
        return applied

    def note(self, target_id: int, state: TargetState, detail: str) -> None:
        """An event that explains something without changing the state."""
        with translated("write an event"), self._transaction():
            self._conn.execute(
                "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (target_id, utc_now(), self.invocation, state.value, state.value, detail),
            )

    def reopen(self, target_ids: Iterable[int], detail: str) -> int:
        """Move failed targets back to pending for a new attempt; returns how many.

        The one way out of `failed`, for the operator's `retry` command only
        (`model.OPERATOR_TRANSITIONS`); `apply` never allows it. The error, job
        and times of the failed attempt stay in the event this writes ("retry
        requested: ..."), the attempts count goes on, and the resend cap of
        "not accepted" settlements starts again. A target that is no longer
        failed is left alone.
        """
        check_reopen(TargetState.FAILED, TargetState.PENDING)
        now = utc_now()
        reopened = 0
        with translated("reopen targets for a retry"), self._transaction():
            for target_id in target_ids:
                row = self._conn.execute(
                    "SELECT error_code, fail_reason, job_id, attempts FROM targets"
                    " WHERE id = ? AND state = ?",
                    (target_id, TargetState.FAILED.value),
                ).fetchone()
                if row is None:
                    continue
                code, reason, job_id, attempts = row
                self._conn.execute(
                    "UPDATE targets SET state = ?, updated_at = ?, error_code = NULL,"
                    " fail_reason = NULL, job_id = NULL, finished_at = NULL, job_begin_at = NULL,"
                    " job_end_at = NULL, not_accepted = 0 WHERE id = ? AND state = ?",
                    (TargetState.PENDING.value, now, target_id, TargetState.FAILED.value),
                )
                self._conn.execute(
                    "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        target_id,
                        now,
                        self.invocation,
                        TargetState.FAILED.value,
                        TargetState.PENDING.value,
                        f"retry requested ({detail}); was failed after {attempts} attempt(s):"
                        f" {code or '-'} {reason or ''}".rstrip()
                        + (f" (job {job_id})" if job_id else ""),
                    ),
                )
                reopened += 1
        return reopened

    def update_pending_specs(self, specs: Iterable[TargetSpec], detail: str) -> int:
        """Give targets nothing was sent for yet new request options; returns how many."""
        changed = 0
        now = utc_now()
        with translated("update request options"), self._transaction():
            for spec in specs:
                cursor = self._conn.execute(
                    "UPDATE targets SET keyname = ?, userid = ?, mode = ?, byol = ?,"
                    " cloud_init = ?, updated_at = ?"
                    " WHERE project_id = ? AND server_id = ? AND state = ?"
                    " AND (keyname IS DISTINCT FROM ? OR userid IS DISTINCT FROM ?"
                    " OR mode IS DISTINCT FROM ? OR byol IS DISTINCT FROM ?"
                    " OR cloud_init IS DISTINCT FROM ?)",
                    (
                        spec.keyname,
                        spec.userid,
                        spec.mode,
                        None if spec.byol is None else int(spec.byol),
                        int(spec.cloud_init),
                        now,
                        spec.project_id,
                        spec.server_id,
                        TargetState.PENDING.value,
                        spec.keyname,
                        spec.userid,
                        spec.mode,
                        None if spec.byol is None else int(spec.byol),
                        int(spec.cloud_init),
                    ),
                )
                if cursor.rowcount:
                    changed += 1
                    self._conn.execute(
                        "INSERT INTO events (target_id, at, invocation, from_state, to_state,"
                        " detail) SELECT id, ?, ?, state, state, ? FROM targets"
                        " WHERE project_id = ? AND server_id = ?",
                        (now, self.invocation, detail, spec.project_id, spec.server_id),
                    )
        return changed

    # -- run bookkeeping -------------------------------------------------------

    def begin_invocation(self, options: Mapping[str, Any], inventory_path: str | None) -> int:
        meta = self._meta()
        with translated("record the run"), self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO runs (started_at, inventory_path, inventory_sha256, options, pid)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (
                    utc_now(),
                    inventory_path or meta.get("inventory_path"),
                    meta.get("inventory_sha256"),
                    json.dumps(dict(options), sort_keys=True, default=str),
                    os.getpid(),
                ),
            )
            self.invocation = int(cursor.fetchone()[0])
        return self.invocation

    def end_invocation(self, outcome: str) -> None:
        if self.invocation is None:
            return
        with translated("record the end of the run"), self._transaction():
            self._conn.execute(
                "UPDATE runs SET ended_at = ?, outcome = ? WHERE id = ?",
                (utc_now(), outcome, self.invocation),
            )

    # -- rollout ---------------------------------------------------------------

    def fix_waves(self, waves: Sequence[int]) -> None:
        """Give the targets, in inventory order, the waves `waves` (one per target)."""
        with translated("record the rollout waves"), self._transaction():
            ids = [r[0] for r in self._conn.execute("SELECT id FROM targets ORDER BY id")]
            if len(ids) != len(waves):
                raise StateError(f"{len(waves)} waves for {len(ids)} targets")
            self._conn.executemany(
                "UPDATE targets SET wave = ? WHERE id = ?", list(zip(waves, ids, strict=True))
            )

    def add_rollout(self, records: Sequence[RolloutRecord]) -> None:
        """Append rollout decisions (one transaction)."""
        if not records:
            return
        with translated("record rollout decisions"), self._transaction():
            self._conn.executemany(
                "INSERT INTO rollout (at, invocation, kind, project_id, wave, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.at, self.invocation, r.kind, r.project_id, r.wave, r.detail) for r in records],
            )

    # -- runners sharing the campaign ---------------------------------------------

    def heartbeat(self, holder: str, shard: str | None, lease: float) -> int:
        """This runner is alive: recorded on the database's clock; runners not seen for
        `lease` seconds are forgotten. Returns how many share the campaign now."""
        with translated("record this runner"), self._transaction():
            self._conn.execute(
                f"INSERT INTO runners (holder, shard, seen) VALUES (?, ?, {self.DB_NOW_MS})"
                " ON CONFLICT(holder) DO UPDATE SET shard = excluded.shard, seen = excluded.seen",
                (holder, shard),
            )
            self._conn.execute(
                f"DELETE FROM runners WHERE seen < {self.DB_NOW_MS} - ?", (int(lease * 1000),)
            )
            row = self._conn.execute("SELECT COUNT(*) FROM runners").fetchone()
        return max(1, int(row[0]) if row else 1)

    def leave(self, holder: str) -> None:
        """This runner ends: the others take its share at their next heartbeat."""
        with translated("record this runner's end"), self._transaction():
            self._conn.execute("DELETE FROM runners WHERE holder = ?", (holder,))
