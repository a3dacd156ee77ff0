"""Where a run keeps its state when no --state is given, and `status` finding it.

The default state file is `state/<inventory>.state.sqlite`, beside `reports/` and not
in it: `rm -rf reports` must not take the record of what was sent with it. A state
file an earlier version left in `reports/` is still found and resumed there.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator.model import TargetState
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM = ("--simulate", "--sim-job-seconds", "0", "--rate", "500")


def attempts(state: Path) -> list[int]:
    with StateStore.open(state, readonly=True) as store:
        return [t.attempts for t in store.iter_targets()]


def test_the_default_state_file_outlives_the_reports_folder(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(6, projects=2, name="fleet.csv")
    done = cli("run", inventory, *SIM, *fast)
    assert done.returncode == 0, done.stderr
    state = workdir / "state" / "fleet.state.sqlite"
    assert state.is_file() and state.with_suffix(".log").is_file()
    assert not list((workdir / "reports").glob("*.sqlite"))

    shutil.rmtree(workdir / "reports")  # the report goes; the state stays
    again = cli("run", inventory, *SIM, *fast)
    assert again.returncode == 0, again.stderr
    assert attempts(state) == [1] * 6  # resumed: nothing sent twice
    assert "earlier versions" not in again.stderr


def test_a_state_file_left_in_reports_by_an_earlier_version_is_resumed_there(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(5, projects=1, name="fleet.csv")
    old = workdir / "reports" / "fleet.state.sqlite"  # the earlier default
    first = cli("run", inventory, "--state", old, "--limit", "3", *SIM, *fast)
    assert first.returncode == 0, first.stderr

    again = cli("run", inventory, "--limit", "3", *SIM, *fast)
    assert again.returncode == 0, again.stderr
    assert not (workdir / "state").exists()
    assert attempts(old) == [1, 1, 1]
    notes = [line for line in again.stderr.splitlines() if "earlier versions" in line]
    assert len(notes) == 1 and str(Path("reports") / "fleet.state.sqlite") in notes[0]

    # Both places holding one: which is meant cannot be guessed.
    new = cli("run", inventory, "--state", workdir / "state" / "fleet.state.sqlite", *SIM, *fast)
    assert new.returncode == 0, new.stderr
    both = cli("run", inventory, *SIM, *fast)
    assert both.returncode == 2
    assert "state/fleet.state.sqlite" in both.stderr and "reports/fleet.state.sqlite" in both.stderr
    assert "--state" in both.stderr


def test_status_without_state_reads_the_one_state_file_and_lists_several(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    none_yet = cli("status")
    assert none_yet.returncode == 2
    assert "no state file" in none_yet.stderr and "--state" in none_yet.stderr

    first = make_inventory(4, projects=1, name="alpha.csv")
    assert cli("run", first, *SIM, *fast).returncode == 0
    one = cli("status")
    assert one.returncode == 0, one.stderr
    assert "4 targets" in one.stdout
    assert str(Path("state") / "alpha.state.sqlite") in one.stderr  # says which it read

    second = make_inventory(3, projects=1, name="beta.csv")
    older = workdir / "reports" / "beta.state.sqlite"
    assert cli("run", second, "--state", older, *SIM, *fast).returncode == 0
    several = cli("status")
    assert several.returncode == 2
    assert several.stdout == ""
    for name in ("state/alpha.state.sqlite", "reports/beta.state.sqlite"):
        assert name in several.stderr
    assert "--state" in several.stderr
    with StateStore.open(older, readonly=True) as store:
        assert store.counts()[TargetState.SUCCEEDED] == 3


def test_status_of_a_database_with_one_campaign_needs_no_campaign(
    cli: Cli, make_inventory: Callable[..., Path], fast: list[str], pg_dsn: str
) -> None:
    import psycopg
    from psycopg import sql

    # A database of its own: the shared test database holds other tests' campaigns.
    name = f"status_{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        fleet = make_inventory(4, projects=1, name="fleet.csv")
        assert cli("run", fleet, "--state", dsn, *SIM, *fast).returncode == 0
        one = cli("status", "--state", dsn)
        assert one.returncode == 0, one.stderr
        assert "4 targets" in one.stdout
        assert "campaign fleet in" in one.stderr and "the only campaign" in one.stderr

        other = make_inventory(2, projects=1, name="other.csv")
        assert cli("run", other, "--state", dsn, *SIM, *fast).returncode == 0
        two = cli("status", "--state", dsn)
        assert two.returncode == 2 and two.stdout == ""
        assert "--campaign" in two.stderr and "fleet, other" in two.stderr
        named = cli("status", "--state", dsn, "--campaign", "other")
        assert named.returncode == 0 and "2 targets" in named.stdout
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
