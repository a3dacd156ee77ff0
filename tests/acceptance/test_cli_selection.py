"""--only-project, --exclude and --limit on `run` and `plan`: only the selection is sent."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SIM_TOKEN

from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_only_the_selected_servers_are_imported_and_sent(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(30, projects=3)
    rows = read_csv(inventory)
    project = rows[0]["project_id"]
    mine = [r["server_id"] for r in rows if r["project_id"] == project]
    exclude = workdir / "exclude.csv"
    exclude.write_text(f"project_id,server_id\n{project},{mine[0]}\n{project},{mine[2]}\n")
    expected = [s for s in mine if s not in (mine[0], mine[2])][:4]
    selection = ("--only-project", project, "--exclude", exclude, "--limit", "4")
    state = workdir / "part.sqlite"

    plan = cli("plan", inventory, *selection)
    assert plan.returncode == 0, plan.stderr
    assert f"  project {project}: 4\n" in plan.stdout
    assert "selection: 26 inventory row(s) left out (" in plan.stdout

    with sim_process(
        "--fleet", inventory, "--job-seconds", "0.1:0.2", env={"SIM_TOKEN": SIM_TOKEN}
    ) as url:
        done = cli(
            "run", inventory, *selection, "--endpoint", url, "--state", state, *fast, env=ENV
        )
        assert done.returncode == 0, done.stderr
        stats = sim_stats(url)
        assert sorted(stats["reinstalls_by_server"]) == sorted(expected)
        # The selected project is read in pages (a page holds its 10 servers): a few list
        # calls, none for each server, and none at all for the 26 left out.
        assert stats["requests"]["server"] == 0
        assert 1 <= stats["requests"]["list_v1"] <= 4, stats["requests"]

        other = cli("run", inventory, "--limit", "5", "--endpoint", url, "--state", state, env=ENV)
        assert other.returncode == 2
        assert "this state file was made with another selection" in other.stderr
        assert "--state NEW_PATH" in other.stderr
        same = cli("run", inventory, "--endpoint", url, "--state", state, *fast, env=ENV)
        assert same.returncode == 0, same.stderr  # flags not given again: resumes as made
        assert sim_stats(url)["requests"]["reinstall"] == 4

    with StateStore.open(state, readonly=True) as store:
        assert [t.server_id for t in store.iter_targets()] == expected
    match = re.search(r"^report: (.+)$", done.stdout, re.MULTILINE)
    assert match
    report = workdir / match.group(1)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["selection"]["left_out"] == 26 and summary["selection"]["selected"] == 4
    n_project = len(mine)
    assert summary["selection"]["left_out_by"] == {
        "only_project": 30 - n_project,
        "exclude": 2,
        "limit": n_project - 6,
    }
    md = (report / "report.md").read_text()
    assert (
        f"- Selection: 26 inventory row(s) left out ({30 - n_project} by --only-project,"
        f" 2 by --exclude, {n_project - 6} by --limit); 4 selected." in md
    )


def test_a_selection_of_nothing_and_bad_flags_are_usage_errors(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    inventory = make_inventory(6, projects=2)
    state = workdir / "none.sqlite"

    nobody = cli("run", inventory, "--only-project", "f" * 32, "--simulate", "--state", state)
    assert nobody.returncode == 2
    assert "leave no server of the 6 in the inventory" in nobody.stderr
    assert not state.exists()
    bad = cli("run", inventory, "--only-project", "NOT-A-PROJECT", "--simulate", "--state", state)
    assert bad.returncode == 2 and "must be a project ID" in bad.stderr
    zero = cli("plan", inventory, "--limit", "0")
    assert zero.returncode == 2 and "--limit 0: must be at least 1" in zero.stderr
