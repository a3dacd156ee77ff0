"""Regression tests of issue 7 through the CLI as a subprocess (findings 1, 6, 7, 12).

Each drives `python -m orchestrator` against a simulator process of its own and
fails on the code before the fix (bbdba76): the finding's number is in each
test's docstring. Finding 11 (nothing listening) is tested through `Runner` in
tests/integration/test_never_twice.py with a small breaker: through the CLI its
defaults (20 failures over at least 10 s) would cost 10+ s of the suite.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import load_fleet
from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM_TOKEN = "never-twice-token-4e1d"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
WRONG_ENV = {"OS_AUTH_TOKEN": "not-the-token"}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}
# Fast polling, as `fast` without its --settle-quiet (each test sets its own).
POLL = ["--first-poll", "0.2", "--poll-cap", "0.5", "--poll-rate", "500", "--no-live"]

pytestmark = pytest.mark.timeout(90)


def rewrite(
    inventory: Path, *, drop: tuple[str, ...] = (), blank: dict[int, str] | None = None
) -> Path:
    """The inventory without the columns in `drop`, and with `blank` {line: column} emptied."""
    with inventory.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields = [name for name in rows[0] if name not in drop]
    for line, column in (blank or {}).items():
        rows[line - 2][column] = ""
    out = inventory.with_name(inventory.stem + "-edited.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def key_name(url: str, project: str, server: str) -> str:
    """The key pair the simulator's server carries now (its last rebuild installed it)."""
    request = urllib.request.Request(
        f"{url}/v1/{project}/cloudservers/{server}", headers={"X-Auth-Token": SIM_TOKEN}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return str(json.loads(response.read())["server"]["key_name"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def states(state: Path) -> dict[str, str]:
    with StateStore.open(state, readonly=True) as store:
        return {t.server_id: t.state.value for t in store.iter_targets()}


# -- 1: a kill -9 during the POST; the resume does not resend ----------------------------------


def test_a_kill_during_the_post_is_not_resent_by_the_resume(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Cli,
    cli_start: Callable[..., subprocess.Popen[str]],
) -> None:
    """Finding 1: recovery after a kill settled with zero delay; the job still queued,
    the server untouched, it was taken for "not accepted" and sent again."""
    inventory = make_inventory(3, projects=1, seed=91)
    state = workdir / "fleet.state.sqlite"
    sim_args = (
        "--fleet", inventory, "--slow-answer-rate", "1", "--slow-answer-seconds", "60",
        "--queue-seconds", "2.5", "--job-seconds", "0.3",
    )  # fmt: skip
    with sim_process(*sim_args, env=SIM_ENV) as url:
        args = ["--endpoint", url, "--state", state, "--settle-quiet", "8", *POLL]
        proc = cli_start("run", inventory, *args, env=ENV)
        deadline = time.monotonic() + 30
        while sim_stats(url)["slow_answers"] < 3:  # all three acted on, no answer yet
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.communicate(timeout=10)
        assert set(states(state).values()) == {"submitting"}

        began = time.monotonic()
        resumed = cli("resume", "--state", state, env=ENV, timeout=60)
        stats = sim_stats(url)

    assert resumed.returncode == 0, resumed.stderr
    assert time.monotonic() - began < 30
    assert set(states(state).values()) == {"succeeded"}
    assert stats["overlapping_servers"] == []
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in load_fleet(inventory)}


# -- 6: a missing region with --endpoint-template ------------------------------------------------


def test_a_missing_region_with_an_endpoint_template_is_refused_before_anything(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Cli,
) -> None:
    """Finding 6: `plan` said "no problems"; `run` aborted mid-way with an internal error
    and left a state file that no resume could finish."""
    inventory = rewrite(make_inventory(3, projects=1, seed=92), blank={3: "region"})
    state = workdir / "fleet.state.sqlite"
    with sim_process("--fleet", inventory, env=SIM_ENV) as url:
        template = url + "/{region}"
        planned = cli("plan", inventory, "--endpoint-template", template)
        ran = cli("run", inventory, "--endpoint-template", template, "--state", state, env=ENV)
        stats = sim_stats(url)

    for done in (planned, ran):
        assert done.returncode == 2, done.stderr
        assert f"{inventory}:3: field 'region'" in done.stderr, done.stderr
        assert "--endpoint-template" in done.stderr
        assert ":2:" not in done.stderr and ":4:" not in done.stderr  # only the bad row
    assert "no problems found" not in planned.stdout
    assert not state.exists()
    assert sum(stats["requests"].values()) == 0
    # With a single endpoint no region is needed: the same inventory plans clean.
    assert cli("plan", inventory, "--endpoint", "http://127.0.0.1:9").returncode == 0


# -- 7: changed options or endpoint on a re-run, simulate vs real ------------------------------


def test_changed_keyname_and_endpoint_are_refused_unless_accepted(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli: Cli,
) -> None:
    """Finding 7: a new --keyname was ignored (the old key installed, no warning),
    `resume --simulate` on a real state file marked everything succeeded, and the
    endpoint was never compared on resume."""
    inventory = rewrite(make_inventory(3, projects=1, seed=93), drop=("keyname",))
    fleet = load_fleet(inventory)
    state = workdir / "fleet.state.sqlite"
    with (
        sim_process("--fleet", inventory, env=SIM_ENV) as first,
        sim_process("--fleet", inventory, env=SIM_ENV) as second,
    ):
        run = ["run", inventory, "--state", state, "--settle-quiet", "1", *POLL]
        # A first run made the state file for `first` with key-old; refused credentials
        # stopped it before anything was sent (all targets pending).
        made = cli(*run, "--endpoint", first, "--keyname", "key-old", env=WRONG_ENV)
        assert made.returncode == 2, made.stderr
        assert set(states(state).values()) == {"pending"}

        simulated = cli("resume", "--state", state, "--simulate", *POLL)
        assert simulated.returncode == 2
        assert "real endpoint" in simulated.stderr and "--simulate cannot" in simulated.stderr

        new_key = cli(*run, "--endpoint", first, "--keyname", "key-new", env=ENV)
        assert new_key.returncode == 2
        assert "keyname: was 'key-old', now 'key-new'" in one_line(new_key.stderr)
        assert "--accept-changed-options" in new_key.stderr

        moved = cli(*run, "--endpoint", second, "--keyname", "key-old", env=ENV)
        assert moved.returncode == 2
        text = one_line(moved.stderr)
        assert "endpoint differs" in text and first in text and second in text
        assert "--accept-changed-endpoint" in text
        assert sum(sim_stats(first)["requests"].values()) <= 3  # the refused first run's reads
        assert sim_stats(first)["reinstalls_total"] == 0
        assert sim_stats(second)["requests"]["reinstall"] == 0
        assert set(states(state).values()) == {"pending"}

        accepted = cli(
            *run, "--endpoint", second, "--keyname", "key-new",
            "--accept-changed-options", "--accept-changed-endpoint", env=ENV,
        )  # fmt: skip
        assert accepted.returncode == 0, accepted.stderr
        installed = {key_name(second, p, s) for p, s in fleet}
        stats = sim_stats(second)

    assert installed == {"key-new"}
    assert stats["reinstalls_by_server"] == {s: 1 for _, s in fleet}
    with StateStore.open(state, readonly=True) as store:
        assert {t.spec.keyname for t in store.iter_targets()} == {"key-new"}


def test_a_simulated_state_file_is_never_resumed_against_a_real_endpoint(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    """Finding 7: the reverse of `resume --simulate`; refused even when accepted."""
    inventory = make_inventory(2, projects=1, seed=94)
    state = workdir / "sim.state.sqlite"
    assert cli("run", inventory, "--simulate", "--state", state, *fast).returncode == 0
    endpoint = f"http://127.0.0.1:{free_port()}"

    done = cli("run", inventory, "--endpoint", endpoint, "--state", state, env=ENV)
    resumed = cli(
        "resume", "--state", state, "--endpoint", endpoint, "--accept-changed-endpoint", env=ENV
    )

    for refused in (done, resumed):
        assert refused.returncode == 2
        assert "made with --simulate" in refused.stderr


# -- 12: resume reports where the run reported --------------------------------------------------


def test_resume_reports_where_the_run_reported(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    cli: Cli,
    fast: list[str],
) -> None:
    """Finding 12: the resume wrote its report to ./reports, leaving a stale one in the
    run's --report-dir."""
    inventory = make_inventory(3, projects=1, seed=96)
    state = workdir / "fleet.state.sqlite"
    with sim_process("--fleet", inventory, env=SIM_ENV) as url:
        common = ["--endpoint", url, "--state", state, "--report-dir", "r-main", *fast]
        stopped = cli("run", inventory, *common, env=WRONG_ENV)
        assert stopped.returncode == 2, stopped.stderr

        resumed = cli("resume", "--state", state, env=ENV)

    assert resumed.returncode == 0, resumed.stderr
    assert not (workdir / "reports").exists()
    reports = sorted((workdir / "r-main").rglob("report.html"))
    assert reports, list((workdir / "r-main").rglob("*"))


def test_resume_help_says_options_come_from_the_state_file(cli: Cli) -> None:
    """Finding 12: `resume --help` showed defaults that were not the ones used."""
    done = cli("resume", "--help")
    assert done.returncode == 0
    text = one_line(done.stdout)
    assert "taken from the state file" in text
    assert "including where the report goes" in text


# -- a paused process is not a failed job --------------------------------------------------------


def test_a_run_paused_past_the_job_timeout_asks_the_jobs_before_failing_them(
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    cli_start: Callable[..., subprocess.Popen[str]],
) -> None:
    """SIGSTOP past --job-timeout, then SIGCONT (a laptop lid, a paused VM): the
    timeout was judged before the job was asked, and jobs that had ended SUCCESS
    were reported "did not end within --job-timeout"."""
    inventory = make_inventory(3, projects=1, seed=95)
    state = workdir / "fleet.state.sqlite"
    sim_args = ("--fleet", inventory, "--queue-seconds", "0", "--power-off-seconds", "0",
                "--stopped-seconds", "0", "--job-seconds", "1")  # fmt: skip
    with sim_process(*sim_args, env=SIM_ENV) as url:
        args = ["--endpoint", url, "--state", state, "--job-timeout", "3", *POLL]
        args += ["--first-poll", "0.5"]
        proc = cli_start("run", inventory, *args, env=ENV)
        deadline = time.monotonic() + 30
        while sim_stats(url)["reinstalls_total"] < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(5)  # past --job-timeout; the jobs end meanwhile
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert set(states(state).values()) == {"succeeded"}
