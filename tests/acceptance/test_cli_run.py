"""`run --simulate`, then `status`, `report` and `plan`, as an operator types them."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from orchestrator.simulator.jobs import FAILURES
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def report_dir_of(stdout: str) -> Path:
    match = re.search(r"^report: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def test_simulated_run_of_the_sample_then_status_and_report(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    reports = workdir / "out"
    done = cli(
        "run", sample_inventory, "--simulate", "--report-dir", reports,
        "--rate", "300", "--sim-job-seconds", "0.2:0.5", *fast,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "finished: 300 succeeded" in done.stdout
    state = workdir / "state" / "sample.state.sqlite"  # the default, out of --report-dir
    with StateStore.open(state, readonly=True) as store:
        run_id = store.run_info().run_id
        assert store.counts()["succeeded"] == 300
    directory = report_dir_of(done.stdout)
    assert directory == reports / run_id
    summary = json.loads((directory / "summary.json").read_text())
    assert (summary["total"], summary["complete"]) == (300, True)
    assert summary["counts"]["succeeded"] == 300
    rows = read_csv(directory / "targets.csv")
    assert len(rows) == 300 and {r["state"] for r in rows} == {"succeeded"}
    assert (directory / "report.md").is_file()
    assert state.with_suffix(".log").is_file()

    text = cli("status", "--state", state)
    assert text.returncode == 0, text.stderr
    assert f"run {run_id} " in text.stdout and "300 targets" in text.stdout
    assert re.search(r"^\s+succeeded\s+300$", text.stdout, re.MULTILINE)
    assert re.search(r"^\s+pending\s+0$", text.stdout, re.MULTILINE)
    assert "failures:" not in text.stdout

    as_json = cli("status", "--state", state, "--json")
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["run_id"] == run_id
    assert status["total"] == 300 and status["counts"]["succeeded"] == 300
    assert status["failures"] == []

    again = workdir / "again"
    rewritten = cli("report", "--state", state, "--report-dir", again)
    assert rewritten.returncode == 0, rewritten.stderr  # as the run: all succeeded
    assert report_dir_of(rewritten.stdout) == again / run_id
    assert json.loads((again / run_id / "summary.json").read_text())["counts"] == summary["counts"]
    assert read_csv(again / run_id / "targets.csv") == rows

    # Without --report-dir, the report goes back where the run wrote it.
    (directory / "summary.json").unlink()
    in_place = cli("report", "--state", state)
    assert in_place.returncode == 0, in_place.stderr
    assert report_dir_of(in_place.stdout) == directory
    assert json.loads((directory / "summary.json").read_text())["counts"] == summary["counts"]


def test_failed_jobs_exit_1_with_error_codes_in_the_report(
    cli: Cli, workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    reports = workdir / "out"
    done = cli(
        "run", sample_inventory, "--simulate", "--report-dir", reports,
        "--rate", "300", "--sim-job-seconds", "0.2:0.4", "--sim-job-fail-rate", "0.3", *fast,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    rows = read_csv(report_dir_of(done.stdout) / "targets.csv")
    failed = [r for r in rows if r["state"] == "failed"]
    assert {r["state"] for r in rows} == {"succeeded", "failed"}
    assert 40 <= len(failed) <= 140  # about 30% of 300
    reasons = dict(FAILURES)
    for row in failed:
        assert row["error_code"] in reasons
        assert row["fail_reason"] == reasons[row["error_code"]]

    shown = cli("status", "--state", workdir / "state" / "sample.state.sqlite", "--json")
    assert shown.returncode == 1  # as the run: finished, some failed
    status = json.loads(shown.stdout)
    assert status["counts"]["failed"] == len(failed)
    assert sum(status["failures_by_error_code"].values()) == len(failed)
    assert sum(group["count"] for group in status["failures"]) == len(failed)
    by_server = {row["server_id"]: row["error_code"] for row in failed}
    for group in status["failures"]:
        assert group["error_code"] in reasons
        assert 1 <= len(group["examples"]) <= 5
        assert all(by_server[e["server_id"]] == group["error_code"] for e in group["examples"])


def test_plan_prints_counts_per_project_and_writes_nothing(
    cli: Cli, workdir: Path, sample_inventory: Path
) -> None:
    done = cli("plan", sample_inventory, "--keyname", "k", "--userid", "u")

    assert done.returncode == 0, done.stderr
    per_project = Counter(r["project_id"] for r in read_csv(sample_inventory))
    assert len(per_project) == 4
    for project, count in per_project.items():
        assert f"  project {project}: {count}\n" in done.stdout
    assert "300 valid targets" in done.stdout
    assert "nothing was sent" in done.stdout
    assert sorted(p.name for p in workdir.iterdir()) == ["sample.csv"]


def test_plan_lists_duplicates_and_errors_and_exits_2(
    cli: Cli, workdir: Path, sample_inventory: Path
) -> None:
    lines = sample_inventory.read_text().splitlines()
    header, first, second = lines[0], lines[1], lines[2]
    broken = second.replace(second.split(",")[0], "NOT-A-PROJECT", 1)
    inventory = workdir / "plan.csv"
    inventory.write_text("\n".join([header, first, first, broken]) + "\n")

    done = cli("plan", inventory, "--rate", "5")

    assert done.returncode == 2
    assert f"{inventory}:3" in done.stderr and "line 2" in done.stderr  # the duplicate
    assert f"{inventory}:4: field 'project_id'" in done.stderr
    # The problems only: no estimate (nor anything else) for a run that cannot start.
    assert done.stdout == ""
    assert "shortest possible duration" not in done.stderr
    assert "nothing was sent" not in done.stderr


def test_plan_shows_the_effective_defaults_of_a_json_inventory(cli: Cli) -> None:
    sample = Path(__file__).resolve().parents[2] / "inventories" / "sample.json"
    done = cli("plan", sample)

    assert done.returncode == 0, done.stderr
    assert "None" not in done.stdout
    assert "keyname=fleet-key (inventory file)" in done.stdout
    assert "userid=c4647159c324c9859b810e766ec9d286 (inventory file)" in done.stdout
    assert "mode (not set)" in done.stdout

    overridden = cli("plan", sample, "--keyname", "cli-key", "--no-byol")
    assert "keyname=fleet-key (inventory file)" in overridden.stdout  # the file wins
    assert "byol=false (command line)" in overridden.stdout
