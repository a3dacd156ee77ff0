"""A rehearsal tells the truth across invocations: `run --simulate` stopped with two
SIGINTs (jobs accepted, not followed) and then resumed finds those jobs where they
were, in the simulated fleet kept beside the state file, and settles them; no server
is reinstalled twice and none is failed for a job the simulator forgot. Without that
file, a resume with targets mid-way is refused (exit 2, nothing changed) and pointed
at `orchestrator simulate`."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.model import TargetState
from orchestrator.store.sqlite import StateStore
from orchestrator.store.status import read_status

pytestmark = pytest.mark.timeout(120)

Cli = Callable[..., subprocess.CompletedProcess[str]]
CliStart = Callable[..., subprocess.Popen[str]]
TARGETS = 30
MID_WAY = (
    TargetState.SUBMITTING,
    TargetState.SUBMITTED,
    TargetState.RUNNING,
    TargetState.IN_DOUBT,
)


def world_file(state: Path) -> Path:
    return state.with_name(state.name + ".simulated.jsonl")


# What every opening of a state file writes, a refused one too (store/journal.py): who
# holds it and since when; nothing of the targets or the invocations.
OPENING_MARKS = ("'journal'", "'journal_opened_at'", "'lock_holder'")


def dump(state: Path) -> list[str]:
    """Every row of the state file, as SQL (its pages may be checkpointed meanwhile),
    but the marks of its opening."""
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as conn:
        rows = list(conn.iterdump())
    return [r for r in rows if not (r.startswith('INSERT INTO "meta"') and
                                    any(f"VALUES({m}," in r for m in OPENING_MARKS))]  # fmt: skip


def halted_twice(cli_start: CliStart, inventory: Path, state: Path, fast: list[str]) -> None:
    """A simulated run with slow jobs, stopped with two SIGINTs while jobs are under way."""
    proc = cli_start(
        "run", inventory, "--simulate", "--state", state, "--rate", "100",
        "--max-in-flight", "12", "--sim-job-seconds", "3:4", *fast,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        counts = read_status(state).counts if state.exists() else {}
        if counts.get("submitted", 0) + counts.get("running", 0) >= 6:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr
    assert "accepted jobs were not followed further" in stderr
    with StateStore.open(state, readonly=True) as store:
        counts = store.counts()
    assert sum(counts.get(s, 0) for s in MID_WAY) > 0, counts  # the case that lied


def test_a_simulated_run_halted_twice_resumes_to_the_truth(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, cli_start: CliStart,
    fast: list[str],
) -> None:  # fmt: skip
    inventory = make_inventory(TARGETS, projects=2, seed=81)
    state = workdir / "fleet.state.sqlite"
    halted_twice(cli_start, inventory, state, fast)

    resumed = cli("resume", "--state", state, *fast)
    assert resumed.returncode == 0, resumed.stderr
    assert f"finished: {TARGETS} succeeded" in resumed.stdout
    with StateStore.open(state, readonly=True) as store:
        targets = list(store.iter_targets())
    assert {t.state for t in targets} == {TargetState.SUCCEEDED}
    assert not [t for t in targets if t.error_code], "a failure the simulator made up"
    # The simulated fleet saw one reinstall per server, across both invocations.
    jobs = [json.loads(line) for line in world_file(state).read_text().splitlines()[1:]]
    per_server = Counter(job["server_id"] for job in jobs)
    assert set(per_server) == {t.server_id for t in targets}
    assert set(per_server.values()) == {1}


def test_a_simulated_resume_without_its_fleet_is_refused_before_anything_changes(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, cli_start: CliStart,
    fast: list[str],
) -> None:  # fmt: skip
    inventory = make_inventory(TARGETS, projects=1, seed=82)
    state = workdir / "fleet.state.sqlite"
    halted_twice(cli_start, inventory, state, fast)
    world_file(state).unlink(missing_ok=True)
    before = dump(state)

    refused = cli("resume", "--state", state, *fast)
    assert refused.returncode == 2, refused.stderr
    assert "orchestrator simulate" in refused.stderr
    assert str(world_file(state)) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert dump(state) == before  # not even an invocation recorded
    assert not world_file(state).exists()
