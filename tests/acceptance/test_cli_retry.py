"""`orchestrator retry` and `retry.csv`, as an operator uses them, against a simulator process."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SIM_TOKEN

from orchestrator.model import TargetState
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def report_dir_of(stdout: str, workdir: Path) -> Path:
    match = re.search(r"^report: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return workdir / match.group(1)  # relative to the CLI's working directory


def failed_codes(state: Path) -> dict[str, str]:
    with StateStore.open(state, readonly=True) as store:
        return {
            t.server_id: t.error_code or ""
            for t in store.iter_targets()
            if t.state is TargetState.FAILED
        }


def new_reinstalls(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    """Reinstalls the simulator accepted between two stats readings, by server."""
    old, new = before["reinstalls_by_server"], after["reinstalls_by_server"]
    return Counter({s: n - old.get(s, 0) for s, n in new.items() if n - old.get(s, 0)})


def test_retry_sends_again_only_the_selected_failed_targets(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(40, projects=2)
    state = workdir / "fleet.state.sqlite"
    sim_args = (
        "--fleet",
        inventory,
        "--job-fail-rate",
        "0.5",
        "--seed",
        "7",
        "--job-seconds",
        "0.1:0.3",
    )
    with sim_process(*sim_args, env=SIM_ENV) as url:
        first = cli(
            "run", inventory, "--endpoint", url, "--state", state, *fast, "--rate", "200", env=ENV
        )
        assert first.returncode == 1, first.stderr
        failed = failed_codes(state)
        code, _ = Counter(failed.values()).most_common(1)[0]
        chosen = {server for server, c in failed.items() if c == code}
        assert 0 < len(chosen) < len(failed)  # the selection leaves some failed ones alone
        before = sim_stats(url)

        nothing = cli(
            "retry", "--state", state, "--error-code", "Nope.0000", *fast, "--rate", "200", env=ENV
        )
        assert nothing.returncode == 2
        assert "nothing to retry: no target matches --state-is failed --error-code Nope.0000" in (
            nothing.stderr
        )
        unverified = cli("retry", "--state", state, "--state-is", "unverified", env=ENV)
        assert unverified.returncode == 2 and "--i-checked-unverified" in unverified.stderr
        assert sim_stats(url)["requests"] == before["requests"]  # zero requests on bad input

        again = cli(
            "retry", "--state", state, "--error-code", code, *fast, "--rate", "200", env=ENV
        )
        assert again.returncode in (0, 1), again.stderr
        after = sim_stats(url)

    sent = new_reinstalls(before, after)
    assert set(sent) == chosen and set(sent.values()) == {1}
    assert after["requests"]["reinstall"] - before["requests"]["reinstall"] == len(chosen)
    assert after["overlapping_attempts"] == 0 and after["reinstalls_after_success"] == 0
    with StateStore.open(state, readonly=True) as store:
        for target in store.iter_targets():
            events = [e.detail for e in store.events(target.id)]
            retried = [d for d in events if d.startswith("retry requested")]
            if target.server_id in chosen:
                assert target.attempts == 2 and target.is_final
                assert retried == [
                    f"retry requested (--state-is failed --error-code {code}); was failed after"
                    f" 1 attempt(s): {code} " + retried[0].split(f"{code} ", 2)[-1]
                ]
                assert events.count("intent to send a reinstall") == 2  # history kept
            else:
                assert retried == [] and target.attempts <= 1
                if target.server_id in failed:
                    assert (target.state, target.error_code) == ("failed", failed[target.server_id])
        assert store.invocations()[-1].options["report_dir"]
    assert (report_dir_of(again.stdout, workdir) / "retry.csv").is_file()


def test_retry_csv_is_a_valid_inventory_that_run_takes_as_it_is(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    source = make_inventory(30, projects=3)
    rows = read_csv(source)
    # Per-row values a command-line default would get wrong.
    for n, row in enumerate(rows):
        row["keyname"] = f"key-{n % 3}"
        row["mode"] = "withStopServer" if n % 2 else ""
        row["byol"] = "yes" if n % 5 == 0 else ""
        row["cloud_init"] = "true" if n % 4 == 0 else ""
    inventory = workdir / "fleet.csv"
    with inventory.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    by_server = {row["server_id"]: row for row in rows}

    sim_args = (
        "--fleet",
        inventory,
        "--job-fail-rate",
        "0.5",
        "--locked-rate",
        "0.1",
        "--job-seconds",
        "0.1:0.3",
    )
    with sim_process(*sim_args, "--seed", "3", env=SIM_ENV) as url:
        first = cli(
            "run", inventory, "--endpoint", url, "--state", workdir / "a.sqlite", *fast, env=ENV
        )
        assert first.returncode == 1, first.stderr
        retry_csv = report_dir_of(first.stdout, workdir) / "retry.csv"
        retry_rows = read_csv(retry_csv)
        failed = failed_codes(workdir / "a.sqlite")
        assert {r["server_id"] for r in retry_rows} == set(failed)
        header = retry_csv.read_text(encoding="utf-8").splitlines()[0]
        assert header == (
            "project_id,server_id,region,keyname,userid,mode,byol,cloud_init,name,owner"
        )
        for row in retry_rows:
            given = by_server[row["server_id"]]
            assert {k: row[k] for k in ("project_id", "region", "keyname", "userid", "mode")} == {
                k: given[k] for k in ("project_id", "region", "keyname", "userid", "mode")
            }
            assert row["byol"] == ("true" if given["byol"] else "")
            assert row["cloud_init"] == ("true" if given["cloud_init"] else "false")
            assert (row["name"], row["owner"]) == (given["name"], given["owner"])
        md = (report_dir_of(first.stdout, workdir) / "report.md").read_text()
        assert f"`retry.csv`: {len(failed)} target(s) failed, deferred or in doubt" in md

        before = sim_stats(url)
        # As it is: no --keyname/--userid, nothing edited.
        second = cli(
            "run", retry_csv, "--endpoint", url, "--state", workdir / "b.sqlite", *fast, env=ENV
        )
        assert second.returncode in (0, 1), second.stderr
        after = sim_stats(url)

    with StateStore.open(workdir / "b.sqlite", readonly=True) as store:
        targets = list(store.iter_targets())
    assert {t.server_id for t in targets} == set(failed)
    for target in targets:
        given = by_server[target.server_id]
        assert (target.spec.keyname, target.spec.mode or "") == (given["keyname"], given["mode"])
        assert target.spec.cloud_init == bool(given["cloud_init"])
        assert target.spec.extra == {"name": given["name"], "owner": given["owner"]}
    assert set(new_reinstalls(before, after)) <= set(failed)
    by_api = Counter(
        "v2" if by_server[s]["cloud_init"] else "v1" for s in new_reinstalls(before, after)
    )
    assert {
        k: after["reinstalls_by_api"][k] - before["reinstalls_by_api"][k] for k in ("v1", "v2")
    } == {
        "v1": by_api["v1"],
        "v2": by_api["v2"],
    }
    summary = json.loads((report_dir_of(second.stdout, workdir) / "summary.json").read_text())
    assert summary["total"] == len(failed)


def test_retry_narrows_by_only_project_as_run_does_and_still_takes_project(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(20, projects=2, seed=3)
    state = workdir / "fleet.state.sqlite"
    sim = ("--simulate", "--sim-job-seconds", "0", "--sim-job-fail-rate", "0.5", "--sim-seed", "4")
    first = cli("run", inventory, "--state", state, *sim, *fast)
    assert first.returncode == 1, first.stderr
    with StateStore.open(state, readonly=True) as store:
        failed = [t for t in store.iter_targets() if t.state is TargetState.FAILED]
    projects = sorted({t.project_id for t in failed})
    assert len(projects) == 2, "both projects need a failed target"

    def retried() -> dict[str, set[str]]:
        with StateStore.open(state, readonly=True) as store:
            again = [t for t in store.iter_targets() if t.attempts == 2]
        return {p: {t.server_id for t in again if t.project_id == p} for p in projects}

    by_new_name = cli("retry", "--state", state, "--only-project", projects[0], *sim, *fast)
    assert by_new_name.returncode in (0, 1), by_new_name.stderr
    assert "--only-project " + projects[0] in by_new_name.stderr
    first_round = retried()
    assert first_round[projects[0]] and not first_round[projects[1]]

    by_old_name = cli("retry", "--state", state, "--project", projects[1], *sim, *fast)
    assert by_old_name.returncode in (0, 1), by_old_name.stderr
    second_round = retried()
    assert second_round[projects[0]] == first_round[projects[0]] and second_round[projects[1]]
