"""Usage errors exit 2 before anything is sent; deferred work exits 3."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM_TOKEN = "usage-token-4e44aa"
TOKEN_ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}


def test_no_endpoint_and_no_simulate_is_a_usage_error(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    inventory = make_inventory(3, projects=1)

    done = cli("run", inventory, "--state", workdir / "s.sqlite", env=TOKEN_ENV)

    assert done.returncode == 2, done.stderr
    assert "--endpoint" in done.stderr and "--simulate" in done.stderr
    assert "report: " not in done.stdout


def test_an_endpoint_without_credentials_is_a_usage_error(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    inventory = make_inventory(3, projects=1)

    done = cli("run", inventory, "--endpoint", "https://127.0.0.1:9", env={})

    assert done.returncode == 2, done.stderr
    assert "no credentials" in done.stderr
    assert "OS_AUTH_TOKEN" in done.stderr


def test_plain_http_to_a_remote_host_is_refused_before_connecting(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    no_network: tuple[str, ...],
) -> None:
    inventory = make_inventory(3, projects=1)
    # 192.0.2.1 is TEST-NET-1 (documentation only); where the OS allows it the
    # CLI runs without any network at all, so a missing check would fail, not leak.
    started = time.monotonic()
    done = cli(
        "run", inventory, "--endpoint", "http://192.0.2.1", "--state", workdir / "s.sqlite",
        env=TOKEN_ENV, timeout=30, prefix=no_network,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    assert done.returncode == 2, done.stderr
    assert "http://192.0.2.1" in done.stderr
    assert "non-loopback" in done.stderr
    # Refused, not timed out: a connection attempt would take the 10 s connect timeout.
    assert elapsed < 8.0
    assert "report: " not in done.stdout


def test_a_bad_rate_is_a_usage_error(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    inventory = make_inventory(3, projects=1)

    done = cli("run", inventory, "--simulate", "--rate", "0", "--state", workdir / "s.sqlite")

    assert done.returncode == 2, done.stderr
    assert "--rate must be a positive number" in done.stderr


def test_deferred_work_exits_3_and_names_the_resume_command(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(4, projects=1, seed=101)
    (project, busy), *_ = load_fleet(inventory)
    state = workdir / "fleet.state.sqlite"
    sim_args = ("--fleet", inventory, "--job-seconds", "2.5")
    with sim_process(*sim_args, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        # Someone else is reinstalling one of the servers right now.
        request = urllib.request.Request(
            f"{url}/v1/{project}/cloudservers/{busy}/reinstallos",
            data=json.dumps({"os-reinstall": {"keyname": "k", "userid": "u"}}).encode(),
            headers={"X-Auth-Token": SIM_TOKEN, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

        # No re-check in this run (--busy-rechecks 0): deferred at once.
        done = cli(
            "run", inventory, "--endpoint", url, "--state", state, "--rate", "50", *fast,
            "--busy-rechecks", "0", env=TOKEN_ENV,
        )  # fmt: skip
        stats = sim_stats(url)

    assert done.returncode == 3, done.stderr
    assert "3 succeeded" in done.stdout and "1 deferred" in done.stdout
    assert f"orchestrator resume --state {state}" in done.stderr
    assert "report: " in done.stdout
    # The busy server was left alone: only the other three got a reinstall from the run.
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}
    assert stats["requests"]["reinstall"] == 4
    with StateStore.open(state, readonly=True) as store:
        target = store.find(project, busy)
        assert target is not None and target.state == "pending"
        notes = [e.detail for e in store.events(target.id)]
    assert any("not by this run" in note for note in notes), notes
