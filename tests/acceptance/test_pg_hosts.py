"""One campaign in PostgreSQL, several "hosts" (processes with their own working
directories and no shared files): a failover after SIGKILL, and shards run at once.

The simulator runs in its own process, so that it outlives every orchestrator and
counts every reinstall request it received, whoever sent it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from orchestrator.engine.shard import Shard
from orchestrator.simulator import load_fleet
from orchestrator.store import open_store

SIM_TOKEN = "pg-hosts-token-4e1d"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class Host:
    """A machine of its own: a working directory nothing else writes to."""

    def __init__(self, root: Path, name: str) -> None:
        self.cwd = root / name
        self.cwd.mkdir()
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD"))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *map(str, args)],
            cwd=self.cwd,
            env={**env, **ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[[str], Host]]:
    made: list[Host] = []

    def make(name: str) -> Host:
        made.append(Host(tmp_path, name))
        return made[-1]

    yield make
    for host in made:
        for proc in host.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def campaign(pg_dsn: str) -> Iterator[str]:
    name = f"h{secrets.token_hex(5)}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"orch_{name}"))
        )


def lock_holders(dsn: str, campaign: str) -> int:
    """Sessions holding an advisory lock of the campaign's (as the store keys them)."""
    from orchestrator.store.pg import PgLocation

    key = PgLocation(dsn, campaign).key
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s::bigint::oid AND granted",
            (key,),
        ).fetchone()
    return int(row[0]) if row else 0


