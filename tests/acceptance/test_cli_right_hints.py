"""Hints that fit: a canary that does not exist is named as such (never the breaker's
"is the project ID right?"); a refused password is said once and gets the password's
fix (never OS_AUTH_TOKEN); preflight's blocked servers go to `run --exclude` as they
are (blocked.csv, and an `action` column in preflight.csv)."""

from __future__ import annotations

import contextlib
import csv
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

SIM_TOKEN = "right-hints-token-5c1e"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
Cli = Callable[..., subprocess.CompletedProcess[str]]
SimProcess = Callable[..., contextlib.AbstractContextManager[str]]


def test_a_missing_canary_is_named_with_what_to_do(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: SimProcess,
    cli: Cli,
    fast: list[str],
) -> None:
    inventory = make_inventory(8, projects=1, seed=71)
    fleet = load_fleet(inventory)
    partial = workdir / "partial.csv"  # the simulator lacks the first server: Ecs.0114
    partial.write_text(
        "project_id,server_id\n" + "".join(f"{p},{s}\n" for p, s in fleet[1:]), encoding="utf-8"
    )
    state = workdir / "fleet.state.sqlite"
    with sim_process("--fleet", partial, "--job-seconds", "0.1:0.2", "--queue-seconds", "0",
                     env={"SIM_TOKEN": SIM_TOKEN}) as url:  # fmt: skip
        first = cli(
            "run", inventory, "--endpoint", url, "--state", state, *fast, "--canary", "3",
            env=ENV,
        )  # fmt: skip
        again = cli("resume", "--state", state, *fast, env=ENV)  # the hint from the state
    project, server = fleet[0]
    for done in (first, again):
        assert done.returncode == 3, done.stderr
        held = next(line for line in done.stderr.splitlines() if line.startswith("held: "))
        assert "project ID right" not in done.stderr, done.stderr
        assert f"canary server {project}/{server}: the server does not exist (Ecs.0114)" in held
        assert "not in this project, or was deleted: check its server ID and project" in held
        assert done.stderr.strip().splitlines()[-1].endswith("--ack-failures")


def test_a_refused_password_is_said_once_with_the_passwords_fix(
    workdir: Path, make_inventory: Callable[..., Path], sim_process: SimProcess, cli: Cli
) -> None:
    inventory = make_inventory(6, projects=2, seed=72)
    users = {"SIM_USERS": "alice:pw-right-1d2:OTC00000000001000000001"}
    with sim_process("--fleet", inventory, env=users) as url:
        env = {
            "OS_AUTH_URL": url + "/v3",
            "OS_USERNAME": "alice",
            "OS_PASSWORD": "pw-WRONG-77a",
            "OS_USER_DOMAIN_NAME": "OTC00000000001000000001",
            "OS_REGION_NAME": "eu-de",
        }
        done = cli("run", inventory, "--state", workdir / "s.sqlite", "--no-live", env=env)
    assert done.returncode == 2, done.stderr
    said = [line for line in done.stderr.splitlines() if "credentials refused" in line]
    assert said and all(line.count("credentials refused") == 1 for line in said), done.stderr
    assert "OS_AUTH_TOKEN" not in done.stderr and "HUAWEICLOUD_SDK" not in done.stderr
    assert "next: check OS_USERNAME, OS_PASSWORD and OS_USER_DOMAIN_NAME" in done.stderr
    assert "nothing was sent" in done.stderr
    assert "pw-WRONG-77a" not in done.stdout + done.stderr


def test_preflights_blocked_servers_feed_exclude_as_they_are(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: SimProcess,
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Cli,
    fast: list[str],
) -> None:
    inventory = make_inventory(30, projects=2, seed=73)
    sim = ("--fleet", inventory, "--seed", "4", "--locked-rate", "0.2", "--job-seconds", "0.1",
           "--queue-seconds", "0")  # fmt: skip
    with sim_process(*sim, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        checked = cli("plan", inventory, "--preflight", "--endpoint", url, env=ENV)
        assert checked.returncode == 1, checked.stderr
        folder = workdir / "reports" / f"preflight-{inventory.stem}"
        blocked = folder / "blocked.csv"
        assert f"--exclude {blocked}" in checked.stdout  # absolute: right from any folder
        with (folder / "preflight.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        actions = {r["server_id"]: r["action"] for r in rows}
        locked = {r["server_id"] for r in rows if r["finding"] == "locked"}
        assert locked and {actions[s] for s in locked} == {"exclude"}
        assert {a for s, a in actions.items() if s not in locked} == {"send"}
        with blocked.open(newline="") as fh:
            listed = list(csv.DictReader(fh))
        assert {r["server_id"] for r in listed} == locked
        assert {r["finding"] for r in listed} == {"locked"}

        state = workdir / "fleet.state.sqlite"
        run = cli(
            "run", inventory, "--endpoint", url, "--state", state, *fast, "--exclude", blocked,
            env=ENV,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr  # every one left is ready: all succeed
        sent = set(sim_stats(url)["reinstalls_by_server"])
    assert sent and not (sent & locked)
    with StateStore.open(state, readonly=True) as store:
        imported = {t.server_id for t in store.iter_targets()}
    assert imported == {s for _, s in load_fleet(inventory)} - locked
