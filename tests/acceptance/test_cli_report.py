"""The report through the CLI: report.html at the end of a run, --group-by remembered by
resume and `report`, a no-op re-run that keeps the campaign's duration, bad columns refused."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator.model import TargetState
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]


def report_dir_of(stdout: str) -> Path:
    match = re.search(r"^report: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def test_run_then_noop_resume_keeps_the_campaign_and_the_grouping(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(60)
    reports = workdir / "out"
    done = cli(
        "run", inventory, "--simulate", "--report-dir", reports, "--rate", "300",
        "--sim-job-seconds", "0.2:0.4", "--sim-job-fail-rate", "0.2", "--group-by", "owner", *fast,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    directory = report_dir_of(done.stdout)
    assert str(directory / "report.html") in done.stdout
    first = json.loads((directory / "summary.json").read_text())
    assert first["group_by"] == "owner"
    assert sum(sum(g.values()) for g in first["groups"].values()) == 60
    active = first["campaign"]["active_s"]
    assert active > 0

    state = workdir / "state" / f"{inventory.stem}.state.sqlite"
    again = cli("resume", "--state", state, "--report-dir", reports, *fast)
    assert again.returncode == done.returncode, again.stderr
    assert report_dir_of(again.stdout) == directory
    summary = json.loads((directory / "summary.json").read_text())
    invocations = summary["campaign"]["invocations"]
    assert [i["outcome"] for i in invocations] == ["complete", "complete"]
    # The re-run had nothing to do: the campaign keeps the first run's time, plus a little.
    assert summary["campaign"]["active_s"] >= active
    assert summary["group_by"] == "owner"  # remembered from the first invocation
    markdown = (directory / "report.md").read_text()
    assert "## By owner" in markdown and "(sum of 2 invocation(s))" in markdown
    html = (directory / "report.html").read_text()
    with StateStore.open(state, readonly=True) as store:
        failed = [t for t in store.iter_targets() if t.state is TargetState.FAILED]
    assert f"<b>{len(failed)}</b><span>failed" in html
    for target in failed:
        assert target.server_id in html and f"| {target.server_id} |" in markdown


def test_report_command_groups_and_refuses_an_unknown_column(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(20)
    reports = workdir / "out"
    done = cli(
        "run", inventory, "--simulate", "--report-dir", reports, "--rate", "300",
        "--sim-job-seconds", "0.1:0.2", *fast,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = workdir / "state" / f"{inventory.stem}.state.sqlite"

    grouped = cli("report", "--state", state, "--group-by", "region")
    assert grouped.returncode == 0, grouped.stderr
    summary = json.loads((report_dir_of(grouped.stdout) / "summary.json").read_text())
    assert summary["group_by"] == "region"
    # Every file it wrote is listed under the folder, and nothing else.
    listed = [line.strip() for line in grouped.stdout.splitlines()[1:]]
    written = sorted(str(p) for p in report_dir_of(grouped.stdout).iterdir())
    assert sorted(listed) == written and len(written) == 5, grouped.stdout
    assert sum(sum(g.values()) for g in summary["groups"].values()) == 20

    refused = cli("report", "--state", state, "--group-by", "colour")
    assert refused.returncode == 2
    assert "--group-by 'colour'" in refused.stderr and "owner" in refused.stderr


def test_run_with_an_unknown_group_by_column_sends_nothing(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(10)
    reports = workdir / "out"
    done = cli(
        "run", inventory, "--simulate", "--report-dir", reports, "--group-by", "colour", *fast
    )
    assert done.returncode == 2
    assert "--group-by 'colour'" in done.stderr
    # Checked against the inventory's columns before the state file is committed:
    # not even a state file (let alone a request) is left behind.
    assert not (workdir / "state" / f"{inventory.stem}.state.sqlite").exists()
    assert list(reports.rglob("*")) == []
