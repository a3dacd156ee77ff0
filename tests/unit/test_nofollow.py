"""Files the product creates in a folder others may write to never go through a link
someone planted there: each planted link's target is unchanged afterwards."""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cloud.client import ServerView
from orchestrator.console.logs import setup_logging
from orchestrator.engine.campaign import check_report_dir
from orchestrator.engine.preflight import Finding, Verdict
from orchestrator.engine.preflight_run import Checked, Preflight, write_preflight
from orchestrator.errors import ReportError, UsageError
from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.nofollow import (
    LinkRefused,
    create_beside,
    create_new,
    folder_mode,
    make_dir,
    open_append,
    parse_mode,
    probe_writable,
)
from orchestrator.report import write_report

PRECIOUS = b"the operator's own file\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the attacker wants overwritten (anywhere the operator can write)."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """The shared report folder, where anyone can plant links."""
    path = tmp_path / "shared"
    path.mkdir()
    return path


def plant(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def test_the_writability_probe_never_writes_through_a_planted_link(
    shared: Path, victim: Path
) -> None:
    # The name the probe had: its process id, known to anyone who sees the process.
    plant(shared / f".write-test-{os.getpid()}", victim)
    check_report_dir(shared)
    assert victim.read_bytes() == PRECIOUS
    # Nothing of the probe's is left behind (the planted link is not ours to remove).
    assert sorted(p.name for p in shared.iterdir()) == [f".write-test-{os.getpid()}"]


def test_a_new_report_folder_is_owner_only_by_default(tmp_path: Path) -> None:
    check_report_dir(tmp_path / "reports")
    assert stat.S_IMODE((tmp_path / "reports").stat().st_mode) == 0o700
    check_report_dir(tmp_path / "team", 0o640)
    assert stat.S_IMODE((tmp_path / "team").stat().st_mode) == 0o750


def preflight_result() -> Preflight:
    spec = TargetSpec("a" * 32, "00000000-0000-4000-8000-000000000001", "kp", "u1", 2)
    server = ServerView(spec.server_id, "=cmd|' /C calc'!A0", None, "\tbusy", None)
    return Preflight([Checked(spec, Verdict(Finding.BUSY, "\r-2+3"), server)])


def test_preflight_never_writes_through_a_planted_link(shared: Path, victim: Path) -> None:
    folder = shared / "preflight-fleet"
    folder.mkdir()
    # The temp names it had (the pid), and the final names themselves.
    plant(folder / f".preflight.csv.{os.getpid()}.tmp", victim)
    plant(folder / f".preflight.json.{os.getpid()}.tmp", victim)
    plant(folder / "preflight.csv", victim)
    csv_path, json_path = write_preflight(folder, preflight_result(), "fleet.csv", "now")
    assert victim.read_bytes() == PRECIOUS
    for path in (csv_path, json_path):
        assert not path.is_symlink() and path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Every text cell a spreadsheet would run is neutralised, tab and CR included.
    with csv_path.open(newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["reason"], row["status"], row["task_state"]) == (
        "'\r-2+3",
        "'=cmd|' /C calc'!A0",
        "'\tbusy",
    )


def test_a_planted_preflight_folder_link_is_refused(shared: Path, victim: Path) -> None:
    plant(shared / "preflight-fleet", victim.parent)
    with pytest.raises(ReportError, match="symbolic link"):
        write_preflight(shared / "preflight-fleet", preflight_result(), "fleet.csv", "now")
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def run_info() -> RunInfo:
    return RunInfo(
        run_id="run-1",
        state_path="/x/state.sqlite",
        inventory_path="/x/fleet.csv",
        inventory_sha256="ab" * 32,
        created_at="2026-11-26T19:00:00Z",
        started_at=None,
        ended_at=None,
        invocations=1,
        options={},
        requests={},
        throttled=0,
    )


def targets() -> Iterator[Target]:
    spec = TargetSpec("a" * 32, "00000000-0000-4000-8000-000000000001", "kp", "u1", 2)
    yield Target(id=1, spec=spec, state=TargetState.FAILED, error_code="Ecs.0100")


def test_a_planted_run_folder_link_is_refused(shared: Path, victim: Path) -> None:
    plant(shared / "run-1", victim.parent)
    with pytest.raises(ReportError, match="run-1: is a symbolic link"):
        write_report(shared, run_info(), targets)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def test_report_files_replace_planted_links_never_their_targets(shared: Path, victim: Path) -> None:
    folder = shared / "run-1"
    folder.mkdir()
    for name in ("summary.json", "targets.csv", "retry.csv", "report.md", "report.html"):
        plant(folder / name, victim)
    paths = write_report(shared, run_info(), targets)
    assert victim.read_bytes() == PRECIOUS
    for path in (paths.summary_json, paths.targets_csv, paths.report_md, paths.report_html):
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def no_logging() -> Iterator[None]:
    yield
    import logging

    root = logging.getLogger("orchestrator")
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()


@pytest.mark.usefixtures("no_logging")
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_log_file_that_is_a_link_is_refused(shared: Path, victim: Path, dangling: bool) -> None:
    target = victim.parent / "created-by-the-link.log" if dangling else victim
    log = plant(shared / "fleet.state.log", target)
    with pytest.raises(UsageError, match=r"fleet\.state\.log is a symbolic link; refusing"):
        setup_logging(log, "INFO")
    assert victim.read_bytes() == PRECIOUS
    assert not (victim.parent / "created-by-the-link.log").exists()


@pytest.mark.usefixtures("no_logging")
def test_a_log_file_is_created_owner_only_and_appended_to(shared: Path) -> None:
    log = shared / "fleet.state.log"
    log.write_text("earlier run\n")
    log.chmod(0o600)
    setup_logging(log, "INFO")
    import logging

    logging.getLogger("orchestrator.run").warning("this run")
    for handler in logging.getLogger("orchestrator").handlers:
        handler.flush()
    assert log.read_text().startswith("earlier run\n") and "this run" in log.read_text()
    fresh = shared / "new.log"
    setup_logging(fresh, "INFO")
    assert stat.S_IMODE(fresh.stat().st_mode) & 0o077 == 0


def test_the_helpers_refuse_links_and_existing_names(shared: Path, victim: Path) -> None:
    link = plant(shared / "name", victim)
    with pytest.raises(FileExistsError):
        create_new(link)
    with pytest.raises(LinkRefused):
        open_append(link)
    with pytest.raises(LinkRefused):
        make_dir(plant(shared / "folder", victim.parent), link_ok=False)
    assert victim.read_bytes() == PRECIOUS
    first, out1 = create_beside(shared / "final.csv")
    second, out2 = create_beside(shared / "final.csv")
    out1.close()
    out2.close()
    assert first != second and first.name.startswith(".final.csv.")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    probe_writable(shared)
    assert {p.name for p in shared.iterdir()} == {"name", "folder", first.name, second.name}


@pytest.mark.parametrize(
    ("text", "mode"), [("0600", 0o600), ("640", 0o640), ("0o660", 0o660), ("0644", 0o644)]
)
def test_report_modes_in_octal(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("rw-r-----", "not an octal file mode"),
        ("0888", "not an octal file mode"),
        ("", "not an octal file mode"),
        ("04600", "only permission bits"),
        ("0400", "owner must be able to read and write"),
        ("0700", "no execute bit"),
        ("0666", "writable by anyone"),
    ],
)
def test_bad_report_modes_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_mode(text)


def test_folder_modes_follow_who_reads_the_files() -> None:
    assert [folder_mode(m) for m in (0o600, 0o640, 0o644, 0o660)] == [
        0o700,
        0o750,
        0o755,
        0o770,
    ]