def wait_for(check: Callable[[], bool], what: str, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        for proc in procs:
            assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_host_is_taken_over_by_another_from_the_database(
    pg_dsn: str,
    campaign: str,
    hosts: Callable[[str], Host],
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(30, projects=3, seed=91)
    fleet = {server for _, server in load_fleet(inventory)}
    a, b = hosts("host-a"), hosts("host-b")
    state = ["--state", pg_dsn, "--campaign", campaign]
    sim_args = ("--fleet", inventory, "--job-seconds", "0.5:1.5")
    with sim_process(*sim_args, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        run_a = a.start("run", inventory, *state, "--endpoint", url, "--rate", "15", *fast)
        sent = lambda: len(sim_stats(url)["reinstalls_by_server"])  # noqa: E731
        wait_for(lambda: sent() >= 10, "host A to send 10 reinstalls", [run_a])
        run_a.send_signal(signal.SIGKILL)
        run_a.communicate(timeout=10)
        at_kill = sim_stats(url)
        # The server ends the dead host's session (a SIGKILL closes its socket at once).
        wait_for(lambda: lock_holders(pg_dsn, campaign) == 0, "A's lock to be freed", [])

        # Host B: no inventory, no state file, no report of A's; only the database.
        finish = b.run("resume", *state, "--no-live", timeout=90)
        final = sim_stats(url)

    assert finish.returncode == 0, finish.stderr
    assert "finished: 30 succeeded" in finish.stdout
    assert 10 <= len(at_kill["reinstalls_by_server"]) < 30
    assert final["reinstalls_by_server"] == {server: 1 for server in fleet}
    assert final["reinstalls_after_success"] == 0
    assert final["rejected_while_rebuilding"] == 0
    assert not any(a.cwd.glob("**/*.sqlite"))  # nothing of the state ever lived on A
    reports = list(b.cwd.glob("reports/*/summary.json"))
    assert len(reports) == 1, list(b.cwd.rglob("*"))
    summary = json.loads(reports[0].read_text())
    assert summary["invocations"] == 2
    outcomes = [i["outcome"] for i in summary["campaign"]["invocations"]]
    assert outcomes[1] == "complete" and outcomes[0] != "complete", outcomes
    assert summary["counts"]["succeeded"] == 30
    assert "s3cret" not in reports[0].read_text()


def test_two_shards_at_once_finish_the_campaign_and_a_third_is_refused(
    pg_dsn: str,
    campaign: str,
    hosts: Callable[[str], Host],
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(40, projects=2, seed=92)
    fleet = {server for _, server in load_fleet(inventory)}
    one, two, three, desk = hosts("one"), hosts("two"), hosts("three"), hosts("desk")
    state = ["--state", pg_dsn, "--campaign", campaign]
    sim_args = ("--fleet", inventory, "--job-seconds", "1:2")
    with sim_process(*sim_args, env={"SIM_TOKEN": SIM_TOKEN}) as url:
        common = [inventory, *state, "--endpoint", url, "--rate", "8", *fast]
        # Started together: one creates the campaign, the other joins it.
        first = one.start("run", *common, "--shard", "1/2")
        second = two.start("run", *common, "--shard", "2/2")
        wait_for(lambda: lock_holders(pg_dsn, campaign) == 2, "both shards", [first, second])

        refused = three.run("run", *common, "--shard", "1/2")
        watching = desk.run("status", *state, "--json")

        out1, err1 = first.communicate(timeout=90)
        out2, err2 = second.communicate(timeout=90)
        final = sim_stats(url)
        after = desk.run("status", *state, "--json")

    assert refused.returncode == 2, refused.stderr
    assert "shard 1/2 is in use by another orchestrator" in refused.stderr
    assert f"orchestrator pid {first.pid} on " in refused.stderr
    # From another "desk" during the run: the whole campaign, running (a runner holds
    # its lock; no local pid to look at), not finished yet: exit 3 as a run would.
    assert watching.returncode == 3, watching.stderr
    seen = json.loads(watching.stdout)
    assert seen["total"] == 40
    assert seen["invocation"]["state"] == "running"
    assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    assert final["reinstalls_by_server"] == {server: 1 for server in fleet}
    # Each shard sent exactly its own servers.
    by_shard = {k: {s for s in fleet if Shard(k, 2).holds(s)} for k in (1, 2)}
    assert f"finished: {len(by_shard[1])} succeeded" in out1
    assert f"finished: {len(by_shard[2])} succeeded" in out2
    assert after.returncode == 0, after.stderr
    status = json.loads(after.stdout)
    assert status["counts"]["succeeded"] == 40
    assert status["invocation"]["state"] == "ended"


def test_shards_share_the_campaigns_rate_not_one_each(
    pg_dsn: str,
    campaign: str,
    hosts: Callable[[str], Host],
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    """Two shards at --rate 4 sent 8 reinstalls a second: --rate is the campaign's
    (every shard multiplies the load on the cloud's limit otherwise)."""
    inventory = make_inventory(40, projects=2, seed=93)
    one, two = hosts("one"), hosts("two")
    state = ["--state", pg_dsn, "--campaign", campaign]
    with sim_process(
        "--fleet", inventory, "--job-seconds", "0.3", env={"SIM_TOKEN": SIM_TOKEN}
    ) as url:
        common = [inventory, *state, "--endpoint", url, "--rate", "4", *fast]
        first = one.start("run", *common, "--shard", "1/2")
        second = two.start("run", *common, "--shard", "2/2")
        _, err1 = first.communicate(timeout=90)
        _, err2 = second.communicate(timeout=90)
        final = sim_stats(url)

    assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    arrivals = sorted(final["request_times"]["reinstall"])
    assert len(arrivals) == 40
    # In any 2-second window at most 2 x 4 + one burst token per shard (a shard that
    # starts alone sends at the whole rate until the other is counted, within 2 s).
    busiest = max(sum(1 for t in arrivals if start <= t < start + 2.0) for start in arrivals)
    assert busiest <= 10, busiest
    # 40 at 4 a second overall: about 10 s, not the 5 s of two shards at 4 each.
    assert arrivals[-1] - arrivals[0] >= 8.0, arrivals[-1] - arrivals[0]


def test_a_lost_database_connection_stops_sending_and_exits_3(
    pg_dsn: str,
    campaign: str,
    hosts: Callable[[str], Host],
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    inventory = make_inventory(60, projects=2, seed=93)
    host = hosts("host")
    state = ["--state", pg_dsn, "--campaign", campaign]
    with sim_process(
        "--fleet", inventory, "--job-seconds", "1:2", env={"SIM_TOKEN": SIM_TOKEN}
    ) as url:
        # A job id whose recording the loss cut short is tried again for --drain-timeout
        # (60 s by default) before the run ends: 5 s keeps that within the wait below.
        run = host.start(
            "run", inventory, *state, "--endpoint", url, "--rate", "10", *fast,
            "--drain-timeout", "5",
        )  # fmt: skip
        sent = lambda: len(sim_stats(url)["reinstalls_by_server"])  # noqa: E731
        wait_for(lambda: sent() >= 5, "5 reinstalls", [run])
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (f"orchestrator pid {run.pid} on {os.uname().nodename}"[:63],),
            )
        at_loss = sent()
        _, err = run.communicate(timeout=30)
        time.sleep(0.5)
        final = sim_stats(url)
        after = len(final["reinstalls_by_server"])

    assert run.returncode == 3, err
    assert "lost the connection to PostgreSQL" in err
    assert f"resume --state {pg_dsn} --campaign {campaign}" in err
    # Nothing is sent once the connection is gone, but what a committed intent had
    # already cleared (a commit in flight as the connection went): a few at most.
    assert after - at_loss <= 3, (at_loss, after)
    assert after < 60
    # And no reinstall ever left without its intent on record.
    with open_store(pg_dsn, campaign=campaign, readonly=True) as store:
        recorded = {t.server_id for t in store.iter_targets() if t.intent_at is not None}
        assert store.run_info().invocations == 1
    assert set(final["reinstalls_by_server"]) <= recorded


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--state", "postgresql://orch:s3cret@127.0.0.1:9/db"], "PGPASSWORD"),
        (["--state", "postgresql://orch@127.0.0.1:9/db?password=s3cret"], "PGPASSWORD"),
        (["--state", "postgresql://orch@127.0.0.1:9/db", "--campaign", "No-Good"], "--campaign"),
        (["--state", "fleet.sqlite", "--campaign", "fleet"], "a SQLite state file is one"),
        (["--shard", "3/2"], "--shard"),
    ],
)
def test_bad_state_options_are_usage_errors_before_anything_starts(
    args: list[str], says: str, hosts: Callable[[str], Host], make_inventory: Callable[..., Path]
) -> None:
    host = hosts("host")
    inventory = make_inventory(3)
    done = host.run("run", inventory, "--simulate", "--no-live", *args, timeout=30)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert not list(host.cwd.iterdir())  # nothing created, nothing sent
