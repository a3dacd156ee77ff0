"""A state file cannot be mistaken for a new one: a lost journal, an empty file, a device.

Through the CLI as a subprocess, against a simulator process. While a run holds a
SQLite state file, its latest changes live in the file's journal (`STATE-wal`). An
operator who deletes the "leftover" journal after a crash, or copies the state file
alone, used to get a new campaign: the inventory imported again and every server
sent a second reinstall. And `--state` naming an empty file or a device node had it
deleted and a database put in its place.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import IncompleteImport
from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM_TOKEN = "journal-token-8a2c"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}
POLL = ["--first-poll", "0.2", "--poll-cap", "0.5", "--poll-rate", "500", "--no-live"]
# Jobs of 3 s, longer than a Date header's resolution (a real one takes minutes).
SIM_TIMING = (
    "--queue-seconds", "0", "--power-off-seconds", "0", "--stopped-seconds", "0",
    "--job-seconds", "3",
)  # fmt: skip

pytestmark = pytest.mark.timeout(150)


def states(state: Path) -> dict[str, str]:
    with StateStore.open(state, readonly=True) as store:
        return {t.server_id: t.state.value for t in store.iter_targets()}


def running(state: Path) -> bool:
    """A target of the run is running; False while the inventory is still imported."""
    try:
        return "running" in set(states(state).values())
    except IncompleteImport:
        return False


def test_a_journal_removed_after_a_kill_is_refused_then_settled_with_journal_lost(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
) -> None:
    inventory = make_inventory(16, projects=2, seed=61)
    state = workdir / "fleet.state.sqlite"
    elsewhere = workdir / "other-host"
    elsewhere.mkdir()
    with sim_process("--fleet", inventory, *SIM_TIMING, env=SIM_ENV) as url:
        args = ["--endpoint", url, "--state", state, "--rate", "4", "--settle-quiet", "4", *POLL]
        proc = cli_start("run", inventory, *args, env=ENV)
        deadline = time.monotonic() + 30
        while sim_stats(url)["reinstalls_total"] < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.communicate(timeout=10)
        sent = sim_stats(url)["reinstalls_total"]
        # The state file copied alone to another host, and the "leftovers" removed here.
        shutil.copy2(state, elsewhere / state.name)
        for suffix in ("-wal", "-shm"):
            Path(f"{state}{suffix}").unlink()

        refusals = [
            cli("run", inventory, *args, env=ENV),
            cli("resume", "--state", state, env=ENV),
            cli("resume", "--state", elsewhere / state.name, env=ENV),
        ]
        assert sim_stats(url)["reinstalls_total"] == sent  # none of them sent anything
        status = cli("status", "--state", state)
        recovered = cli("resume", "--state", state, "--journal-lost", env=ENV, timeout=120)
        stats = sim_stats(url)

    for refused in refusals:
        assert refused.returncode == 2, refused.stderr
        text = " ".join(refused.stderr.split())
        assert "journal" in text and "is missing" in text, text
        assert "--journal-lost" in text and "orchestrator backup" in text, text
        assert "import" not in text and "delete" not in text, text
    assert "warning:" in status.stderr and "journal" in status.stderr
    assert recovered.returncode == 0, recovered.stderr
    assert set(states(state).values()) == {"succeeded"}
    assert stats["overlapping_servers"] == []
    assert stats["reinstalled_after_success"] == []
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}


def test_a_cleanly_closed_state_file_copied_alone_or_backed_up_resumes_anywhere(
    workdir: Path, sample_inventory: Path, cli: Cli, fast: list[str]
) -> None:
    state = workdir / "fleet.state.sqlite"
    done = cli("run", sample_inventory, "--simulate", "--state", state, "--limit", "5", *fast)
    assert done.returncode == 0, done.stderr
    assert not Path(f"{state}-wal").exists()  # written back into the file at the end
    alone = workdir / "copy.sqlite"
    shutil.copy2(state, alone)
    backed_up = workdir / "backup.sqlite"
    backup = cli("backup", "--state", state, backed_up)
    assert backup.returncode == 0, backup.stderr
    assert stat.S_IMODE(backed_up.stat().st_mode) == 0o600
    assert not Path(f"{backed_up}-wal").exists()
    # The rehearsal's simulated fleet goes with the backup, owner-only too.
    world = Path(f"{backed_up}.simulated.jsonl")
    assert world.read_bytes() == Path(f"{state}.simulated.jsonl").read_bytes()
    assert stat.S_IMODE(world.stat().st_mode) == 0o600

    for copy in (alone, backed_up):
        resumed = cli("resume", "--state", copy, *fast)
        assert resumed.returncode == 0, resumed.stderr
        assert set(states(copy).values()) == {"succeeded"}


def test_backup_is_refused_while_a_run_holds_the_state_file_and_never_overwrites(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
) -> None:
    inventory = make_inventory(4, projects=1, seed=62)
    state = workdir / "fleet.state.sqlite"
    taken = workdir / "taken.sqlite"
    taken.write_text("someone's file")
    with sim_process("--fleet", inventory, "--job-seconds", "30", env=SIM_ENV) as url:
        proc = cli_start("run", inventory, "--endpoint", url, "--state", state, *POLL, env=ENV)
        deadline = time.monotonic() + 30
        while not state.exists() or not running(state):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        busy = cli("backup", "--state", state, workdir / "b.sqlite")
        proc.kill()
        proc.communicate(timeout=10)
    assert busy.returncode == 2 and "in use" in busy.stderr, busy.stderr
    assert not (workdir / "b.sqlite").exists()
    clash = cli("backup", "--state", state, taken)
    assert clash.returncode == 2 and "File exists" in clash.stderr, clash.stderr
    assert taken.read_text() == "someone's file"


def _device_or_pipe(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:  # a private copy of /dev/null's node: needs CAP_MKNOD
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize("kind", ["char-device", "fifo"])
def test_a_state_path_naming_a_device_or_a_pipe_is_refused_and_left_alone(
    kind: str, workdir: Path, sample_inventory: Path, cli: Cli, fast: list[str]
) -> None:
    node = workdir / "state-node"
    try:
        _device_or_pipe(node, kind)
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    before = node.stat()

    for args in (["run", sample_inventory, "--simulate"], ["resume"], ["status"]):
        result = cli(*args, "--state", node, *(fast if args[0] != "status" else []), timeout=30)
        assert result.returncode == 2, result.stderr
        assert "not a regular file" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr

    after = node.stat()
    assert (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino,
        before.st_mode,
        before.st_rdev,
    )
