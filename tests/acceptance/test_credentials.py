"""The operator's environment: clouds.yaml, OS_* variables, IAM tokens per project,
the service catalog, a 403 in one project, and an HTTP proxy.

The CLI runs as a subprocess with its own HOME (holding clouds.yaml and
secure.yaml) against a simulator process that plays IAM and ECS on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chaos_helpers import Completed, SimProcess, child_env, files_under, make_inventory, run_cli

pytestmark = pytest.mark.timeout(60)

USER, PASSWORD, DOMAIN = "alice", "pw-SECRET-c0ffee-17", "OTC00000000001000000001"
SIM_USERS = {"SIM_USERS": f"{USER}:{PASSWORD}:{DOMAIN}"}
FAST = ["--rate", "50", "--first-poll", "0.2", "--poll-cap", "0.4", "--no-live"]
FAST += ["--drain-timeout", "2"]


@dataclass
class Setup:
    inventory: Path
    home: Path
    work: Path
    projects: list[str]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    inventory = make_inventory(tmp_path / "fleet.csv", 12, projects=3, seed=12)
    with inventory.open(newline="") as fh:
        projects = sorted({row["project_id"] for row in csv.DictReader(fh)})
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".config" / "openstack").mkdir(parents=True)
    work.mkdir()
    return Setup(inventory, home, work, projects)


def write_clouds(home: Path, auth_url: str, password: str = PASSWORD) -> None:
    """clouds.yaml without the password, secure.yaml with it (as operators keep them)."""
    folder = home / ".config" / "openstack"
    (folder / "clouds.yaml").write_text(
        "clouds:\n"
        "  sim:\n"
        "    auth:\n"
        f"      auth_url: {auth_url}\n"
        f"      username: {USER}\n"
        f"      user_domain_name: {DOMAIN}\n"
        "    region_name: eu-de\n"
    )
    (folder / "secure.yaml").write_text(f"clouds:\n  sim:\n    auth:\n      password: {password}\n")


def run(setup: Setup, *extra: str, env: dict[str, str] | None = None) -> Completed:
    args = ["run", setup.inventory, "--state", setup.work / "fleet.sqlite"]
    args += ["--report-dir", setup.work / "reports", *FAST, *extra]
    return run_cli(args, child_env(HOME=str(setup.home), **(env or {})), setup.work, timeout=45)


def options_recorded(state: Path) -> dict[str, object]:
    with sqlite3.connect(state) as conn:
        row = conn.execute("SELECT options FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    options: dict[str, object] = json.loads(row[0])
    return options


def test_clouds_yaml_password_gives_one_token_per_project(setup: Setup) -> None:
    with SimProcess("--fleet", setup.inventory, "--job-seconds", "0.1:0.3", env=SIM_USERS) as sim:
        write_clouds(setup.home, sim.url + "/v3")
        done = run(setup, "--os-cloud", "sim")
        stats = sim.stats()
    assert done.code == 0, done.stderr
    # No --endpoint: every request went to the ECS URL of the token's catalog.
    assert stats["tokens_issued"] == {p: 1 for p in setup.projects}
    assert stats["reinstalls_total"] == 12
    assert set(stats["reinstalls_by_server"].values()) == {1}
    recorded = options_recorded(setup.work / "fleet.sqlite")
    assert recorded["os_cloud"] == "sim"
    creds = recorded["credentials"]
    assert isinstance(creds, dict)
    assert creds["source"] == "clouds.yaml" and creds["username"] == "a…e"  # USER, shortened
    assert creds["file"] == str(setup.home / ".config" / "openstack" / "clouds.yaml")
    log = (setup.work / "fleet.log").read_text()
    assert "credentials: source=clouds.yaml" in log and "username=a…e" in log
    assert USER not in log
    leaks = [p for p in files_under(setup.work) if PASSWORD.encode() in p.read_bytes()]
    assert leaks == [] and PASSWORD not in done.stdout + done.stderr


def test_os_variables_work_without_clouds_yaml(setup: Setup) -> None:
    with SimProcess("--fleet", setup.inventory, "--job-seconds", "0.1:0.3", env=SIM_USERS) as sim:
        env = {
            "OS_AUTH_URL": sim.url + "/v3",
            "OS_USERNAME": USER,
            "OS_PASSWORD": PASSWORD,
            "OS_USER_DOMAIN_NAME": DOMAIN,
            "OS_REGION_NAME": "eu-de",
        }
        done = run(setup, env=env)
        stats = sim.stats()
    assert done.code == 0, done.stderr
    assert stats["tokens_issued"] == {p: 1 for p in setup.projects}
    creds = options_recorded(setup.work / "fleet.sqlite")["credentials"]
    assert isinstance(creds, dict) and creds["source"] == "environment"


def test_a_token_that_expires_mid_run_is_renewed_and_nothing_is_sent_twice(
    setup: Setup,
) -> None:
    sim_args = ["--fleet", setup.inventory, "--job-seconds", "0.8:1.5", "--token-ttl", "0.6"]
    with SimProcess(*sim_args, env=SIM_USERS) as sim:
        write_clouds(setup.home, sim.url + "/v3")
        done = run(setup, "--os-cloud", "sim", "--rate", "8")
        stats = sim.stats()
    assert done.code == 0, done.stderr
    assert "failed" not in done.stdout
    # Each project's token outlived itself at least once during the run.
    assert all(stats["tokens_issued"][p] >= 2 for p in setup.projects), stats["tokens_issued"]
    assert stats["reinstalls_total"] == 12
    assert set(stats["reinstalls_by_server"].values()) == {1}


def test_a_403_in_one_project_fails_its_targets_and_the_others_finish(setup: Setup) -> None:
    denied = setup.projects[0]
    # Rebuilds of 2.5 s: without preflight, a relaunch is told from the job's start on
    # the service's clocks, allowed 2 s of disagreement (a real one takes minutes).
    sim_args = ["--fleet", setup.inventory, "--job-seconds", "2.5:3", "--deny-project", denied]
    with SimProcess(*sim_args, env=SIM_USERS) as sim:
        write_clouds(setup.home, sim.url + "/v3")
        done = run(setup, "--os-cloud", "sim", "--no-preflight")
        stats = sim.stats()
    assert done.code == 1, done.stderr
    with sqlite3.connect(setup.work / "fleet.sqlite") as conn:
        rows = conn.execute("SELECT project_id, state, error_code, fail_reason FROM targets")
        by_project: dict[str, Counter[str]] = {}
        for project, state, code, reason in rows:
            by_project.setdefault(project, Counter())[state] += 1
            if project == denied:
                assert code == "Pdp.0001" and "Policy does not allow" in reason
    assert set(by_project[denied]) == {"failed"}
    for other in setup.projects[1:]:
        assert set(by_project[other]) == {"succeeded"}
    # Each denied reinstall, and the one server read that learns the service's clock
    # (without preflight) where it fell on the denied project.
    assert stats["denied"] - sum(by_project[denied].values()) in (0, 1), stats["denied"]


def test_a_wrong_password_stops_with_exit_2_naming_cloud_and_user(setup: Setup) -> None:
    wrong = "pw-WRONG-SECRET-9d1"
    with SimProcess("--fleet", setup.inventory, env=SIM_USERS) as sim:
        write_clouds(setup.home, sim.url + "/v3", password=wrong)
        done = run(setup, "--os-cloud", "sim")
        stats = sim.stats()
    assert done.code == 2, done.stderr
    # The user is named shortened, as every credential identifier in output.
    assert "'sim'" in done.stderr and "'a…e'" in done.stderr, done.stderr
    assert USER not in done.stderr
    assert "401" in done.stderr
    assert stats["reinstalls_total"] == 0
    everything = done.stdout + done.stderr
    assert wrong not in everything and PASSWORD not in everything
    assert [p for p in files_under(setup.work) if wrong.encode() in p.read_bytes()] == []


def test_an_unknown_cloud_name_is_a_usage_error_naming_the_file(setup: Setup) -> None:
    write_clouds(setup.home, "https://iam.eu-de.otc.t-systems.com/v3")
    done = run(setup, "--os-cloud", "nope")
    assert done.code == 2
    assert "clouds.yaml" in done.stderr and "'nope'" in done.stderr and "sim" in done.stderr


# -- a proxy ----------------------------------------------------------------------------


class LoopbackProxy:
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels, and absolute-URI forwarding for
    plain http. It only ever connects to loopback targets; it notes every request."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopbackProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.seen.append(f"{method} {target}")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                assert host in ("127.0.0.1", "localhost")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            url = urlsplit(target)
            assert url.hostname == "127.0.0.1"
            lines = head.decode().split("\r\n")[1:]
            kept = [
                line
                for line in lines
                if line and not line.lower().startswith(("connection:", "proxy-", "keep-alive"))
            ]
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in kept
                    if line.lower().startswith("content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length) if length else b""
            path = url.path + (f"?{url.query}" if url.query else "")
            request = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(kept)
            request += "\r\nConnection: close\r\n\r\n"
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            up_writer.write(request.encode() + body)
            await _pipe(up_reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
    finally:
        dst.close()


@pytest.fixture
def proxy() -> Iterator[LoopbackProxy]:
    with LoopbackProxy() as p:
        yield p


def test_requests_go_through_the_proxy_of_the_environment(
    setup: Setup, proxy: LoopbackProxy
) -> None:
    with SimProcess("--fleet", setup.inventory, "--job-seconds", "0.1:0.3", env=SIM_USERS) as sim:
        write_clouds(setup.home, sim.url + "/v3")
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        # NO_PROXY empty: aiohttp would otherwise skip the proxy for loopback hosts.
        env = {"HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "NO_PROXY": ""}
        done = run(setup, "--os-cloud", "sim", env=env)
        stats = sim.stats()
    assert done.code == 0, done.stderr
    seen = proxy.seen
    assert f"POST {sim.url}/v3/auth/tokens" in seen
    reinstalls = [s for s in seen if s.startswith("POST") and s.endswith("/reinstallos")]
    assert len(reinstalls) == stats["requests"]["reinstall"] == 12
