"""Crash safety: SIGKILL the orchestrator at random moments, resume it, and prove the result.

A simulator process with the timing a real ECS may have plays the cloud: jobs that
queue in INIT with the server untouched, servers powered off before they rebuild,
answers dropped or turned into 5xx after the service acted, 5xx before acting,
answers that come late, and failing jobs. The orchestrator is killed (kill -9)
again and again, each time started again with the same command, until it exits 0
or 1. Then the simulator's counters and the state file must show every server
reinstalled exactly once (or failed for a stated reason), none forgotten, none
wiped twice, none sent a reinstall while another was under way, and a report
that says so.

The moment of each kill comes from a seeded generator; the phase of the run it
hits depends on the machine's speed, which is the point.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from chaos_helpers import (
    FAKETIME_LIBRARY,
    REAL_TIMING,
    ClockStepper,
    SimProcess,
    child_env,
    fleet_problems,
    make_inventory,
    orchestrator_command,
    read_state,
    run_cli,
    run_with_kills,
    wait_until,
)

from orchestrator.model import TargetState

pytestmark = pytest.mark.timeout(200)

TOKEN = "chaos-token-0d5e"
TARGETS = 70
KILLS = 7


def run_args(
    inventory: Path,
    url: str,
    state: Path,
    reports: Path,
    *,
    rate: float = 8,
    first_poll: float = 0.3,
) -> list[str | Path]:
    return [
        "run",
        inventory,
        "--endpoint",
        url,
        "--state",
        state,
        "--report-dir",
        reports,
        "--rate",
        str(rate),
        "--poll-rate",
        "100",
        "--first-poll",
        str(first_poll),
        "--poll-cap",
        "1",
        "--settle-quiet",
        "4",
        "--no-live",
    ]


def test_sigkill_at_random_moments_then_resume_reinstalls_each_server_once(
    tmp_path: Path,
) -> None:
    """Killed again and again, while this host's wall clock is stepped forward and back
    under it (minutes, a day): the quiet period, the timeouts and the comparisons with
    the service's times must not notice."""
    if not ClockStepper.available():
        pytest.skip(f"libfaketime is not installed ({FAKETIME_LIBRARY}): apt-get install faketime")
    inventory = make_inventory(tmp_path / "fleet.csv", TARGETS, projects=3, seed=11)
    state, reports = tmp_path / "fleet.state.sqlite", tmp_path / "reports"
    sim_args = [
        "--fleet",
        inventory,
        "--seed",
        "11",
        "--drop-rate",
        "0.05",
        "--error-rate",
        "0.1",
        "--job-fail-rate",
        "0.1",
        "--job-seconds",
        "0.3:2",
        *REAL_TIMING,
    ]
    with (
        SimProcess(*sim_args, env={"SIM_TOKEN": TOKEN}) as sim,
        ClockStepper(tmp_path) as clock,
    ):
        # The stepped clock is far from the service's on purpose: what is tested is
        # what the rules conclude under it, not the guard that stops sending.
        args = [*run_args(inventory, sim.url, state, reports), "--stop-server"]
        lives = run_with_kills(
            [*args, "--max-clock-skew", "1000000"],
            child_env(OS_AUTH_TOKEN=TOKEN, **clock.env()),
            tmp_path,
            kills=KILLS,
            rng=random.Random(20240611),
            delay=(0.3, 1.6),
            output=tmp_path / "orchestrator.out",
            state_path=state,
            deadline=170.0,
        )
        stats = sim.stats()

    assert lives.kills == KILLS, lives
    assert clock.steps >= 3, clock.steps
    assert lives.final_code in (0, 1), lives
    problems, figures = fleet_problems(state, stats, TARGETS, report_dir=reports)
    assert not problems, "\n".join(problems[:40])
    # The exit code tells the truth about the end state.
    assert lives.final_code == (1 if figures.failed else 0)
    # The faults did happen: the hard paths were walked, not skipped.
    assert figures.in_doubt_targets >= 1, figures
    assert stats["errors_injected"] >= 1, stats


