"""The SQLite state file on disk, and what protects it before SQLite opens it.

These are the file-level guarantees behind "never reinstall a server twice":

    check_state_file    only a regular SQLite file is opened as a state file (never a
                        device, a pipe, an empty file or a link planted for its log)
    lock / unlock       one run per file: flock() on the file itself, held for the run
    create_locked       a new file is made under a temporary name, locked, with its
                        schema and `creator` row, then linked into place: nobody ever
                        sees it unlocked or without the proof that this tool made it
    journal_lost        a file left `open` by a run whose log (`STATE-wal`) is missing
                        or empty lost its latest changes: it is refused
    backup              one self-contained copy, never of a held or journal-lost file
    remove_state_files  only ever called on a file proven to be an import this tool
                        began and never finished (`StateStore._check`)

A SQLite state file is two files while a run holds it: the database and its
write-ahead log (`STATE-wal`), where every commit goes first. The main file says
which it is (meta `journal`, written by `journal.Journal`): `open` from the moment
a run takes it until that run closes it cleanly and has written the log back into
it (a checkpoint), `closed` after. The log never shrinks while a run holds the
file, so a file that says `open` and whose log is missing or empty lost its latest
changes (the log was deleted after a crash, or the file was copied alone): it is
refused, never taken for a new campaign (`JournalLost`; `--journal-lost` settles
every unfinished target from its server instead).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import socket
import sqlite3
import stat
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from orchestrator.engine.shard import shard_hash
from orchestrator.errors import JournalLost, StateError
from orchestrator.store.base import StateExists, translated
from orchestrator.store.records import utc_now

SQLITE_HEADER = b"SQLite format 3\x00"


def check_companions(path: Path, *, new: bool = False) -> None:
    """SQLite opens `STATE-wal` and `STATE-shm` itself, following links: one planted
    beside the state file (a folder others can write to) would have it write its
    log wherever the link points. A link there is refused; so is any companion of a
    state file being created (it cannot be ours)."""
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.is_symlink() or (new and os.path.lexists(companion)):
            what = "a symbolic link" if companion.is_symlink() else "already there"
            raise StateError(
                f"{companion} is {what}: SQLite would write the state's journal through"
                " it. Nothing was changed; remove it, or keep state files in a folder only"
                " you can write to"
            )


def check_state_file(path: Path) -> None:
    """A state file is a regular file (or a link to one): never a device, a pipe or a
    directory, which the tool would otherwise open, and could replace."""
    check_companions(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise StateError(f"state file {path} does not exist") from None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StateError(
            f"{path} is not a regular file (a device, a pipe or a directory): --state must"
            " name an orchestrator state file, or a path where one can be created"
        )
    # Read before SQLite opens it: opening would already write a header into an empty
    # file, and switch someone else's database to WAL.
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    if head != SQLITE_HEADER:
        what = "is empty" if not head else "is not a SQLite database"
        raise StateError(
            f"{path} is not an orchestrator state file: it {what}. Nothing was changed;"
            " name a new path with --state, or an orchestrator state file"
        )


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file (the inventory's, recorded with the import), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the state file: for a run, in WAL mode with every commit synced
    (`synchronous=FULL`: an intent must be on disk before its request leaves)."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        # The shard hash, computed as PostgreSQL and Python compute it (orchestrator.shard).
        conn.create_function("orch_shard_hash", 1, shard_hash, deterministic=True)
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        return conn
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot open state file {path}: {exc}") from exc


# Inodes of state files this process holds locked. A second open in the same
# process is refused from here, without opening (and later closing) another
# descriptor of the file: closing any descriptor drops the process's POSIX locks,
# which SQLite relies on.
_HELD: dict[tuple[int, int], int] = {}


def lock(path: Path) -> int:
    """Hold an exclusive lock on the state file itself (not on its name) for the run.

    flock() on the database file: a symlink, a relative path or a hard link all
    reach the same inode, hence the same lock. SQLite's own locks are fcntl()
    locks, which flock() does not touch on Linux.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise StateError(f"cannot open state file {path}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) in _HELD:
        os.close(fd)
        raise _in_use(path, os.getpid())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _in_use(path) from None
    _HELD[(info.st_dev, info.st_ino)] = fd
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock taken by `lock` or `create_locked` (None: nothing held)."""
    if fd is None:
        return
    for key, held in list(_HELD.items()):
        if held == fd:
            del _HELD[key]
    with contextlib.suppress(OSError):
        os.close(fd)


def _in_use(path: Path, pid: int | None = None) -> StateError:
    holder = f" (pid {pid}, this process)" if pid is not None else _holder(path)
    return StateError(
        f"state file {path} is in use by another orchestrator{holder}; "
        "wait for it to finish or stop it first"
    )


def this_process() -> str:
    """This process as the state file records its lock's holder: "pid N on HOST"."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _holder(path: Path) -> str:
    """Who holds the lock, as " (pid N on HOST)", where the state file says."""
    with contextlib.suppress(sqlite3.Error, OSError):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'lock_holder'").fetchone()
        finally:
            conn.close()
        if row and row[0]:
            return f" ({row[0]})"
    return ""


def create_locked(path: Path, prepare: Callable[[Path], None]) -> int:
    """Create `path` owner-only and already locked, `prepare`d under a temporary name
    before it takes its own; refuse if it exists."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create state file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            prepare(temp)
        except BaseException:
            os.close(fd)
            raise
        try:
            os.link(temp, path)  # atomic: fails if the name exists
        except FileExistsError:
            os.close(fd)
            raise StateExists(f"state file {path} already exists") from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot create state file {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    info = os.fstat(fd)
    _HELD[(info.st_dev, info.st_ino)] = fd
    return fd


def journal_lost(path: Path) -> JournalLost | None:
    """The refusal for a state file left open by a run whose log is now missing, or
    None. The main file alone is read (`immutable`), so that SQLite creates no empty
    log in place of the lost one."""
    wal = Path(f"{path}-wal")
    with contextlib.suppress(FileNotFoundError):
        if wal.stat().st_size > 0:
            return None
    uri = f"file:{urllib.parse.quote(str(path))}?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = dict(
                conn.execute(
                    "SELECT key, value FROM meta WHERE key IN"
                    " ('journal', 'journal_opened_at', 'sending_began_at')"
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # not readable as ours: the checks after opening say why
    if rows.get("journal") != "open":
        return None
    sent = rows.get("sending_began_at")
    what = (
        f"reinstalls were being sent from it (since {sent})"
        if sent and sent >= (rows.get("journal_opened_at") or "")
        else "reinstalls may have been sent from it"
    )
    return JournalLost(
        f"state file {path} was left by a run that did not end cleanly (taken"
        f" {rows.get('journal_opened_at', '?')}), and its journal {wal} is missing or"
        f" empty: {what}, and the latest intents, job ids and results were in that"
        " journal. Resuming without it could reinstall a server a second time. Put the"
        f" journal back next to the state file (a state file is two files while a run"
        " holds it: copy one with `orchestrator backup`), then run again. If it is lost"
        " for good, add --journal-lost: every target not final is then settled from its"
        " server before anything is sent"
    )


def backup(path: Path, destination: Path) -> None:
    """Copy a state file into `destination`, one self-contained file (SQLite's backup
    API: the database and what its log holds), marked closed, owner-only. Refused while
    a run holds the state file (the copy would be out of date at once) and when its
    journal is lost (the copy would lose the same changes)."""
    check_state_file(path)
    lock_fd = lock(path)
    try:
        lost = journal_lost(path)
        if lost is not None:
            raise lost
        try:
            fd = os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StateError(f"cannot create {destination}: {exc.strerror}") from exc
        os.close(fd)
        try:
            source = connect(path, readonly=True)
            try:
                copy = sqlite3.connect(str(destination), isolation_level=None)
                try:
                    with translated("copy the state file"):
                        source.backup(copy)
                        copy.execute("PRAGMA journal_mode = DELETE")
                        copy.executemany(
                            "INSERT INTO meta (key, value) VALUES (?, ?)"
                            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            [("journal", "closed"), ("copied_from", str(path)),
                             ("copied_at", utc_now())],
                        )  # fmt: skip
                finally:
                    copy.close()
            finally:
                source.close()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(destination)
            raise
    finally:
        unlock(lock_fd)


def remove_state_files(path: Path) -> None:
    """Delete a state file and its companions. Only for a file proven to be an import
    this tool began and never finished, or one it is creating now."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(path) + suffix)
