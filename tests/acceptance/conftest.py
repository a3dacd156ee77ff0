"""Fixtures of the acceptance tests: the CLI as a subprocess, in a tmp working directory.

    workdir                      the cwd of every command (so `reports/` lands there)
    cli(*args, env=, timeout=)   run `python -m orchestrator ARGS` to the end
    cli_start(*args, env=)       start it (Popen), for signals; killed at teardown if alive
    sim_process(*args, env=)     `orchestrator simulate --port 0` subprocess: yields its URL
    sim_stats(url)               GET /_sim/stats
    sample_inventory             a copy of inventories/sample.csv in workdir
    make_inventory(count, ...)   `python benchmarks/make_inventory.py ...` into workdir
    fast                         run options that make a simulated run take seconds

Every process started here is stopped at teardown; every wait is bounded.
Credentials in the environment are those a test passes, never inherited.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator.process import SimulatorProcess, read_stats

REPO = Path(__file__).resolve().parents[2]
SIM_TOKEN = "acceptance-token-31f0c2"
AUTH_ENV = (
    "OS_AUTH_TOKEN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "SIM_TOKEN",
    "SIM_AK",
    "SIM_SK",
    "SIM_USERS",
    "OS_CLOUD",
    "OS_CLIENT_CONFIG_FILE",
    "OS_AUTH_URL",
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_TOKEN",
)
FAST = [
    "--first-poll",
    "0.2",
    "--poll-cap",
    "0.5",
    "--poll-rate",
    "500",
    "--settle-quiet",
    "1",
    "--no-live",
]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
    env.update(extra or {})
    return env


def _stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=5)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def fast() -> list[str]:
    return list(FAST)


@pytest.fixture
def cli(workdir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str | Path,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
        prefix: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "orchestrator", *map(str, args)],
            cwd=workdir,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cli_start(workdir: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *map(str, args)],
            cwd=workdir,
            env=_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        _stop(proc, signal.SIGKILL)


@contextlib.contextmanager
def simulator_process(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """`python -m orchestrator simulate --port 0 ARGS`: yield its URL; stop it with SIGTERM."""
    with SimulatorProcess(*args, env=env, cwd=cwd) as sim:
        yield sim.url


@pytest.fixture
def sim_process(workdir: Path) -> Callable[..., contextlib.AbstractContextManager[str]]:
    def start(*args: str | Path, env: dict[str, str] | None = None) -> Any:
        return simulator_process(*args, env=env, cwd=workdir)

    return start


@pytest.fixture
def sim_stats() -> Callable[[str], dict[str, Any]]:
    def stats(url: str) -> dict[str, Any]:
        assert url.startswith("http://127.0.0.1:")
        return read_stats(url)

    return stats


@pytest.fixture
def sample_inventory(workdir: Path) -> Path:
    path = workdir / "sample.csv"
    shutil.copyfile(REPO / "inventories" / "sample.csv", path)
    return path


@pytest.fixture
def make_inventory(workdir: Path) -> Callable[..., Path]:
    def make(count: int, projects: int = 4, seed: int = 1, name: str | None = None) -> Path:
        path = workdir / (name or f"fleet-{count}.csv")
        script = REPO / "benchmarks" / "make_inventory.py"
        args = ["--count", str(count), "--projects", str(projects), "--seed", str(seed)]
        subprocess.run([sys.executable, str(script), *args, str(path)], check=True, timeout=30)
        return path

    return make


@pytest.fixture(scope="session")
def no_network() -> tuple[str, ...]:
    """A command prefix that runs a process without network access, where the OS allows it.

    For tests that hand the CLI an address it must refuse: should the check ever
    be missing, the request still goes nowhere.
    """
    probe = ["unshare", "--net", "--", sys.executable, "-c", "pass"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ("unshare", "--net", "--") if ok else ()
