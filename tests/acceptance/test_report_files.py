"""The report folder as a shared place: --report-mode, and planted links refused."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.model import TargetState
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def only_run_folder(reports: Path) -> Path:
    (folder,) = [p for p in reports.iterdir() if p.is_dir()]
    return folder


def test_report_mode_is_honoured_by_run_report_and_resume(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    state = workdir / "fleet.sqlite"
    sim = ["--simulate", "--sim-job-seconds", "0.1", "--max-in-flight", "300", "--rate", "500"]
    done = cli("run", sample_inventory, "--state", state, "--report-mode", "0640", *sim, *fast)
    assert done.returncode == 0, done.stderr
    reports = workdir / "reports"
    assert stat.S_IMODE(reports.stat().st_mode) == 0o750  # made for files of 0640
    folder = only_run_folder(reports)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert set(modes(folder).values()) == {0o640} and len(modes(folder)) == 5

    # The state file's mode is kept by a later command that gives none...
    again = cli("report", "--state", state)
    assert again.returncode == 0, again.stderr
    assert set(modes(folder).values()) == {0o640}
    # ...and another given is used.
    again = cli("report", "--state", state, "--report-mode", "600")
    assert again.returncode == 0, again.stderr
    assert set(modes(folder).values()) == {0o600}

    # A new report folder elsewhere, by default: owner-only.
    other = workdir / "private"
    again = cli("report", "--state", workdir / "default.sqlite", "--report-dir", other)
    assert again.returncode == 2  # no such state file; nothing made
    fresh = cli("run", sample_inventory, "--state", workdir / "b.sqlite", "--report-dir", other,
                *sim, *fast)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert stat.S_IMODE(other.stat().st_mode) == 0o700
    assert set(modes(only_run_folder(other)).values()) == {0o600}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0777", "no execute bit"),
        ("0666", "writable by anyone"),
        ("0400", "the owner must be able to read and write"),
        ("rw-r--r--", "not an octal file mode"),
        ("99", "not an octal file mode"),
    ],
)
@pytest.mark.parametrize("command", ["run", "resume", "retry", "report"])
def test_a_bad_report_mode_is_a_usage_error(
    cli: Cli, workdir: Path, sample_inventory: Path, command: str, value: str, why: str
) -> None:
    state = workdir / "fleet.sqlite"
    args = {
        "run": ["run", sample_inventory, "--simulate"],
        "resume": ["resume", "--state", state],
        "retry": ["retry", "--state", state],
        "report": ["report", "--state", state],
    }[command]
    done = cli(*args, "--report-mode", value)
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--report-mode'" in done.stderr and why in done.stderr
    assert not state.exists() and not (workdir / "reports").exists()


def test_a_log_file_planted_as_a_link_is_refused(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    precious = workdir / "precious.txt"
    precious.write_text("the operator's own file\n")
    folder = workdir / "state"
    folder.mkdir()
    state = folder / "sample.state.sqlite"  # the default state file of sample.csv
    state.with_suffix(".log").symlink_to(precious)
    done = cli("run", sample_inventory, "--simulate", *fast)
    assert done.returncode == 2, done.stderr
    assert "sample.state.log is a symbolic link; refusing to write through it" in done.stderr
    assert precious.read_text() == "the operator's own file\n"
    # Refused before anything was sent: every target is still pending.
    with StateStore.open(state, readonly=True) as store:
        assert {s for s, n in store.counts().items() if n} == {TargetState.PENDING}