def test_kill_between_intent_and_answer_is_settled_not_resent(tmp_path: Path) -> None:
    """The sharpest moment: the intent is durable, the request went out, no answer was kept.

    Every answer of an accepted reinstall is dropped and the process is killed while
    it waits to settle; the next process must find the reinstall from the server.
    """
    inventory = make_inventory(tmp_path / "fleet.csv", 6, projects=1, seed=12)
    state, reports = tmp_path / "s.sqlite", tmp_path / "reports"
    sim_args = ["--fleet", inventory, "--drop-rate", "1", "--job-seconds", "0.5:1"]
    with SimProcess(*sim_args, env={"SIM_TOKEN": TOKEN}) as sim:
        # A long --first-poll (it also sets the settle delay) keeps targets in doubt.
        args = run_args(inventory, sim.url, state, reports, rate=50, first_poll=30)
        env = child_env(OS_AUTH_TOKEN=TOKEN)
        process = subprocess.Popen(
            orchestrator_command(*args),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: sim.stats()["dropped"] >= 6, 20)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        between = {TargetState.IN_DOUBT, TargetState.SUBMITTING}
        assert {t.state for t in read_state(state).targets} <= between
        again = run_args(inventory, sim.url, state, reports, rate=50, first_poll=0.2)
        done = run_cli(again, env, tmp_path)
        stats = sim.stats()
    assert done.code == 0, done.stderr
    problems, figures = fleet_problems(state, stats, 6, report_dir=reports)
    assert not problems, "\n".join(problems)
    assert stats["reinstalls_total"] == 6
    assert figures.resent_after_settling == 0


# -- a kill while the state file is being created -------------------------------------

KILL_IMPORT = """
import os, signal, sys
from pathlib import Path
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.store.files import file_sha256
from orchestrator.store.sqlite import StateStore

inventory, path = Path(sys.argv[1]), Path(sys.argv[2])
reader = InventoryReader(inventory, InventoryDefaults())
StateStore.create(
    path,
    reader,
    inventory_path=str(inventory),
    inventory_sha256=file_sha256(inventory),
    extra_columns=lambda: reader.columns,
    # Every row is read and inserted; the transaction is not yet committed.
    validate=lambda: os.kill(os.getpid(), signal.SIGKILL),
)
"""


KILL_SCHEMA = """
import os, signal, sys
from pathlib import Path
import orchestrator.store.sqlite as state_module
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.store.files import file_sha256
from orchestrator.store.sqlite import StateStore

written = state_module._write_schema

def write_then_die(temp: Path) -> None:
    written(temp)  # the schema is in the temporary file; it never takes its name
    os.kill(os.getpid(), signal.SIGKILL)

state_module._write_schema = write_then_die
inventory, path = Path(sys.argv[1]), Path(sys.argv[2])
reader = InventoryReader(inventory, InventoryDefaults())
StateStore.create(
    path, reader, inventory_path=str(inventory), inventory_sha256=file_sha256(inventory)
)
"""


@pytest.mark.parametrize("moment", ["inside-import", "schema-before-the-name"])
def test_kill_while_the_state_file_is_created_then_run_again(tmp_path: Path, moment: str) -> None:
    """A first `run` killed while creating its state file must not block every later run.

    With a big inventory the import takes seconds, so an operator's kill -9 may well
    land there. Nothing was sent then: running the same command again must start over.
    (A kill before that, while the schema is written, leaves only a temporary file:
    the state file takes its name with its schema, so an empty file under its name is
    never one of ours, and is refused: tests/acceptance/test_state_journal.py.)
    """
    inventory = make_inventory(tmp_path / "fleet.csv", 5, projects=1, seed=13)
    state, reports = tmp_path / "s.sqlite", tmp_path / "reports"
    script = KILL_IMPORT if moment == "inside-import" else KILL_SCHEMA
    killed = subprocess.run([sys.executable, "-c", script, str(inventory), str(state)], check=False)
    assert killed.returncode == -signal.SIGKILL
    if moment == "inside-import":
        assert state.exists()
    else:
        assert not state.exists()
        assert list(tmp_path.glob(".s.sqlite.*.new"))  # the temporary file, left behind
    with SimProcess("--fleet", inventory, "--job-seconds", "0.1", env={"SIM_TOKEN": TOKEN}) as sim:
        done = run_cli(
            run_args(inventory, sim.url, state, reports, rate=50),
            child_env(OS_AUTH_TOKEN=TOKEN),
            tmp_path,
        )
        stats = sim.stats()
    assert done.code == 0, f"exit {done.code}: {done.stderr.strip()}"
    problems, _ = fleet_problems(state, stats, 5, report_dir=reports)
    assert not problems, "\n".join(problems)
