"""SIGINT midway, then resume: exit 3 with a report, and no server is ever reinstalled twice.

The simulator runs in its own process so it outlives the interrupted run and
remembers every reinstall it accepted.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

SIM_TOKEN = "resume-token-9a7b55"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}


def succeeded(state: Path) -> set[str]:
    with contextlib.suppress(Exception), StateStore.open(state, readonly=True) as store:
        return {t.server_id for t in store.iter_targets() if t.state == "succeeded"}
    return set()


def interrupt_when(proc: subprocess.Popen[str], state: Path, at_least: int) -> float:
    """SIGINT `proc` once `at_least` targets succeeded; return when it was sent."""
    deadline = time.monotonic() + 30
    while len(succeeded(state)) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("again", ["run", "resume"])
def test_interrupted_run_resumes_without_reinstalling_anything_twice(
    again: str,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cli_start: Callable[..., subprocess.Popen[str]],
    fast: list[str],
) -> None:
    inventory = make_inventory(30, projects=3, seed=81)
    fleet = {server for _, server in load_fleet(inventory)}
    state = workdir / "fleet.state.sqlite"
    sim_args = ("--fleet", inventory, "--job-seconds", "0.3:0.6")
    with sim_process(*sim_args, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        command = ["run", inventory, "--endpoint", url, "--state", state, "--rate", "20", *fast]
        proc = cli_start(*command, env=ENV)
        sent_at = interrupt_when(proc, state, at_least=6)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - sent_at

        assert proc.returncode == 3, err
        assert stopped_in < 15  # accepted jobs drained, nothing new sent
        assert "report: " in out
        assert f"orchestrator resume --state {state}" in err
        with StateStore.open(state, readonly=True) as store:
            counts = store.counts()
            done_before = {t.server_id for t in store.iter_targets() if t.state == "succeeded"}
            assert store.run_info().ended_at is not None
        # The drain followed every accepted reinstall to its end: nothing is left in doubt.
        assert counts["succeeded"] + counts["pending"] == 30, counts
        assert 6 <= len(done_before) < 30
        first = sim_stats(url)
        assert set(first["reinstalls_by_server"]) == done_before
        assert set(first["reinstalls_by_server"].values()) == {1}

        if again == "run":
            finish = cli(*command, env=ENV)
        else:
            finish = cli("resume", "--state", state, "--endpoint", url, "--no-live", env=ENV)
        final = sim_stats(url)

    assert finish.returncode == 0, finish.stderr
    assert "finished: 30 succeeded" in finish.stdout
    assert final["reinstalls_by_server"] == {server: 1 for server in fleet}
    assert final["reinstalls_after_success"] == 0
    assert final["rejected_while_rebuilding"] == 0
    # Servers done before the stop got no new reinstall request at all, not even
    # a refused one: exactly one request per server that was still pending.
    new_requests = final["requests"]["reinstall"] - first["requests"]["reinstall"]
    assert new_requests == 30 - len(done_before)
    assert "Ecs.0100" not in final["errors_by_code"]
    with StateStore.open(state, readonly=True) as store:
        assert store.run_info().invocations == 2
        for target in store.iter_targets():
            events = store.events(target.id)
            invocations = {e.invocation for e in events}
            if target.server_id in done_before:
                assert invocations == {1}, events
            assert target.attempts == 1
