"""Where a campaign's state lives: a SQLite file (the default) or PostgreSQL.

    --state PATH                         a SQLite file (nothing else changes)
    --state postgresql://USER@HOST:PORT/DB[?options] --campaign NAME
                                         schema orch_NAME in that database

Both are opened through a `StateLocation`, and both give a `StateStore` (the
PostgreSQL one is a subclass with the same tables, events and queries). The
PostgreSQL driver is an optional extra (`pip install '.[pg]'`), imported only
when a DSN is given. A DSN never carries a password: libpq takes it from
PGPASSWORD, PGPASSFILE or ~/.pgpass, so it never reaches the command line, the
logs, the reports or the options recorded with each run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from orchestrator.engine.shard import Shard
from orchestrator.errors import UsageError
from orchestrator.model import TargetSpec
from orchestrator.store.sqlite import StateStore

__all__ = [
    "SqliteLocation",
    "StateLocation",
    "campaign_from_inventory",
    "check_campaign",
    "check_dsn",
    "is_dsn",
    "open_store",
    "pg_location",
]

SCHEMES = ("postgresql://", "postgres://")
_CAMPAIGN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Connection options that carry a secret: never accepted in a DSN.
SECRET_OPTIONS = frozenset({"password", "sslpassword"})


class StateLocation(Protocol):
    """A place a campaign's state can be created in and opened from."""

    label: str  # shown to people and recorded as the report's "state" (no secret)
    describe: str  # "state file PATH" or "campaign NAME in DSN", for messages

    def exists(self) -> bool: ...

    def open(
        self, *, readonly: bool = False, shard: Shard | None = None, journal_lost: bool = False
    ) -> StateStore: ...

    def create(
        self,
        targets: Iterable[TargetSpec],
        *,
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]] = ...,
        validate: Callable[[], None] | None = ...,
        shard: Shard | None = ...,
    ) -> StateStore: ...

    def discard_incomplete(self) -> None: ...

    def log_path(self, report_dir: Path, shard: Shard | None) -> Path: ...

    def resume_args(self) -> str: ...


class SqliteLocation:
    """A SQLite state file. Its lock is the whole file's: shards of one file run one
    after the other, never at once (use PostgreSQL for that)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.describe = f"state file {path}"

    def exists(self) -> bool:
        return self.path.exists()

    def open(
        self, *, readonly: bool = False, shard: Shard | None = None, journal_lost: bool = False
    ) -> StateStore:
        return StateStore.open(self.path, readonly=readonly, journal_lost=journal_lost)

    def create(
        self,
        targets: Iterable[TargetSpec],
        *,
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]] = tuple,
        validate: Callable[[], None] | None = None,
        shard: Shard | None = None,
    ) -> StateStore:
        return StateStore.create(
            self.path,
            targets,
            inventory_path=inventory_path,
            inventory_sha256=inventory_sha256,
            extra_columns=extra_columns,
            validate=validate,
        )

    def discard_incomplete(self) -> None:
        StateStore.discard_incomplete(self.path)

    def log_path(self, report_dir: Path, shard: Shard | None) -> Path:
        return self.path.with_suffix(".log")

    def resume_args(self) -> str:
        return f"--state {self.path}"


def is_dsn(text: str | Path | None) -> bool:
    return isinstance(text, str) and text.startswith(SCHEMES)


def check_dsn(dsn: str) -> str:
    """Refuse a DSN that carries a password (or is not a postgresql:// URL); return it."""
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise UsageError(f"--state {dsn!r}: not a postgresql:// URL ({exc})") from None
    if parts.password is not None or _has_secret_option(parts.query):
        raise UsageError(
            "--state: the PostgreSQL URL carries a password; give it in PGPASSWORD or"
            " ~/.pgpass (or PGPASSFILE) instead, never on the command line"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise UsageError("--state: name the PostgreSQL server, e.g. postgresql://USER@HOST:5432/DB")
    return dsn


def _has_secret_option(query: str) -> bool:
    names = {item.partition("=")[0].strip().lower() for item in query.split("&") if item}
    return bool(names & SECRET_OPTIONS)


def check_campaign(name: str) -> str:
    if not _CAMPAIGN.match(name):
        raise UsageError(
            f"--campaign {name!r}: use 1 to 40 lowercase letters, digits or _, starting"
            " with a letter (it names the schema orch_NAME)"
        )
    return name


def campaign_from_inventory(inventory: Path) -> str:
    """The default campaign name: the inventory's file name without its suffix."""
    name = re.sub(r"[^a-z0-9_]+", "_", inventory.stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"c_{name}".rstrip("_")
    return name[:40]


def pg_location(
    dsn: str, campaign: str | None, inventory: Path | None = None, *, sole: bool = False
) -> StateLocation:
    """The campaign `campaign` (default: from the inventory's name) in database `dsn`;
    with `sole`, when neither names one, the database's only campaign."""
    check_dsn(dsn)
    try:
        from orchestrator.store.pg import PgLocation, campaigns
    except ImportError as exc:  # the optional extra is not installed
        raise UsageError(
            "a PostgreSQL state needs psycopg: pip install 'ecs-reinstall-orchestrator[pg]'"
        ) from exc
    if campaign is None and inventory is not None:
        campaign = campaign_from_inventory(inventory)
    if campaign is None:
        known = campaigns(dsn)
        if sole and len(known) == 1:
            return PgLocation(dsn, check_campaign(known[0]))
        listed = ", ".join(known) if known else "none yet"
        raise UsageError(
            f"--state {dsn}: name the campaign with --campaign NAME (campaigns there: {listed})"
        )
    return PgLocation(dsn, check_campaign(campaign))


def open_store(
    url_or_path: str | Path,
    *,
    campaign: str | None = None,
    readonly: bool = False,
    shard: Shard | None = None,
) -> StateStore:
    """Open an existing campaign's state: a SQLite path, or a DSN with its campaign."""
    location: StateLocation
    if is_dsn(url_or_path):
        location = pg_location(str(url_or_path), campaign)
    else:
        location = SqliteLocation(Path(url_or_path))
    return location.open(readonly=readonly, shard=shard)
