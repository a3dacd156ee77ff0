"""`orchestrator plan --preflight` as an operator runs it: exit codes, files, no reinstall."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIM_TOKEN = "acceptance-preflight-token-9a1"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
Cli = Callable[..., subprocess.CompletedProcess[str]]
SimProcess = Callable[..., contextlib.AbstractContextManager[str]]


def test_preflight_exit_codes_and_report(
    workdir: Path,
    cli: Cli,
    sim_process: SimProcess,
    sim_stats: Callable[[str], dict[str, Any]],
    make_inventory: Callable[..., Path],
) -> None:
    inventory = make_inventory(40)
    sim_args = (
        "--fleet",
        inventory,
        "--seed",
        "4",
        "--locked-rate",
        "0.2",
        "--running-rate",
        "0.3",
    )
    with sim_process(*sim_args, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        blocked = cli("plan", inventory, "--preflight", "--endpoint", url, env=ENV)
        # --stop-server clears the running ones; the locked ones still block.
        stop = cli("plan", inventory, "--preflight", "--stop-server", "--endpoint", url, env=ENV)
        refused = cli(
            "plan",
            inventory,
            "--preflight",
            "--endpoint",
            url,
            env={"OS_AUTH_TOKEN": "wrong-token-7f3e"},
        )
        stats = sim_stats(url)

    assert blocked.returncode == 1, blocked.stderr
    assert "locked" in blocked.stdout and "running" in blocked.stdout
    assert "BLOCKS" in blocked.stdout and "no reinstall was sent" in blocked.stdout
    assert stop.returncode == 1, stop.stderr
    assert "locked" in stop.stdout and "running" not in stop.stdout
    assert refused.returncode == 2
    assert "credentials refused" in refused.stderr
    assert "wrong-token-7f3e" not in refused.stdout + refused.stderr  # the token is never shown
    assert stats["requests"]["reinstall"] == 0
    assert stats["reinstall_requests_by_api"] == {"v1": 0, "v2": 0}

    summary = json.loads((workdir / "reports" / f"preflight-{inventory.stem}" / "preflight.json")
                         .read_text())  # fmt: skip
    assert summary["exit_code"] == 1
    assert summary["counts"]["locked"] == len(summary["servers"]["locked"]) > 0
    assert summary["blocking_findings"] == ["locked"]  # the last run was with --stop-server
    assert summary["total"] == 40


def test_preflight_nothing_blocks_and_unreachable_endpoint(
    workdir: Path,
    cli: Cli,
    sim_process: SimProcess,
    make_inventory: Callable[..., Path],
) -> None:
    inventory = make_inventory(20)
    with sim_process("--fleet", inventory, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        clean = cli("plan", inventory, "--preflight", "--endpoint", url, env=ENV)
    assert clean.returncode == 0, clean.stderr
    assert "ready" in clean.stdout and "nothing blocks" in clean.stdout
    rows = (workdir / "reports" / f"preflight-{inventory.stem}" / "preflight.csv").read_text()
    assert rows.count("\n") == 21 and ",ready,no," in rows

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = cli(
        "plan", inventory, "--preflight", "--endpoint", f"http://127.0.0.1:{port}", env=ENV,
        timeout=90,
    )  # fmt: skip
    assert down.returncode == 2, down.stdout + down.stderr
    assert "does not answer" in down.stderr


def test_plan_state_shows_what_a_resume_would_do(
    workdir: Path, cli: Cli, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(12)
    state = workdir / "campaign.sqlite"
    done = cli("run", inventory, "--simulate", "--state", state, *fast)
    assert done.returncode == 0, done.stderr
    shown = cli("plan", inventory, "--state", state, "--preflight", "--simulate")
    assert shown.returncode == 0, shown.stderr
    assert "a resume would leave 12 final target(s) alone (12 succeeded)" in shown.stdout
    assert "settle 0 in doubt" in shown.stdout and "send 0 pending" in shown.stdout
    assert "done" in shown.stdout  # final targets are not read again
    assert "(no read(s))" in shown.stdout
