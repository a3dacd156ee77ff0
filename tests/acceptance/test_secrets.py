"""Secrets never leak: not to the console, the log, the report or the state file.

The CLI runs against a simulator process with faults on (5xx, dropped answers,
busy answers, failing jobs) and --log-level DEBUG, so error paths and their
messages run too: once with an IAM token, once with AK/SK plus a security token,
with an IAM password (from OS_* variables, and from clouds.yaml + secure.yaml: then
every token IAM issued counts as a secret too), and with a wrong token or password
(which must end the run with exit 2 and say why). Every
byte the orchestrator wrote is then searched for each secret value, including the
SQLite -wal that only a killed run leaves behind.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chaos_helpers import (
    Completed,
    SimProcess,
    child_env,
    files_under,
    make_inventory,
    orchestrator_command,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "tok-SECRET-4f1c9a"
AK = "AKTEST7Q2W9E4R"
SK = "sk-SECRET-e81b44d0a9c7"
SECURITY_TOKEN = "sts-SECRET-5d0f2e7a"
WRONG_TOKEN = "tok-WRONG-SECRET-93be"
PASSWORD = "pw-SECRET-7a41b2"
WRONG_PASSWORD = "pw-WRONG-SECRET-0c3e"
# Every token the simulator's IAM issues starts with this: none may be written anywhere.
IAM_TOKEN_PREFIX = "MIIsim"

# Drops are what puts an "outcome unknown" in the log (5xx refusals are retried quietly):
# at 0.3, 20 reinstalls all escape one with odds of 1 in 1,250 (at 0.1: 1 in 8).
FAULTS = [
    "--error-rate",
    "0.2",
    "--drop-rate",
    "0.3",
    "--busy-rate",
    "0.05",
    "--job-fail-rate",
    "0.2",
    "--job-seconds",
    "0.2:0.6",
]


@dataclass
class Run:
    name: str
    secrets: tuple[str, ...]
    done: Completed
    work: Path  # everything the orchestrator wrote is under here
    state: Path
    log: Path


def _iam_env(password: str) -> dict[str, str]:
    """OS_* variables naming the simulator's IAM; {url} is filled in once it listens."""
    return {
        "OS_AUTH_URL": "{url}/v3",
        "OS_USERNAME": "alice",
        "OS_PASSWORD": password,
        "OS_USER_DOMAIN_NAME": "Default",
    }


def _run(
    factory: pytest.TempPathFactory,
    name: str,
    sim_env: dict[str, str],
    env: dict[str, str],
    secrets: tuple[str, ...],
    *extra: str,
) -> Run:
    base = factory.mktemp(name)
    if name.startswith("iam-clouds"):
        # The same credentials, from clouds.yaml + secure.yaml in the run's own HOME.
        folder = base / "home" / ".config" / "openstack"
        folder.mkdir(parents=True)
        (folder / "clouds.yaml").write_text(
            "clouds:\n  c:\n    auth:\n      auth_url: '{url}/v3'\n      username: alice\n"
            "      user_domain_name: Default\n"
        )
        password = env.pop("OS_PASSWORD")
        (folder / "secure.yaml").write_text(
            f"clouds:\n  c:\n    auth:\n      password: '{password}'\n"
        )
        env = {"HOME": str(base / "home"), "OS_CLOUD": "c"}
    inventory = make_inventory(base / "fleet.csv", 20, projects=2, seed=31)
    work = base / "out"
    work.mkdir()
    state, log = work / "fleet.state.sqlite", work / "logs" / "run.log"
    with SimProcess("--fleet", inventory, *FAULTS, env=sim_env) as sim:
        env = {k: v.replace("{url}", sim.url) for k, v in env.items()}
        for path in base.glob("home/.config/openstack/*.yaml"):
            path.write_text(path.read_text().replace("{url}", sim.url))
        args = [
            "run",
            inventory,
            "--endpoint",
            sim.url,
            "--state",
            state,
            "--report-dir",
            work / "reports",
            "--log-file",
            log,
            "--log-level",
            "DEBUG",
            "--rate",
            "20",
            "--first-poll",
            "0.2",
            "--poll-cap",
            "0.5",
            "--drain-timeout",
            "2",
            "--settle-quiet",
            "1",
            "--no-live",
            *extra,
        ]
        done = run_cli(args, child_env(**env), work, timeout=45)
    return Run(name, secrets, done, work, state, log)


