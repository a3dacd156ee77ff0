"""The marks that make a lost SQLite journal visible, and the checkpoints that keep
the main file in step with it.

A run takes the file: the main file says `journal = open` before any other change
(and one more commit then lands in the log, so a crashed run's log is never
empty). While the run holds the file the log keeps its size (RESTART checkpoints);
it is emptied (TRUNCATE) only when the run closes the file cleanly, which also
marks it `closed`. The import is written into the main file before anything is
sent, and so is the moment sending begins (`mark_sending`): the reference from
which `--journal-lost` settles every unfinished target (`suspect_unfinished`).
`files.journal_lost` reads these marks before a file is opened.

PostgreSQL keeps its own log with its database: `PgStore` makes the marks and
checkpoints no-ops.
"""

from __future__ import annotations

import contextlib

from orchestrator.clocks import UNSYNCED_ERROR
from orchestrator.errors import StateError
from orchestrator.model import FINAL_STATES, TargetState
from orchestrator.store.base import StoreBase, translated
from orchestrator.store.files import this_process
from orchestrator.store.records import utc_now

# A checkpoint waits for readers (`status`) this often (each time up to the busy
# timeout) before a run gives up starting.
CHECKPOINT_TRIES = 3


class Journal(StoreBase):
    """The journal's marks in the main file, and its checkpoints."""

    def _open_journal(self) -> None:
        """A run takes the file: the main file says so before any other change."""
        self._mark_journal("open")
        # One more commit, now in the log: a crashed run's log is never empty.
        self.set_meta("lock_holder", this_process())

    def _mark_journal(self, state: str) -> None:
        """Record in the main file whether changes may live in the log alone."""
        with translated("record the journal's state"), self._transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('journal', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (state,),
            )
            if state == "open":
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('journal_opened_at', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (utc_now(),),
                )
        self._checkpoint("RESTART" if state == "open" else "TRUNCATE")

    def _checkpoint(self, mode: str = "RESTART") -> None:
        """Write the log back into the main file. While a run holds the file the log
        keeps its size (RESTART): an empty log means a lost one, so it is emptied
        (TRUNCATE) only when the run ends cleanly."""
        for _ in range(CHECKPOINT_TRIES):
            # A reader (status) holding an older snapshot makes SQLite wait for it, up
            # to the busy timeout, before it answers "busy".
            with translated("write the journal into the state file"):
                row = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            if row is None or not row[0]:
                return
        raise StateError(
            f"could not write the journal of {self.path} into it: another program keeps"
            " reading it; stop it and run again"
        )

    def mark_sending(self, service_at: str | None, error: float | None) -> None:
        """Sending begins in this invocation: recorded in the main file, with the moment
        on the service's clock where known (the reference `--journal-lost` settles by)."""
        values = {
            "sending_began_at": utc_now(),
            "sending_began_service_at": service_at or "",
            "sending_began_error": "" if error is None else f"{error:.3f}",
        }
        with translated("record that sending began"), self._transaction():
            self._set_meta_values(values)
        with contextlib.suppress(StateError):
            # Where a reader blocks it, the journal's `open` mark is there already.
            self._checkpoint()

    def suspect_unfinished(self) -> int:
        """The journal was lost: every target not final may have been sent since the
        main file was last written. Each is put in doubt, its intent taken as the
        moment sending last began, so that it is settled from its server (relaunched
        after that moment, rebuilding, or quiet for the whole quiet period) before
        anything is sent. Returns how many."""
        meta = self._meta()
        service_at = meta.get("sending_began_service_at") or None
        error = float(meta["sending_began_error"]) if meta.get("sending_began_error") else None
        if service_at is None or error is None:
            # Only this host's clock is known for it: its error is the unsynced one.
            service_at = meta.get("sending_began_at") or meta.get("journal_opened_at")
            error = UNSYNCED_ERROR
        unfinished = [s.value for s in TargetState if s not in FINAL_STATES]
        marks = ",".join("?" * len(unfinished))
        detail = (
            "the state file's journal was lost: whether a reinstall was sent since"
            f" {service_at} is unknown; settled from the server before anything is sent"
        )
        now = utc_now()
        with translated("put unfinished targets in doubt"), self._transaction():
            self._conn.execute(
                "INSERT INTO events (target_id, at, invocation, from_state, to_state, detail)"
                f" SELECT id, ?, ?, state, ?, ? FROM targets WHERE state IN ({marks})",
                (now, self.invocation, TargetState.IN_DOUBT.value, detail, *unfinished),
            )
            cursor = self._conn.execute(
                "UPDATE targets SET state = ?, updated_at = ?, intent_service_at = ?,"
                f" intent_error = ? WHERE state IN ({marks})",
                (TargetState.IN_DOUBT.value, now, service_at, error, *unfinished),
            )
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('journal_lost_at', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (now,),
            )
        return int(cursor.rowcount)
