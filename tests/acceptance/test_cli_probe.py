"""`orchestrator probe SERVER` end to end, against `orchestrator simulate` as a subprocess:
one named server reinstalled, every reading recorded, what moved said."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SIM_TOKEN

Cli = Callable[..., subprocess.CompletedProcess[str]]
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}
PROJECT = "0123456789abcdef0123456789abcdef"
SERVER = "01234567-89ab-cdef-0123-456789abcdef"
INSTANT = ("--queue-seconds", "0", "--power-off-seconds", "0", "--stopped-seconds", "0")
FAST = ("--job-seconds", "0.5", *INSTANT)


def probe_args(url: str, *more: str) -> tuple[str, ...]:
    return (
        "probe", SERVER, "--project", PROJECT, "--keyname", "kp-test", "--userid", "u-1",
        "--endpoint", url, "--interval", "0.2", "--watch-after", "10", *more,
    )  # fmt: skip


def readings(workdir: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    [csv_path] = (workdir / "reports").glob("probe-*.csv")
    [json_path] = (workdir / "reports").glob("probe-*.json")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return rows, json.loads(json_path.read_text(encoding="utf-8"))


def test_probe_in_a_cloud_where_launched_at_never_moves_says_the_disk_changed(
    cli: Cli,
    workdir: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    """launched_at stays, the disk is replaced, the server boots for a while after the
    job's SUCCESS: the probe records each reading and says so."""
    world = ("--launched-at", "never", "--come-back-seconds", "1.5")
    with sim_process(*FAST, *world, env=SIM_ENV) as url:
        done = cli(*probe_args(url, "--yes"), env=ENV)
        stats = sim_stats(url)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "launched_at moved: no" in out
    assert "system disk replaced: yes (volume " in out
    assert "ended SUCCESS" in out and "back in ACTIVE" in out
    assert stats["reinstalls_by_server"] == {SERVER: 1}
    rows, document = readings(workdir)
    assert (document["launched_at_moved"], document["system_disk_replaced"]) == (False, True)
    servers = [r for r in rows if r["what"] == "server"]
    assert servers[0]["system_volume"] != servers[-1]["system_volume"]
    assert any(r["task_state"] == "rebuilding" for r in servers)
    assert any(r["task_state"] == "powering-on" for r in servers)  # booting, recorded
    assert {r["job_status"] for r in rows if r["what"] == "job"} >= {"SUCCESS"}
    assert all(r["seconds"] and r["at"] for r in rows)


def test_probe_with_duplicate_records_what_the_second_reinstall_did(
    cli: Cli,
    workdir: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    """A cloud that accepts a second reinstall and fails both: the probe says the second
    was ACCEPTED and how each job ended; the default world moves launched_at."""
    with sim_process(*FAST, "--second-reinstall", "fail-both", env=SIM_ENV) as url:
        done = cli(*probe_args(url, "--yes", "--duplicate"), env=ENV)
        stats = sim_stats(url)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "a second reinstall while the first ran: ACCEPTED as job" in out
    assert "ended FAIL (Ecs.0603)" in out  # the first job, failed by the second
    assert "system disk replaced: no" in out
    assert stats["accepted_second"] == 1 and stats["reinstalls_by_server"] == {SERVER: 2}
    _, document = readings(workdir)
    assert document["duplicate_status"] == "FAIL"


def test_probe_in_the_refusing_world_says_the_second_was_refused(
    cli: Cli, workdir: Path, sim_process: Callable[..., Any]
) -> None:
    with sim_process(*FAST, env=SIM_ENV) as url:
        done = cli(*probe_args(url, "--yes", "--duplicate"), env=ENV)
    assert done.returncode == 0, done.stderr
    assert "a second reinstall while the first ran: refused: HTTP 400 Ecs.0100" in done.stdout
    assert "launched_at moved: yes" in done.stdout


def test_probe_with_cloud_init_sends_the_v2_reinstall(
    cli: Cli,
    workdir: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    """A region that publishes only the Cloud-Init reinstall (OTC eu-de)."""
    with sim_process(*FAST, "--reinstall-apis", "v2", env=SIM_ENV) as url:
        done = cli(*probe_args(url, "--yes", "--cloud-init"), env=ENV)
        stats = sim_stats(url)
    assert done.returncode == 0, done.stderr
    assert "ended SUCCESS" in done.stdout
    assert stats["reinstalls_by_api"] == {"v1": 0, "v2": 1}


def test_probe_without_yes_and_no_terminal_sends_nothing(
    cli: Cli,
    workdir: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    with sim_process(*FAST, env=SIM_ENV) as url:
        done = cli(*probe_args(url), env=ENV)
        bad = cli(*probe_args(url, "--yes")[:1], "not-a-uuid", *probe_args(url)[2:], env=ENV)
        stats = sim_stats(url)
    assert done.returncode == 2
    assert "confirm on a terminal, or give --yes" in done.stderr
    assert bad.returncode == 2
    assert "SERVER: must be a lowercase UUID" in bad.stderr
    assert stats["requests"].get("reinstall", 0) == 0
    assert not (workdir / "reports").exists() or not list((workdir / "reports").glob("probe-*"))
