"""`status` while a run goes on (a subprocess run with slow jobs) and after it; `report`'s
exit code; `status --watch` until the run ends."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.console.status_view import STATUS_SCHEMA
from orchestrator.store.status import read_status

Cli = Callable[..., subprocess.CompletedProcess[str]]

SCHEMA_KEYS = {
    "schema", "outcome", "run_id", "state_path", "inventory_path", "created_at",
    "generated_at", "total", "counts", "final", "complete", "exit_code", "invocations",
    "first_started_at", "invocation", "failures_by_error_code", "failures", "in_doubt",
    "deferred", "requests", "throttled", "wave", "window", "held", "report", "error",
}  # fmt: skip
INVOCATION_KEYS = {
    "number", "state", "pid", "started_at", "ended_at", "outcome", "elapsed_s",
    "final_since_start", "targets_per_s", "eta_s",
}  # fmt: skip


def wait_for_work_in_progress(proc: subprocess.Popen[str], state: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        if state.exists():
            try:
                snap = read_status(state)
            except Exception:
                snap = None
            if snap is not None and snap.counts["submitted"] + snap.counts["running"] > 0:
                return
        time.sleep(0.1)


def test_status_during_a_run_then_after_it(
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
    workdir: Path,
    make_inventory: Callable[..., Path],
    fast: list[str],
) -> None:
    inventory = make_inventory(60, projects=2, seed=7)
    state = workdir / "fleet.state.sqlite"
    proc = cli_start(
        "run", inventory, "--simulate", "--state", state, "--rate", "100",
        "--max-in-flight", "12", "--sim-job-seconds", "2:3", "--sim-job-fail-rate", "0.25",
        "--sim-seed", "3", *fast,
    )  # fmt: skip
    wait_for_work_in_progress(proc, state)

    started = time.monotonic()
    during = cli("status", "--state", state, "--json")
    took = time.monotonic() - started
    assert during.returncode == 3, during.stderr  # not finished
    doc = json.loads(during.stdout)
    assert took < 10, took  # a subprocess start; the read itself is milliseconds
    assert set(doc) == SCHEMA_KEYS and doc["schema"] == STATUS_SCHEMA
    assert set(doc["invocation"]) == INVOCATION_KEYS
    assert doc["invocation"]["state"] == "running"
    assert doc["invocation"]["pid"] == proc.pid
    assert doc["counts"]["submitted"] + doc["counts"]["running"] > 0
    assert doc["complete"] is False and doc["exit_code"] == 3
    assert doc["total"] == 60

    text = cli("status", "--state", state)
    assert text.returncode == 3
    assert "running since" in text.stdout and f"(pid {proc.pid})" in text.stdout
    assert "exit 3: not finished" in text.stdout

    # --watch follows the run to its end, one JSON document per refresh off a terminal.
    watch = cli("status", "--state", state, "--watch", "0.5", "--json", timeout=60)
    docs = [json.loads(line) for line in watch.stdout.splitlines()]
    assert len(docs) >= 2
    assert docs[0]["invocation"]["state"] == "running"
    assert docs[-1]["invocation"]["state"] == "ended" and docs[-1]["complete"] is True

    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr  # some jobs failed
    assert watch.returncode == 1

    after = cli("status", "--state", state, "--json")
    assert after.returncode == 1
    final = json.loads(after.stdout)
    assert final["invocation"]["outcome"] == "complete"
    assert final["counts"]["failed"] == sum(final["failures_by_error_code"].values()) > 0
    for group in final["failures"]:
        assert 1 <= len(group["examples"]) <= 5
        assert all(set(e) == {"project_id", "server_id", "detail"} for e in group["examples"])
    assert final["invocation"]["eta_s"] == 0.0

    report = cli("report", "--state", state, "--report-dir", workdir / "again")
    assert report.returncode == 1, report.stderr


def test_status_after_success_exits_0_and_after_a_kill_exits_3(
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
    workdir: Path,
    make_inventory: Callable[..., Path],
    fast: list[str],
) -> None:
    inventory = make_inventory(5, projects=1, seed=9)
    state = workdir / "small.state.sqlite"
    done = cli(
        "run", inventory, "--simulate", "--state", state, "--sim-job-seconds", "0.1", *fast
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "finished: 5 succeeded" in done.stdout
    status = cli("status", "--state", state)
    assert status.returncode == 0 and "exit 0: every target succeeded" in status.stdout
    missing = cli("status", "--state", workdir / "nope.sqlite")
    assert missing.returncode == 2 and "does not exist" in missing.stderr

    killed_state = workdir / "killed.state.sqlite"
    proc = cli_start(
        "run", make_inventory(20, projects=1, seed=10), "--simulate", "--state", killed_state,
        "--sim-job-seconds", "5", *fast,
    )  # fmt: skip
    wait_for_work_in_progress(proc, killed_state)
    proc.kill()
    proc.wait(timeout=10)
    after_kill = cli("status", "--state", killed_state, "--json")
    assert after_kill.returncode == 3
    doc = json.loads(after_kill.stdout)
    assert doc["invocation"]["state"] == "interrupted"
    assert doc["invocation"]["outcome"] == "interrupted"
    assert doc["invocation"]["eta_s"] is None
    text = cli("status", "--state", killed_state)
    assert "its process is gone" in text.stdout and text.returncode == 3
