"""The simulator in its own process, the orchestrator in another: token and AK/SK auth."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

SimProcess = Callable[..., contextlib.AbstractContextManager[str]]
AUTH_ENV = (
    "OS_AUTH_TOKEN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
)
FAST = [
    "--rate",
    "50",
    "--poll-rate",
    "100",
    "--first-poll",
    "0.2",
    "--poll-cap",
    "0.5",
    "--no-live",
]

TOKEN = "process-token-7d2e91"
AK, SK = "AKPROCESSTEST0001", "sk-process-secret-0001"

CASES = {
    "token": ({"SIM_TOKEN": TOKEN}, {"OS_AUTH_TOKEN": TOKEN}),
    "aksk": ({"SIM_AK": AK, "SIM_SK": SK}, {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}),
}


def orchestrator(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("auth", sorted(CASES))
def test_run_against_a_simulator_process(
    auth: str,
    tmp_path: Path,
    make_inventory: Callable[..., Path],
    sim_process: SimProcess,
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    inventory = make_inventory(30, projects=3, seed=71)
    sim_env, run_env = CASES[auth]
    state = tmp_path / "fleet.state.sqlite"
    reports = ["--report-dir", "reports"]  # relative to the run's directory, tmp_path
    with sim_process("--fleet", str(inventory), "--job-seconds", "0.2:0.4", env=sim_env) as url:
        done = orchestrator(
            ["run", str(inventory), "--endpoint", url, "--state", str(state), *FAST, *reports],
            run_env,
            tmp_path,
        )
        stats = sim_stats(url)
    assert done.returncode == 0, done.stderr
    assert f"report: {tmp_path / 'reports'}{os.sep}" in done.stdout  # absolute, as resume's
    assert stats["unauthorized"] == 0
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}
    with StateStore.open(state, readonly=True) as store:
        assert store.run_info().options["auth"] == auth
    # The secret never reaches the log file or the output.
    secret = TOKEN if auth == "token" else SK
    log_text = state.with_suffix(".log").read_text()
    assert "succeeded" in log_text
    assert secret not in log_text + done.stdout + done.stderr


def test_a_wrong_secret_key_stops_the_run_with_exit_2(
    tmp_path: Path,
    make_inventory: Callable[..., Path],
    sim_process: SimProcess,
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    inventory = make_inventory(10, projects=1, seed=72)
    state = tmp_path / "fleet.state.sqlite"
    reports = ["--report-dir", str(tmp_path / "reports")]
    with sim_process("--fleet", str(inventory), env={"SIM_AK": AK, "SIM_SK": SK}) as url:
        done = orchestrator(
            ["run", str(inventory), "--endpoint", url, "--state", str(state), *FAST, *reports],
            {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": "not-the-secret"},
            tmp_path,
        )
        stats = sim_stats(url)
    assert done.returncode == 2, done.stderr
    assert "credentials" in done.stderr
    assert stats["unauthorized"] > 0
    assert stats["reinstalls_by_server"] == {}
    with StateStore.open(state, readonly=True) as store:
        counts = store.counts()
    assert counts["pending"] == 10  # nothing done, nothing lost: a later run starts afresh
