"""A bad inventory is refused whole, before anything is sent or kept; a changed one too."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM_TOKEN = "inventory-token-c0ffee"

P1 = "0123456789abcdef0123456789abcdef"
S1 = "11111111-2222-4333-8444-555555555555"
S2 = "11111111-2222-4333-8444-666666666666"
P2 = "fedcba9876543210fedcba9876543210"

# One row per problem class, each on its own line; (line, field) the CLI must name.
ROWS = [
    ("project_id,server_id,keyname,userid,mode", None),
    (f"ABCDEF,{S2},k,u,", (2, "project_id")),
    (f"{P1},not-a-uuid,k,u,", (3, "server_id")),
    (f"{P1},11111111-2222-4333-8444-000000000004,,u,", (4, "keyname")),
    (f"{P1},11111111-2222-4333-8444-000000000005,k,,", (5, "userid")),
    (f"{P1},11111111-2222-4333-8444-000000000006,k,u,stop", (6, "mode")),
    (f"{P1},{S1},k,u,", None),
    (f"{P1},{S1},k,u,", (8, "server_id")),
]
PROBLEMS = [where for _, where in ROWS if where]


@pytest.fixture
def bad_inventory(workdir: Path) -> Path:
    path = workdir / "bad.csv"
    path.write_text("\n".join(row for row, _ in ROWS) + "\n")
    return path


def test_every_problem_is_listed_and_nothing_is_sent_or_kept(
    cli: Cli,
    workdir: Path,
    bad_inventory: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    state = workdir / "bad.state.sqlite"
    with sim_process(env={"SIM_TOKEN": SIM_TOKEN}) as url:
        done = cli(
            "run", bad_inventory, "--endpoint", url, "--state", state, *fast,
            env={"OS_AUTH_TOKEN": SIM_TOKEN},
        )  # fmt: skip
        stats = sim_stats(url)

    assert done.returncode == 2, done.stderr
    assert f"inventory has {len(PROBLEMS)} problem(s)" in done.stderr
    for line, field in PROBLEMS:
        assert f"{bad_inventory}:{line}: field '{field}': " in done.stderr, (line, field)
    listed = re.findall(rf"^  {re.escape(str(bad_inventory))}:(\d+): ", done.stderr, re.MULTILINE)
    assert sorted(int(n) for n in listed) == [line for line, _ in PROBLEMS]
    assert "duplicate: line 7" in done.stderr
    assert "--keyname" in done.stderr and "--userid" in done.stderr
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        assert not Path(f"{state}{suffix}").exists(), suffix
    nothing = {"reinstall": 0, "job": 0, "server": 0, "list_v1": 0, "list_nova": 0}
    assert stats["requests"] == nothing


# case: (rows after the header, line, field, a fragment of the message)
ALONE = {
    "project_id": ([f"ABCDEF,{S2},k,u,"], 2, "project_id", "32 lowercase hex"),
    "server_id": ([f"{P1},not-a-uuid,k,u,"], 2, "server_id", "lowercase UUID"),
    "keyname": ([f"{P1},{S1},,u,"], 2, "keyname", "missing"),
    "userid": ([f"{P1},{S1},k,,"], 2, "userid", "missing"),
    "mode": ([f"{P1},{S1},k,u,stop"], 2, "mode", "withStopServer"),
    "duplicate": ([f"{P1},{S1},k,u,"] * 2, 3, "server_id", "duplicate: line 2"),
    "two_projects": ([f"{P1},{S1},k,u,", f"{P2},{S1},k,u,"], 3, "server_id", "one project"),
}


@pytest.mark.parametrize("case", sorted(ALONE))
def test_each_problem_class_alone_is_refused(
    case: str, cli: Cli, workdir: Path, fast: list[str]
) -> None:
    rows, line, field, fragment = ALONE[case]
    path = workdir / f"{case}.csv"
    path.write_text("\n".join([ROWS[0][0], *rows]) + "\n")
    state = workdir / f"{case}.state.sqlite"

    done = cli("run", path, "--simulate", "--state", state, *fast)

    assert done.returncode == 2, done.stdout
    assert "inventory has 1 problem(s)" in done.stderr
    assert f"{path}:{line}: field '{field}': " in done.stderr, done.stderr
    assert fragment in done.stderr
    assert not state.exists()
    assert "report: " not in done.stdout


def test_a_changed_inventory_is_refused_for_an_existing_state(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(10, projects=2, seed=91)
    state = workdir / "fleet.state.sqlite"
    command = ["run", inventory, "--simulate", "--state", state, "--rate", "100"]
    command += ["--sim-job-seconds", "0.1:0.2", *fast]
    assert cli(*command).returncode == 0
    with StateStore.open(state, readonly=True) as store:
        before = (store.counts(), store.run_info().invocations)

    lines = inventory.read_text().splitlines()
    inventory.write_text("\n".join(lines[:-1]) + "\n")  # one server fewer
    done = cli(*command)

    assert done.returncode == 2, done.stderr
    assert "differs from the one state file" in done.stderr
    assert "--skip-reinstalled-since" in done.stderr
    with StateStore.open(state, readonly=True) as store:
        assert (store.counts(), store.run_info().invocations) == before
