"""`backup`: a state file copied into one self-contained file."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.exits import BACKUP_EXIT_CODES, guarded
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
    so is a backup while a run holds it. A PostgreSQL campaign is backed up with
    pg_dump."""
    if is_dsn(state_path):
        raise UsageError("backup copies a SQLite state file; back up PostgreSQL with pg_dump")
    state_backup(Path(state_path), destination)
    echo(f"state {state_path} copied to {destination}")
    return 0
