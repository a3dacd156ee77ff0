"""Rollout control from the command line: kill -9 mid-plan, resume, and the plan holds.

The simulator runs in its own process so that it outlives the killed run and
remembers what it accepted. Every resume is `orchestrator resume --state S`
with no rollout option: the waves, the window, the budgets and the caps come
back from the state file.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.model import Target
from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

SIM_TOKEN = "rollout-token-4d21e0"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}


def targets(state: Path) -> list[Target]:
    with StateStore.open(state, readonly=True) as store:
        return list(store.iter_targets())


def kinds(state: Path) -> list[str]:
    with StateStore.open(state, readonly=True) as store:
        return [r.kind for r in store.rollout_records()]


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_waves_in_order(found: list[Target]) -> None:
    waves = sorted({t.wave for t in found if t.wave is not None})
    for wave in waves[1:]:
        before = [at(t.finished_at) for t in found if t.wave == wave - 1]
        after = [at(t.intent_at) for t in found if t.wave == wave and t.intent_at]
        if after:
            assert max(before) <= min(after), f"wave {wave} started before wave {wave - 1} ended"


def test_waves_canary_and_project_cap_survive_kill_and_resume(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cli_start: Callable[..., subprocess.Popen[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(16, projects=2, seed=5)
    state = workdir / "fleet.state.sqlite"
    sim = ("--fleet", inventory, "--job-seconds", "0.3:0.5")
    with sim_process(*sim, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        proc = cli_start(
            "run", inventory, "--endpoint", url, "--state", state, "--rate", "50", *fast,
            "--canary", "2", "--waves", "4,50%", "--project-max-in-flight", "2", env=ENV,
        )  # fmt: skip
        # Killed once wave 3 has started: the canary and wave 2 are final.
        wait_for(
            lambda: any(t.wave == 3 and t.intent_at for t in targets(state)),
            proc,
            "wave 3 never started",
        )
        kill(proc)
        plan = [t.wave for t in targets(state)]
        assert plan == [1] * 2 + [2] * 4 + [3] * 8 + [4] * 2

        done = cli("resume", "--state", state, *fast, env=ENV)
        assert done.returncode == 0, done.stderr
        after = targets(state)
        assert [t.wave for t in after] == plan  # the plan was not made again
        assert all(t.state == "succeeded" for t in after)
        assert_waves_in_order(after)
        stats = sim_stats(url)
        assert max(stats["max_concurrent_by_project"].values()) <= 2
        assert set(stats["reinstalls_by_server"].values()) == {1}

    status = cli("status", "--state", state)
    assert "wave 3   8 targets: 8 succeeded" in status.stdout, status.stdout
    report = json.loads(next((workdir / "reports").glob("*/summary.json")).read_text())
    assert [w["total"] for w in report["rollout"]["waves"]] == [2, 4, 8, 2]
    assert report["options"]["rollout"]["project_max_in_flight"] == 2  # from the state file


def test_window_not_yet_open_survives_kill_and_resume(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cli_start: Callable[..., subprocess.Popen[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(6, projects=2, seed=6)
    state = workdir / "fleet.state.sqlite"
    opens = datetime.now(UTC) + timedelta(seconds=5)
    with sim_process("--fleet", inventory, "--job-seconds", "0.2:0.4",
                     env={"SIM_TOKEN": SIM_TOKEN}) as url:  # fmt: skip
        proc = cli_start(
            "run", inventory, "--endpoint", url, "--state", state, *fast,
            "--not-before", opens.isoformat(), env={**ENV, "TZ": "UTC"},
        )  # fmt: skip
        wait_for(lambda: "wait:not_yet_open" in kinds(state), proc, "no wait recorded")
        kill(proc)
        assert sim_stats(url)["requests"]["reinstall"] == 0  # nothing sent before it opens

        done = cli("resume", "--state", state, *fast, env=ENV)
        assert done.returncode == 0, done.stderr
        found = targets(state)
        assert min(at(t.intent_at) for t in found) >= opens
        log = (workdir / "fleet.state.log").read_text()
        # Said to the second, in the operator's zone (UTC here, as TZ says).
        assert f"waiting for the window to open at {opens:%Y-%m-%d %H:%M:%S} UTC" in log


def test_deadline_cutoff_then_resume_keeps_the_deadline(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(30, projects=2, seed=7)
    state = workdir / "fleet.state.sqlite"
    # Two at a time, about a second each: 30 servers need 15 s, the deadline allows 7.
    deadline = datetime.now(UTC) + timedelta(seconds=7)
    with sim_process("--fleet", inventory, "--job-seconds", "0.8:1.0",
                     env={"SIM_TOKEN": SIM_TOKEN}) as url:  # fmt: skip
        first = cli(
            "run", inventory, "--endpoint", url, "--state", state, *fast,
            "--max-in-flight", "2", "--deadline", deadline.isoformat(),
            "--expected-job-seconds", "1.5", env=ENV,
        )  # fmt: skip
        assert first.returncode == 3, first.stderr
        assert "would not end before" in first.stderr
        sent = {t.server_id for t in targets(state) if t.intent_at}
        assert 0 < len(sent) < 30
        assert set(sim_stats(url)["reinstalls_by_server"]) == sent

        # The resume keeps the (passed) deadline: nothing more is sent.
        again = cli("resume", "--state", state, *fast, env=ENV)
        assert again.returncode == 3
        assert set(sim_stats(url)["reinstalls_by_server"]) == sent
    md = next((workdir / "reports").glob("*/report.md")).read_text()
    assert "## Rollout" in md
    assert "target(s) left pending" in md


def test_failing_canary_and_budget_need_an_ack(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(10, projects=2, seed=8)
    fleet = load_fleet(inventory)
    state = workdir / "fleet.state.sqlite"
    partial = workdir / "partial.csv"  # the simulator lacks the first server: Ecs.0114
    partial.write_text(
        "project_id,server_id\n" + "".join(f"{p},{s}\n" for p, s in fleet[1:]), encoding="utf-8"
    )
    with sim_process("--fleet", partial, "--job-seconds", "0.2:0.3",
                     env={"SIM_TOKEN": SIM_TOKEN}) as url:  # fmt: skip
        first = cli(
            "run", inventory, "--endpoint", url, "--state", state, *fast,
            "--canary", "2", "--max-failures", "0", env=ENV,
        )  # fmt: skip
        assert first.returncode == 3
        assert "--max-failures 0 exceeded: 1 failures" in first.stderr
        touched = set(sim_stats(url)["reinstalls_by_server"])
        assert touched <= {fleet[1][1]}  # at most the other canary

        again = cli("resume", "--state", state, *fast, env=ENV)
        assert again.returncode == 3
        assert "--ack-failures" in again.stderr
        assert set(sim_stats(url)["reinstalls_by_server"]) == touched

        acked = cli("resume", "--state", state, *fast, "--ack-failures", env=ENV)
        assert acked.returncode == 1, acked.stderr  # the one failure stays failed
        assert len(sim_stats(url)["reinstalls_by_server"]) == 9
    status = cli("status", "--state", state)
    assert "tripped" not in status.stdout  # acknowledged


def test_usage_errors_of_the_rollout_options(
    workdir: Path,
    make_inventory: Callable[..., Path],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(4, projects=1, seed=9)
    state = workdir / "fleet.state.sqlite"
    base = ("run", inventory, "--simulate", "--state", state, *fast)
    for args, message in [
        (("--confirm-waves",), "there is no terminal"),
        (("--waves", "0,5"), "--waves: item 1 ('0')"),
        (("--deadline", "2026-12-01T05:00"), "has no UTC offset"),
        (("--window", "02:00-05:00", "--tz", "Mars/Base"), "not an IANA time zone"),
        (("--keep-going",), "needs --window"),
        (("--max-failures", "2x"), "--max-failures: '2x'"),
    ]:
        result = cli(*base, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert not state.exists()
    ok = cli(*base, "--waves", "2", "--sim-job-seconds", "0.1")
    assert ok.returncode == 0, ok.stderr
    changed = cli("resume", "--state", state, "--waves", "3", *fast)
    assert changed.returncode == 2
    assert "the waves were fixed in the state file" in changed.stderr


def test_plan_shows_waves_window_and_estimate(
    make_inventory: Callable[..., Path],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    inventory = make_inventory(1000, projects=4, seed=10)
    result = cli(
        "plan", inventory, "--canary", "5", "--waves", "10%,100%", "--rate", "10",
        "--max-in-flight", "100", "--job-seconds", "300", "--window", "02:00-05:00",
        "--tz", "Europe/Berlin", "--project-max-in-flight", "20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "waves: 1 (canary): 5, 2: 100, 3: 895" in out
    assert "estimated duration:" in out
    assert "80 in flight (--project-max-in-flight 20)" in out
    assert "window: 02:00-05:00 Europe/Berlin next opening" in out
    assert "nothing was sent" in out


def test_project_budget_trip_survives_kill_and_needs_an_ack(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cli_start: Callable[..., subprocess.Popen[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(16, projects=2, seed=11)
    fleet = load_fleet(inventory)
    bad = fleet[0][0]
    missing = [pair for pair in fleet if pair[0] == bad][:2]
    state = workdir / "fleet.state.sqlite"
    partial = workdir / "partial.csv"
    partial.write_text(
        "project_id,server_id\n" + "".join(f"{p},{s}\n" for p, s in fleet if (p, s) not in missing),
        encoding="utf-8",
    )
    with sim_process("--fleet", partial, "--job-seconds", "0.3:0.5",
                     env={"SIM_TOKEN": SIM_TOKEN}) as url:  # fmt: skip
        proc = cli_start(
            "run", inventory, "--endpoint", url, "--state", state, *fast, "--rate", "10",
            "--max-in-flight", "2", "--max-failures-per-project", "1", env=ENV,
        )  # fmt: skip
        wait_for(lambda: "trip:project_budget" in kinds(state), proc, "the budget never tripped")
        kill(proc)
        sent_to_bad = {s for s in sim_stats(url)["reinstalls_by_server"]
                       if (bad, s) in fleet}  # fmt: skip

        again = cli("resume", "--state", state, *fast, env=ENV)
        assert again.returncode == 3, again.stderr
        assert f"--max-failures-per-project 1 exceeded in project {bad}" in again.stderr
        after = {s for s in sim_stats(url)["reinstalls_by_server"] if (bad, s) in fleet}
        assert after == sent_to_bad  # the tripped project got nothing after the kill
        others = [t for t in targets(state) if t.project_id != bad]
        assert all(t.state == "succeeded" for t in others)  # the other project finished

        acked = cli("resume", "--state", state, *fast, "--ack-failures", env=ENV)
        assert acked.returncode == 1, acked.stderr  # the two missing servers stay failed
        final = targets(state)
        assert sum(t.state == "failed" for t in final) == 2
        assert all(t.is_final for t in final)
