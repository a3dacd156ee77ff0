"""The hint at the end of a run fits the reason it stopped, and following it does not
hold again for the same reason: a passed deadline gets a new --deadline, a tripped
budget --ack-failures (never a plain "continue with: resume" before the "held:"
that asks for the ack), a window that closed --keep-going, a window shorter than a
job a wider --window. The CLI runs as a subprocess on the built-in simulator; the
deadline's and the budget's hinted commands are run as printed."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from orchestrator.model import FINAL_STATES
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]


def hinted(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The command of the run's last line, split as a shell would."""
    last = done.stderr.strip().splitlines()[-1]
    assert "continue with: orchestrator resume --state " in last, done.stderr
    words = shlex.split(last.split("continue with: ", 1)[1])
    assert words[:2] == ["orchestrator", "resume"]
    return words[1:]


def final(state: Path) -> int:
    with StateStore.open(state, readonly=True) as store:
        return sum(n for s, n in store.counts().items() if s in FINAL_STATES)


def kinds(state: Path) -> list[str]:
    with StateStore.open(state, readonly=True) as store:
        return [r.kind for r in store.rollout_records()]


def held_before_hint(stderr: str) -> None:
    """`held:` comes before the one `continue with:` line, which is the last."""
    lines = stderr.strip().splitlines()
    held = [i for i, line in enumerate(lines) if line.startswith("held: ")]
    hints = [i for i, line in enumerate(lines) if "continue with:" in line]
    assert len(hints) == 1 and hints[0] == len(lines) - 1, stderr
    assert held and held[-1] < hints[0], stderr


def test_a_passed_deadline_gets_a_new_deadline_that_makes_progress(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    inventory = make_inventory(6, projects=2, seed=61)
    state = workdir / "fleet.state.sqlite"
    # Jobs of 1000 s expected: none fits before a deadline 20 s away.
    deadline = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    first = cli(
        "run", inventory, "--simulate", "--state", state, *fast, "--sim-job-seconds", "0.1",
        "--deadline", deadline.isoformat(), "--expected-job-seconds", "1000",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    held_before_hint(first.stderr)
    assert "why: the deadline has passed, and a resume keeps it" in first.stderr
    args = hinted(first)
    assert args[:3] == ["resume", "--state", str(state)] and args[3] == "--deadline", args
    assert datetime.fromisoformat(args[4]) == deadline + timedelta(days=1)

    # A plain resume holds again for the same reason: the loop the hint avoids.
    again = cli("resume", "--state", state)
    assert again.returncode == 3 and final(state) == 0
    assert "--deadline" in hinted(again)

    followed = cli(*args)
    assert followed.returncode == 0, followed.stderr
    assert final(state) == 6
    assert "finished: 6 succeeded" in followed.stdout


def test_a_tripped_budget_gets_ack_failures_after_the_held_line_and_it_makes_progress(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    inventory = make_inventory(12, projects=1, seed=62)
    state = workdir / "fleet.state.sqlite"
    first = cli(
        "run", inventory, "--simulate", "--state", state, *fast, "--sim-job-seconds", "0.1",
        "--sim-job-fail-rate", "0.5", "--max-failures", "1", "--max-in-flight", "1",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    held_before_hint(first.stderr)
    assert "held: --max-failures 1 exceeded" in first.stderr
    args = hinted(first)
    assert args == ["resume", "--state", str(state), "--ack-failures"]
    assert "next: look at the failures first" in first.stderr
    before = final(state)

    followed = cli(*args)
    assert followed.returncode in (1, 3), followed.stderr
    assert final(state) > before  # it sent again
    assert "ack_failures" in kinds(state)


def test_a_closed_window_gets_keep_going_which_waits_instead_of_holding(
    workdir: Path,
    make_inventory: Callable[..., Path],
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(4, projects=1, seed=63)
    state = workdir / "fleet.state.sqlite"
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime.now(UTC).astimezone(berlin)
    # Open for the last hour, closing in two minutes: no job of 600 s fits any more.
    window = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(minutes=2):%H:%M}"
    first = cli(
        "run", inventory, "--simulate", "--state", state, *fast, "--window", window,
        "--tz", "Europe/Berlin", "--expected-job-seconds", "600",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    held_before_hint(first.stderr)
    args = hinted(first)
    assert args == ["resume", "--state", str(state), "--keep-going"]
    assert "--keep-going waits for the next opening, at " in first.stderr
    assert "CET" in first.stderr or "CEST" in first.stderr  # said in the window's zone

    proc = cli_start(*args)
    deadline = time.monotonic() + 30
    while kinds(state).count("wait:cutoff") == 0:
        assert proc.poll() is None, proc.communicate()  # it waits; it did not hold and exit
        assert time.monotonic() < deadline, "the resume neither waited nor held"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert kinds(state).count("hold:cutoff") == 1  # only the first run's


def test_a_window_shorter_than_a_job_gets_a_wider_window_that_makes_progress(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    inventory = make_inventory(4, projects=1, seed=64)
    state = workdir / "fleet.state.sqlite"
    now = datetime.now(UTC)
    window = f"{now - timedelta(minutes=1):%H:%M}-{now + timedelta(minutes=5):%H:%M}"
    first = cli(
        "run", inventory, "--simulate", "--state", state, *fast, "--window", window,
        "--tz", "UTC", "--expected-job-seconds", "600", "--sim-job-seconds", "0.1",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    assert "why: the window is shorter than one reinstall (expected 600 s)" in first.stderr
    args = hinted(first)
    assert args[3] == "--window" and args[4].startswith(window[:5]), args
    followed = cli(*args)
    assert followed.returncode == 0, followed.stderr
    assert final(state) == 4
