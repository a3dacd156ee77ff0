"""Fixtures for every tier: the PostgreSQL the store tests run against.

    pg_dsn            ORCH_TEST_PG (postgresql://USER@127.0.0.1:PORT/DB); skipped when
                      unset, except under CI, where it must be set (.ci/run starts one)
    pg_campaign()     a new, empty campaign location in that database, dropped afterwards
    new_location()    parametrized over both stores: a new SQLite file or PG campaign
    (autouse)         the process's secret registry (orchestrator.redact) is emptied
                      after each test: one worker process runs many campaigns

Start a database for a developer run with `eval "$(.ci/pg-start)"`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    from orchestrator import redact

    redact.forget_all()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("ORCH_TEST_PG")
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail("ORCH_TEST_PG is not set under CI: .ci/run starts one with .ci/pg-start")
        pytest.skip('ORCH_TEST_PG is not set (start a database: eval "$(.ci/pg-start)")')
    assert "@127.0.0.1:" in dsn or "@localhost:" in dsn, "tests use a loopback database only"
    return dsn


@pytest.fixture
def pg_campaign(pg_dsn: str) -> Iterator[Callable[..., Any]]:
    """pg_campaign(name=None) -> a PgLocation of a campaign no test used before."""
    from orchestrator.store import pg_location

    names: list[str] = []

    def make(name: str | None = None) -> Any:
        name = name or f"t{secrets.token_hex(6)}"
        names.append(name)
        return pg_location(pg_dsn, name)

    yield make
    drop_campaigns(pg_dsn, names)


def drop_campaigns(dsn: str, names: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"orch_{name}"))
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store a parametrized test runs against."""
    return str(request.param)


@pytest.fixture
def new_location(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Any]:
    """new_location(stem="fleet") -> a StateLocation nobody used yet, of `backend`'s kind."""
    from orchestrator.store import SqliteLocation

    if backend == "sqlite":
        return lambda stem="fleet": SqliteLocation(tmp_path / f"{stem}.state.sqlite")
    make = request.getfixturevalue("pg_campaign")
    return lambda stem="fleet": make()
