"""--output json, as a pipeline reads it: stdout is one JSON document and nothing else,
for run, resume, retry, plan and status, whatever the exit code; people's lines go to
stderr. Every document is parsed with json.loads from a subprocess's stdout."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.model import TargetState

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM = ("--simulate", "--sim-job-seconds", "0", "--rate", "500")

RUN_KEYS = [
    "schema", "command", "outcome", "exit_code", "state", "shard", "run_id", "total",
    "counts", "held", "deferred", "stopped", "aborted", "requests", "report",
    "report_error", "unrecorded_jobs", "error",
]  # fmt: skip
PLAN_KEYS = [
    "schema", "command", "outcome", "exit_code", "inventory", "projects", "modes", "apis",
    "estimate", "problems", "resume", "preflight", "error",
]  # fmt: skip
STATES = [s.value for s in TargetState]


def document(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one document on stdout (json.loads refuses anything before or after it)."""
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict)
    assert doc["exit_code"] == done.returncode, done.stderr
    return doc


def test_run_resume_and_retry_print_one_document_each(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(6, projects=2, name="fleet.csv")
    # Every job fails: the canary fails and holds the run.
    held = cli(
        "run", inventory, *SIM, "--sim-job-fail-rate", "1", "--canary", "1",
        "--output", "json", *fast,
    )  # fmt: skip
    doc = document(held)
    assert list(doc) == RUN_KEYS
    assert (doc["schema"], doc["command"], doc["exit_code"]) == ("orchestrator.run/1", "run", 3)
    assert doc["state"] == str(Path("state") / "fleet.state.sqlite")
    assert list(doc["counts"]) == STATES and doc["total"] == 6
    assert (doc["counts"]["failed"], doc["counts"]["pending"]) == (1, 5)
    assert doc["held"] and "canary" in doc["held"]
    assert doc["requests"]["reinstall"] == 1 and doc["error"] is None
    report = doc["report"]
    assert Path(workdir / report["directory"]).is_dir()
    assert len(report["files"]) == 5 and all((workdir / f).is_file() for f in report["files"])
    assert "stopped before finishing" in held.stderr  # people's lines, on stderr

    resumed = cli("resume", "--state", doc["state"], "--output", "json", *fast)
    again = document(resumed)
    assert list(again) == RUN_KEYS and again["command"] == "resume"
    assert again["run_id"] == doc["run_id"] and again["held"]

    # Past the canary (jobs succeed now: the simulator's failure rate is not saved)...
    acked = document(cli("resume", "--state", doc["state"], "--ack-failures", "--output", "json",
                         *fast))  # fmt: skip
    assert (acked["outcome"], acked["exit_code"], acked["held"]) == ("complete", 1, None)
    assert acked["counts"]["failed"] == 1 and acked["counts"]["succeeded"] == 5
    # ...and the canary's failure sent again.
    retried = cli("retry", "--state", doc["state"], "--output", "json", *fast)
    third = document(retried)
    assert list(third) == RUN_KEYS and third["command"] == "retry"
    assert third["outcome"] == "complete" and third["exit_code"] == 0
    assert third["counts"]["succeeded"] == 6 and third["requests"]["reinstall"] == 1

    # Stopped before it could run: still one document, with the error.
    refused = cli("retry", "--state", doc["state"], "--output", "json", *fast)
    error = document(refused)
    assert list(error) == RUN_KEYS and error["exit_code"] == 2
    assert error["outcome"] == "error" and "nothing to retry" in error["error"]
    assert "nothing to retry" in refused.stderr


def test_plan_prints_one_document_valid_or_not(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    inventory = make_inventory(8, projects=2, name="fleet.csv")
    done = cli("plan", inventory, "--waves", "2,100%", "--output", "json")
    doc = document(done)
    assert list(doc) == PLAN_KEYS
    assert (doc["schema"], doc["outcome"], doc["exit_code"]) == ("orchestrator.plan/1", "ok", 0)
    assert doc["inventory"]["rows"] == 8 and doc["inventory"]["selected"] == 8
    assert sum(doc["projects"].values()) == 8
    assert any(line.startswith("waves: 1: 2") for line in doc["estimate"]), doc["estimate"]
    assert doc["resume"] is None and doc["preflight"] is None
    assert "no problems found" in done.stderr

    bad = workdir / "bad.csv"
    bad.write_text("project_id,server_id\nnot-a-project,also-bad\n", encoding="utf-8")
    refused = cli("plan", bad, "--output", "json")
    error = document(refused)
    assert list(error) == PLAN_KEYS and error["exit_code"] == 2 and error["outcome"] == "error"
    assert f"{bad}:2: field 'project_id'" in error["error"]


def test_status_prints_one_document_also_after_watching_a_run(
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
    workdir: Path,
    make_inventory: Callable[..., Path],
    fast: list[str],
) -> None:
    inventory = make_inventory(6, projects=1, name="fleet.csv")
    state = workdir / "state" / "fleet.state.sqlite"
    proc = cli_start(
        "run", inventory, "--simulate", "--sim-job-seconds", "1:2", "--max-in-flight", "2",
        *fast,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    watched = cli("status", "--watch", "0.3", "--output", "json", timeout=60)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    doc = document(watched)  # one document, at the end: not one per refresh
    assert doc["schema"] == "orchestrator.status/1" and doc["outcome"] == "complete"
    assert doc["counts"]["succeeded"] == 6 and doc["held"] is None
    assert doc["report"] and Path(doc["report"]).is_dir()
    assert "the only one here" in watched.stderr

    once = document(cli("status", "--state", state, "--output", "json"))
    assert once["exit_code"] == 0 and once["state_path"] == str(state)
    assert set(once) == set(doc)

    missing = cli("status", "--state", workdir / "nope.sqlite", "--output", "json")
    error = document(missing)
    assert set(error) == set(doc) and error["outcome"] == "error"
    assert "does not exist" in error["error"]
