"""`plan` and `run` agree on the expected job duration, and `plan` says (exit 1) when the
window or the deadline cannot hold a single reinstall, instead of "no problems found"."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.cli.plan import plan
from orchestrator.rollout.duration import DEFAULT_EXPECTED_JOB_SECONDS
from orchestrator.rollout.options import RolloutOptions

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_plan_and_run_have_one_default_job_duration() -> None:
    option = next(p for p in plan.params if p.name == "job_seconds")
    assert option.default == DEFAULT_EXPECTED_JOB_SECONDS
    assert RolloutOptions().expected_job_seconds == DEFAULT_EXPECTED_JOB_SECONDS


def test_a_deadline_shorter_than_the_default_job_is_a_problem_for_plan_and_run_alike(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    inventory = make_inventory(4, projects=1, seed=41)
    # Ten minutes: longer than the old plan default (300 s), shorter than run's (900 s).
    deadline = (datetime.now(UTC) + timedelta(minutes=10)).isoformat(timespec="seconds")
    planned = cli("plan", inventory, "--deadline", deadline)
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert "no problems found" not in planned.stdout
    assert "problem: the time before the deadline is long enough" not in planned.stderr
    assert (
        f"problem: the time before the deadline is not long enough for one reinstall of "
        f"~{DEFAULT_EXPECTED_JOB_SECONDS:g} s" in planned.stderr
    ), planned.stderr
    assert "jobs of ~900 s" in planned.stdout

    # The run agrees: with the same default it sends nothing.
    state = workdir / "fleet.state.sqlite"
    ran = cli("run", inventory, "--simulate", "--state", state, "--deadline", deadline, *fast)
    assert ran.returncode == 3, ran.stderr
    assert "0 of 4 done" in ran.stdout
    assert "would not end before" in ran.stderr


def test_plan_exits_1_when_the_window_is_shorter_than_a_job_or_the_deadline_passed(
    make_inventory: Callable[..., Path], cli: Cli
) -> None:
    inventory = make_inventory(4, projects=1, seed=42)
    short = cli("plan", inventory, "--window", "02:00-02:10", "--tz", "Europe/Berlin")
    assert short.returncode == 1
    assert "problem: no opening of the window is long enough for one reinstall" in short.stderr
    assert "1 problem found; nothing was sent" in short.stdout

    # For a script: the same exit code, and the problem in the document.
    told = cli("plan", inventory, "--window", "02:00-02:10", "--tz", "Europe/Berlin",
               "--output", "json")  # fmt: skip
    assert told.returncode == 1, told.stderr
    document = json.loads(told.stdout)
    assert (document["outcome"], document["exit_code"]) == ("problems", 1)
    (problem,) = document["problems"]
    assert problem.startswith("no opening of the window is long enough for one reinstall")

    passed = cli("plan", inventory, "--deadline", "2020-01-01T00:00Z")
    assert passed.returncode == 1
    assert "problem: the deadline 2020-01-01 00:00:00 UTC has passed" in passed.stderr

    fits = cli("plan", inventory, "--window", "02:00-05:00", "--tz", "Europe/Berlin")
    assert fits.returncode == 0, fits.stderr
    assert "no problems found; nothing was sent" in fits.stdout

    helped = cli("plan", "--help")
    assert "1  a problem a run would meet: the window or deadline cannot hold" in helped.stdout