# name: (simulator env, orchestrator env, the secrets, extra CLI options)
RUNS: dict[str, tuple[dict[str, str], dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "token": ({"SIM_TOKEN": TOKEN}, {"OS_AUTH_TOKEN": TOKEN}, (TOKEN,), ()),
    "aksk": (
        {"SIM_AK": AK, "SIM_SK": SK},
        {
            "HUAWEICLOUD_SDK_AK": AK,
            "HUAWEICLOUD_SDK_SK": SK,
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
        },
        (SK, SECURITY_TOKEN),
        (),
    ),
    "wrong-token": ({"SIM_TOKEN": TOKEN}, {"OS_AUTH_TOKEN": WRONG_TOKEN}, (WRONG_TOKEN,), ()),
    "wrong-token-no-preflight": (
        {"SIM_TOKEN": TOKEN},
        {"OS_AUTH_TOKEN": WRONG_TOKEN},
        (WRONG_TOKEN,),
        ("--no-preflight",),
    ),
    "iam": (
        {"SIM_USERS": f"alice:{PASSWORD}:Default"},
        _iam_env(PASSWORD),
        (PASSWORD, IAM_TOKEN_PREFIX),
        (),
    ),
    "iam-clouds-yaml": (
        {"SIM_USERS": f"alice:{PASSWORD}:Default"},
        _iam_env(PASSWORD),
        (PASSWORD, IAM_TOKEN_PREFIX),
        (),
    ),
    "wrong-password": (
        {"SIM_USERS": f"alice:{PASSWORD}:Default"},
        _iam_env(WRONG_PASSWORD),
        (WRONG_PASSWORD, PASSWORD, IAM_TOKEN_PREFIX),
        (),
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """Each run happens once per module, when a test first asks for it."""
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            sim_env, env, secrets, extra = RUNS[name]
            done[name] = _run(tmp_path_factory, name, sim_env, dict(env), secrets, *extra)
        return done[name]

    return get


@pytest.mark.parametrize("name", ["token", "aksk", "iam", "iam-clouds-yaml"])
def test_the_runs_with_good_credentials_finish(runs: Callable[[str], Run], name: str) -> None:
    run = runs(name)
    # Exit 3 is fair too: with these fault rates a target may be deferred now and then.
    assert run.done.code in (0, 1, 3), f"{run.name}: {run.done.stderr}"
    assert " succeeded" in run.done.stdout, run.done.stdout
    log = run.log.read_text()
    assert " -> succeeded" in log and ("outcome unknown" in log or "HTTP 5" in log)


@pytest.mark.parametrize("name", list(RUNS))
def test_no_secret_in_any_output(runs: Callable[[str], Run], name: str) -> None:
    any_run = runs(name)
    places: dict[str, bytes] = {
        "stdout": any_run.done.stdout.encode(),
        "stderr": any_run.done.stderr.encode(),
    }
    written = files_under(any_run.work)
    assert any_run.log in written and any_run.state in written
    assert any(p.name == "summary.json" for p in written) or any_run.name.startswith("wrong")
    for path in written:
        places[str(path.relative_to(any_run.work))] = path.read_bytes()
    leaks = [
        f"{secret!r} in {where}"
        for secret in any_run.secrets
        for where, data in places.items()
        if secret.encode() in data
    ]
    assert leaks == [], f"{any_run.name}: searched {sorted(places)}"


@pytest.mark.parametrize("name", ["token", "aksk"])
def test_state_and_log_files_are_owner_only(runs: Callable[[str], Run], name: str) -> None:
    run = runs(name)
    assert stat.S_IMODE(run.state.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm", ".lock"):
        companion = run.state.with_name(run.state.name + suffix)
        if companion.exists():
            assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion
    assert stat.S_IMODE(run.log.stat().st_mode) == 0o600


def test_a_wrong_password_ends_the_run_with_exit_2_naming_the_user(
    runs: Callable[[str], Run],
) -> None:
    wrong_run = runs("wrong-password")
    stderr = wrong_run.done.stderr
    assert wrong_run.done.code == 2, f"exit {wrong_run.done.code}; stderr:\n{stderr[-2000:]}"
    # Named as output names every credential identifier: shortened.
    assert "'a…e'" in stderr and "401" in stderr, stderr
    assert "alice" not in stderr and "/v3" not in stderr


@pytest.mark.parametrize("name", ["wrong-token", "wrong-token-no-preflight"])
def test_a_wrong_token_ends_the_run_with_exit_2_and_says_why(
    runs: Callable[[str], Run], name: str
) -> None:
    wrong_run = runs(name)
    stderr = wrong_run.done.stderr
    assert wrong_run.done.code == 2, f"exit {wrong_run.done.code}; stderr:\n{stderr[-2000:]}"
    assert "credentials" in stderr and "401" in stderr, stderr


def test_no_secret_in_the_wal_of_a_killed_run(tmp_path: Path) -> None:
    """A clean exit folds the -wal into the database; a kill leaves it to be read raw."""
    inventory = make_inventory(tmp_path / "fleet.csv", 40, projects=2, seed=32)
    work = tmp_path / "out"
    work.mkdir()
    state = work / "fleet.state.sqlite"
    with SimProcess("--fleet", inventory, *FAULTS, env={"SIM_TOKEN": TOKEN}) as sim:
        args = ["run", inventory, "--endpoint", sim.url, "--state", state]
        args += ["--report-dir", work / "reports", "--log-level", "DEBUG", "--rate", "20"]
        with (work / "output").open("wb") as out:
            process = subprocess.Popen(
                orchestrator_command(*args),
                stdout=out,
                stderr=out,
                env=child_env(OS_AUTH_TOKEN=TOKEN),
                cwd=work,
            )
        try:
            wait_until(lambda: sim.stats()["requests"]["reinstall"] >= 10, 30)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    wal = state.with_name(state.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    for path in (state, wal, state.with_name(state.name + "-shm")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    leaks = [str(p) for p in files_under(work) if TOKEN.encode() in p.read_bytes()]
    assert leaks == []


# (run, the full identifiers, how output shows them)
IDENTIFIERS = {
    "aksk": ((AK,), ("AKTE…4R",)),
    "iam": (("alice", "/v3"), ("a…e",)),
    "iam-clouds-yaml": (("alice", "/v3"), ("a…e",)),
}


@pytest.mark.parametrize("name", list(IDENTIFIERS))
def test_credential_identifiers_are_shortened_everywhere(
    runs: Callable[[str], Run], name: str
) -> None:
    run = runs(name)
    full, shown = IDENTIFIERS[name]
    places = {"stdout": run.done.stdout.encode(), "stderr": run.done.stderr.encode()}
    places |= {str(p.relative_to(run.work)): p.read_bytes() for p in files_under(run.work)}
    leaks = [f"{v!r} in {w}" for v in full for w, data in places.items() if v.encode() in data]
    assert leaks == [], sorted(places)
    summary = next(data for where, data in places.items() if where.endswith("summary.json"))
    credentials = json.loads(summary)["options"]["credentials"]
    for value in shown:
        assert value in credentials.values(), credentials
        assert value.encode() in places[str(run.log.relative_to(run.work))]
    if credentials["auth_url"] is not None:
        assert urlsplit(credentials["auth_url"]).path == ""  # the site only


def test_report_files_are_owner_only(runs: Callable[[str], Run]) -> None:
    run = runs("token")
    reports = run.work / "reports"
    assert stat.S_IMODE(reports.stat().st_mode) == 0o700
    (folder,) = [p for p in reports.iterdir() if p.is_dir()]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == sorted(
        ["summary.json", "targets.csv", "retry.csv", "report.md", "report.html"]
    )
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
