"""`backup`: a state file copied into one self-contained file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from orchestrator.cli.exits import BACKUP_EXIT_CODES, guarded
from orchestrator.engine.simulated import world_path
from orchestrator.errors import UsageError
from orchestrator.store import is_dsn
from orchestrator.store.sqlite import backup as state_backup
from orchestrator.visible import echo

__all__ = ["backup"]


@click.command(epilog=BACKUP_EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH",
    help="The SQLite state file to copy.",
)
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
@guarded
def backup(state_path: str, destination: Path) -> int:
    """Copy a state file into DESTINATION: one self-contained file, safe to move to
    another host and resume there. While a run holds a state file it is two files
    (the database and its -wal journal), and a copy of the first alone is refused;
    so is a backup while a run holds it. A rehearsal's simulated fleet (`run
    --simulate`) is copied beside it, so the copy resumes in the same fleet. A
    PostgreSQL campaign is backed up with pg_dump."""
    if is_dsn(state_path):
        raise UsageError("backup copies a SQLite state file; back up PostgreSQL with pg_dump")
    state_backup(Path(state_path), destination)
    echo(f"state {state_path} copied to {destination}")
    world = world_path(Path(state_path))
    if world.exists():
        _copy_new(world, world_path(destination))
        echo(f"simulated fleet {world} copied to {world_path(destination)}")
    return 0


def _copy_new(source: Path, destination: Path) -> None:
    """Copy into a file made here (owner-only), never over one that exists."""
    try:
        fd = os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create {destination}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out, source.open("rb") as into:
        shutil.copyfileobj(into, out)
