"""The CLI facing an unusable state file or report directory: a clear message, exit 2,
nothing sent, and nothing already recorded changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.store.schema import SCHEMA_VERSION
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finished_state(cli: Cli, inventory: Path, state: Path, fast: list[str]) -> None:
    """A state file of a completed simulated run, closed and checkpointed."""
    done = cli("run", inventory, "--simulate", "--state", state, *fast)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(state)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def small_inventory(workdir: Path, sample_inventory: Path, rows: int = 6) -> Path:
    lines = sample_inventory.read_text().splitlines()[: rows + 1]
    path = workdir / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_state_file_of_a_newer_schema_is_refused_untouched(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    inventory = small_inventory(workdir, sample_inventory)
    state = workdir / "fleet.sqlite"
    finished_state(cli, inventory, state, fast)
    conn = sqlite3.connect(state)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(state)

    result = cli("resume", "--state", state, *fast)

    assert result.returncode == 2
    assert "schema version 99" in result.stderr
    assert f"reads version {SCHEMA_VERSION}" in result.stderr
    assert digest(state) == before


def test_a_corrupt_state_file_is_refused_untouched(
    cli: Cli, workdir: Path, sample_inventory: Path
) -> None:
    inventory = small_inventory(workdir, sample_inventory)
    state = workdir / "fleet.sqlite"
    state.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    before = digest(state)

    result = cli("run", inventory, "--simulate", "--state", state)

    assert result.returncode == 2
    assert str(state) in result.stderr
    assert "corrupt" in result.stderr or "not a database" in result.stderr
    assert "Traceback" not in result.stderr
    assert digest(state) == before


def test_a_state_file_in_use_by_another_orchestrator_is_refused(
    cli: Cli,
    workdir: Path,
    sample_inventory: Path,
    fast: list[str],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    inventory = small_inventory(workdir, sample_inventory)
    state = workdir / "fleet.sqlite"
    finished_state(cli, inventory, state, fast)
    with sim_process() as url, StateStore.open(state):  # holds the run lock
        result = cli("resume", "--state", state)
        stats = sim_stats(url)

    assert result.returncode == 2
    assert "in use by another orchestrator" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert sum(stats["requests"].values()) == 0


def test_an_unwritable_report_directory_is_refused_before_anything_is_sent(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    inventory = small_inventory(workdir, sample_inventory)
    blocker = workdir / "not-a-dir"
    blocker.write_text("a file where the report directory should be\n")

    result = cli("run", inventory, "--simulate", "--report-dir", blocker / "reports", *fast)

    assert result.returncode == 2
    assert "report directory" in result.stderr and "not writable" in result.stderr
    assert not list(workdir.rglob("*.sqlite")), "no state file may be created"


def test_an_empty_file_named_as_the_state_is_refused_and_left_alone(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    # Nothing proves this tool made it (a state file takes its name only once it holds
    # its schema and creator row), so it is never taken for an unfinished import and
    # replaced: it may be anyone's file.
    inventory = small_inventory(workdir, sample_inventory)
    state = workdir / "fleet.sqlite"
    state.write_bytes(b"")

    result = cli("run", inventory, "--simulate", "--state", state, *fast)

    assert result.returncode == 2, result.stderr
    assert "is not an orchestrator state file" in result.stderr
    assert "Traceback" not in result.stderr
    assert state.read_bytes() == b""
    assert not Path(f"{state}-wal").exists()
