"""What `--help` says, asked as an operator asks it: `-h` on every command, each command's
own exit codes, the log level's choices as they are accepted, and one name for one
option across commands."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
COMMANDS = ("run", "resume", "retry", "status", "report", "plan", "backup", "simulate")


def one_line(text: str) -> str:
    return " ".join(text.split())


def exit_codes(help_text: str) -> dict[str, str]:
    """The "Exit codes" section of a help text: code -> its meaning, on one line."""
    _, found, section = help_text.partition("Exit codes")
    assert found, help_text
    codes: dict[str, str] = {}
    current = None
    for line in section.splitlines()[1:]:
        if m := re.match(r"^\s+(\d)\s{2,}(.*)$", line):
            current = m.group(1)
            codes[current] = m.group(2)
        elif current is not None and line.strip():
            codes[current] += " " + line.strip()
        elif current is not None:
            break
    return codes


@pytest.mark.parametrize("command", [(), *((c,) for c in COMMANDS)], ids=lambda c: c or "-")
def test_h_is_help_on_every_command(cli: Cli, command: tuple[str, ...]) -> None:
    short = cli(*command, "-h")
    full = cli(*command, "--help")
    assert short.returncode == 0, short.stderr
    assert short.stdout == full.stdout
    assert short.stdout.startswith("Usage: ")
    assert "-h, --help" in short.stdout


@pytest.mark.parametrize(
    ("command", "codes", "says"),
    [
        ("run", "0123", "interrupted"),
        ("resume", "0123", "interrupted"),
        ("retry", "0123", "interrupted"),
        ("status", "0123", "as a run ending in this state would exit"),
        ("report", "0123", "as a run ending in this state would exit"),
        ("plan", "012", "--preflight"),
        ("backup", "02", "copied"),
        ("simulate", "02", "SIGTERM"),
    ],
)
def test_each_command_shows_its_own_exit_codes(
    cli: Cli, command: str, codes: str, says: str
) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0, done.stderr
    shown = exit_codes(done.stdout)
    assert "".join(sorted(shown)) == codes, shown
    assert says in one_line(done.stdout)
    if command in ("plan", "status", "report", "backup", "simulate"):
        # run's own words are not these commands' codes
        assert "interrupted, work deferred" not in one_line(done.stdout)


def test_log_level_choices_are_shown_in_lower_case_and_taken_in_any_case(
    cli: Cli, workdir: Path
) -> None:
    shown = one_line(cli("run", "--help").stdout)
    assert "--log-level [debug|info|warning]" in shown
    assert re.search(r"--log-level \[debug\|info\|warning\][^[]*\[default: info\]", shown), shown
    inventory = workdir / "one.csv"
    inventory.write_text(
        "project_id,server_id,keyname,userid\n"
        "0123456789abcdef0123456789abcdef,00000000-0000-4000-8000-000000000001,k,u\n",
        encoding="utf-8",
    )
    for level in ("DEBUG", "Info", "warning"):
        state = workdir / f"{level}.sqlite"
        done = cli(
            "run", inventory, "--simulate", "--state", state, "--log-level", level,
            "--sim-job-seconds", "0", "--first-poll", "0.1", "--no-live",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_retry_and_run_name_a_project_with_one_option(cli: Cli) -> None:
    run_help = cli("run", "--help").stdout
    retry_help = cli("retry", "--help").stdout
    assert "--only-project ID" in run_help and "--only-project ID" in retry_help
    # the old spelling still works but is no longer shown
    assert not re.search(r"--project(?![-\w])", retry_help)
