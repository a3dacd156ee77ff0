"""Shared helpers of the acceptance tests that run the CLI as a subprocess.

Used by test_chaos.py, test_graceful_stop.py, test_secrets.py and by
benchmarks/chaos.py (which puts this folder on sys.path):

    SimProcess          `orchestrator simulate` as its own process, its URL and stats
                        (orchestrator.simulator.SimulatorProcess)
    run_with_kills      run a command, SIGKILL it at seeded random moments, resume it
    fleet_problems      every invariant of a finished run, from the simulator's stats
                        and the state file: exactly once, none forgotten, truthful report

Only 127.0.0.1 is ever contacted; credentials are passed through the environment
of the child processes, never on a command line.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.model import FINAL_STATES, Target, TargetState
from orchestrator.simulator import SimulatorProcess
from orchestrator.store.records import Event
from orchestrator.store.sqlite import StateStore

REPO = Path(__file__).resolve().parents[2]
MAKE_INVENTORY = REPO / "benchmarks" / "make_inventory.py"
STARTUP_TIMEOUT = 20.0

# Never inherited by a child: each test says exactly which credentials a process gets.
CREDENTIAL_ENV = (
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
    "OS_CLIENT_SECURE_FILE",
    "OS_AUTH_URL",
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_TOKEN",
    "OS_USER_DOMAIN_NAME",
    "OS_DOMAIN_NAME",
    "OS_PROJECT_ID",
    "OS_PROJECT_NAME",
    "OS_REGION_NAME",
    "OS_CACERT",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
)

# The simulator's realistic timing for chaos runs. Queue + power-off + the stopped
# pause stay under the --settle-quiet of 4 s the chaos runs use: the assumption the
# safety model states (an acted-on reinstall shows activity within the quiet period).
REAL_TIMING = [
    "--queue-seconds",
    "0.2:1.5",
    "--power-off-seconds",
    "0.2:1",
    "--stopped-seconds",
    "0.1:0.3",
    "--running-rate",
    "0.5",
    "--error-after-acting-rate",
    "0.05",
    "--slow-answer-rate",
    "0.05",
    "--slow-answer-seconds",
    "1.5",
    "--fail-to-error-rate",
    "0.5",
]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours, without credentials or proxies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CREDENTIAL_ENV and not k.lower().endswith("_proxy")
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def make_inventory(path: Path, count: int, *, projects: int = 3, seed: int = 1) -> Path:
    """A valid inventory of `count` servers, written by benchmarks/make_inventory.py."""
    subprocess.run(
        [
            sys.executable,
            str(MAKE_INVENTORY),
            "--count",
            str(count),
            "--projects",
            str(projects),
            "--seed",
            str(seed),
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def orchestrator_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *map(str, args)]


# -- the simulator as a process ------------------------------------------------------

# `orchestrator simulate --port 0 ...` in its own process: `with` starts and stops it;
# .url, .stats(). Its environment never inherits credentials, only those in `env`.
SimProcess = SimulatorProcess


# -- the orchestrator as a process ----------------------------------------------------


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(
    args: Sequence[str | Path], env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> Completed:
    """Run the CLI to its end and capture what it printed."""
    started = time.monotonic()
    done = subprocess.run(
        orchestrator_command(*args),
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Completed(
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


def state_ready(path: Path) -> bool:
    """Whether the state file's inventory import has committed (read without any lock)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'import_complete'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "1"


@dataclass
class Lives:
    """What happened to the processes of one chaos run."""

    kills: int = 0
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # codes of lives that ended by themselves
    kill_delays: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def resumes(self) -> int:
        return max(0, self.starts - 1)

    @property
    def final_code(self) -> int | None:
        return self.exits[-1] if self.exits else None


class ChaosError(AssertionError):
    """A chaos run could not be brought to its end."""


def run_with_kills(
    args: Sequence[str | Path],
    env: dict[str, str],
    cwd: Path,
    *,
    kills: int,
    rng: random.Random,
    delay: tuple[float, float],
    output: Path,
    state_path: Path | None = None,
    life_timeout: float = 120.0,
    deadline: float = 600.0,
    max_starts: int | None = None,
) -> Lives:
    """Start `args`, SIGKILL it after a random delay, start it again: `kills` times.

    Then let it run until it exits 0 or 1 (exit 3, work deferred, is resumed too).
    With `state_path`, the first life is only killed once its inventory import has
    committed: a kill inside the import is the subject of its own test.
    Every life's output is appended to `output`.
    """
    command = orchestrator_command(*args)
    lives = Lives()
    started = time.monotonic()
    max_starts = max_starts if max_starts is not None else kills + 20
    with output.open("ab") as out:
        while True:
            if time.monotonic() - started > deadline:
                raise ChaosError(f"not finished after {deadline:.0f} s: {lives}")
            if lives.starts >= max_starts:
                raise ChaosError(f"not finished after {lives.starts} starts: {lives}")
            out.write(f"\n=== life {lives.starts + 1} ===\n".encode())
            out.flush()
            process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=cwd)
            lives.starts += 1
            if lives.kills < kills:
                if state_path is not None and lives.starts == 1:
                    _wait_imported(state_path, process)
                wait = rng.uniform(*delay)
                code = _wait_or_kill(process, wait)
                if code == -signal.SIGKILL:
                    lives.kills += 1
                    lives.kill_delays.append(wait)
                    out.write(f"=== SIGKILL after {wait:.2f} s ===\n".encode())
                    continue
            else:
                code = _wait_or_kill(process, life_timeout)
                if code == -signal.SIGKILL:
                    raise ChaosError(f"a life did not end within {life_timeout:.0f} s: {lives}")
            lives.exits.append(code)
            if code in (0, 1):
                break
            if code != 3:
                raise ChaosError(f"exit {code}; see {output}: {_tail(output)}")
    lives.seconds = time.monotonic() - started
    return lives


def _wait_imported(state_path: Path, process: subprocess.Popen[bytes]) -> None:
    try:
        wait_until(
            lambda: state_ready(state_path) or process.poll() is not None,
            STARTUP_TIMEOUT,
            step=0.02,
        )
    except BaseException:
        process.kill()
        process.wait()
        raise


def _wait_or_kill(process: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        # If it ended on its own in between, wait() returns its own code, not -9.
        return process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


# -- reading a state file ---------------------------------------------------------------


@dataclass
class Snapshot:
    """Everything a state file says, read once."""

    targets: list[Target]
    events: dict[int, list[Event]]
    counts: dict[TargetState, int]
    run_id: str

    @property
    def by_server(self) -> dict[str, Target]:
        return {t.server_id: t for t in self.targets}


def read_state(path: Path) -> Snapshot:
    with StateStore.open(path, readonly=True) as store:
        targets = list(store.iter_targets())
        events: dict[int, list[Event]] = {t.id: [] for t in targets}
        for event in store.events():
            events.setdefault(event.target_id, []).append(event)
        return Snapshot(targets, events, store.counts(), store.run_info().run_id)


# -- the invariants -----------------------------------------------------------------------


@dataclass
class Figures:
    targets: int = 0
    succeeded: int = 0
    failed: int = 0
    not_final: int = 0
    sim_reinstalls: int = 0
    reinstalls_after_success: int = 0
    rejected_while_rebuilding: int = 0
    duplicates: int = 0  # servers reinstalled (accepted) more than once
    in_doubt_targets: int = 0  # targets that went through in_doubt at least once
    intent_without_answer: int = 0  # a kill fell between intent and answer
    resent_after_settling: int = 0  # settled "not accepted", then sent again
    dropped: int = 0
    errors_injected: int = 0


def event_chain_problems(target: Target, events: Sequence[Event]) -> list[str]:
    """The event log must explain the target: from pending, link by link, to its state."""
    name = f"{target.project_id}/{target.server_id}"
    moves = [e for e in events if e.from_state != e.to_state]  # notes do not move
    if target.state is TargetState.PENDING and not moves:
        return []
    if not moves:
        return [f"{name}: state {target.state.value} but no event explains it"]
    problems = []
    if moves[0].from_state != TargetState.PENDING.value:
        problems.append(f"{name}: first event leaves {moves[0].from_state}, not pending")
    for before, after in itertools.pairwise(moves):
        if before.to_state != after.from_state:
            problems.append(
                f"{name}: event to {before.to_state} is followed by one from {after.from_state}"
            )
    if moves[-1].to_state != target.state.value:
        problems.append(
            f"{name}: last event enters {moves[-1].to_state}, target is {target.state.value}"
        )
    if any(not e.detail for e in events):
        problems.append(f"{name}: an event without detail")
    return problems


def fleet_problems(
    state_path: Path,
    stats: dict[str, Any],
    expected_total: int,
    report_dir: Path | None = None,
) -> tuple[list[str], Figures]:
    """Every way a finished run can be wrong, as readable lines (empty: all good)."""
    snap = read_state(state_path)
    problems: list[str] = []
    fig = Figures(targets=len(snap.targets))
    reinstalls: dict[str, int] = stats["reinstalls_by_server"]
    successes: dict[str, int] = stats["successful_reinstalls_by_server"]
    fig.sim_reinstalls = sum(reinstalls.values())
    fig.reinstalls_after_success = stats["reinstalls_after_success"]
    fig.rejected_while_rebuilding = stats["rejected_while_rebuilding"]
    fig.duplicates = sum(1 for n in reinstalls.values() if n > 1)
    fig.dropped = stats.get("dropped", 0)
    fig.errors_injected = stats.get("errors_injected", 0)

    # None forgotten: every inventory row is a target, and every target is final.
    if len(snap.targets) != expected_total:
        problems.append(
            f"{len(snap.targets)} targets in the state file, the inventory has {expected_total}"
        )
    by_state = Counter(t.state for t in snap.targets)
    fig.succeeded = by_state[TargetState.SUCCEEDED]
    fig.failed = by_state[TargetState.FAILED]
    fig.not_final = sum(n for s, n in by_state.items() if s not in FINAL_STATES)
    for t in snap.targets:
        name = f"{t.project_id}/{t.server_id}"
        if t.state not in FINAL_STATES:
            problems.append(f"{name}: left {t.state.value}")
        if t.state is TargetState.FAILED and not (t.error_code and t.fail_reason):
            problems.append(f"{name}: failed without error_code and fail_reason")

    # Never twice, never on top of a running reinstall.
    if fig.reinstalls_after_success:
        problems.append(f"simulator: {fig.reinstalls_after_success} reinstalls after a success")
    if fig.rejected_while_rebuilding:
        problems.append(f"simulator: {fig.rejected_while_rebuilding} reinstalls while rebuilding")
    # A second reinstall sent while one was queued, powering off or rebuilding: the
    # simulator refuses it (as ECS would), but sending it at all breaks the promise.
    for server in stats.get("overlapping_servers", []):
        problems.append(f"{server}: a reinstall was sent while another was under way")
    for server in stats.get("reinstalled_after_success", []):
        problems.append(f"{server}: reinstalled again after a successful reinstall")
    if stats["jobs"]["in_progress"]:
        problems.append(f"simulator: {stats['jobs']['in_progress']} jobs still running at the end")

    # The report of success is the truth, both ways.
    succeeded = {t.server_id for t in snap.targets if t.state is TargetState.SUCCEEDED}
    failed = {t.server_id for t in snap.targets if t.state is TargetState.FAILED}
    reinstalled_ok = {s for s, n in successes.items() if n >= 1}
    if len(succeeded) != len(reinstalled_ok):
        problems.append(
            f"{len(succeeded)} targets succeeded, {len(reinstalled_ok)} servers reinstalled well"
        )
    for server in sorted(succeeded - reinstalled_ok):
        problems.append(f"{server}: succeeded, but the simulator saw no successful reinstall")
    for server in sorted(reinstalled_ok - succeeded):
        problems.append(f"{server}: reinstalled well, but the target is not succeeded")
    for server in sorted(failed & reinstalled_ok):
        problems.append(f"{server}: failed, but the simulator reinstalled it well")
    for server, n in sorted(successes.items()):
        if n != 1:
            problems.append(f"{server}: {n} successful reinstalls")

    # A second accepted reinstall needs an excuse in the event log; every accepted one
    # was preceded by a durable intent (attempts counts intents).
    targets = snap.by_server
    for server, n in sorted(reinstalls.items()):
        target = targets.get(server)
        if target is None:
            problems.append(f"{server}: reinstalled, but not in the inventory")
            continue
        excuses = sum(
            1
            for e in snap.events[target.id]
            if (e.from_state == "in_doubt" and e.to_state == "pending") or e.to_state == "failed"
        )
        if n > 1 + excuses:
            problems.append(f"{server}: {n} reinstalls, only {excuses} settled as not accepted")
        if n > target.attempts:
            problems.append(f"{server}: {n} reinstalls, only {target.attempts} intents recorded")

    for t in snap.targets:
        events = snap.events.get(t.id, [])
        problems.extend(event_chain_problems(t, events))
        if any(e.to_state == "in_doubt" for e in events):
            fig.in_doubt_targets += 1
        fig.intent_without_answer += sum(
            1 for e in events if e.to_state == "in_doubt" and "earlier process" in e.detail
        )
        fig.resent_after_settling += sum(
            1 for e in events if e.from_state == "in_doubt" and e.to_state == "pending"
        )

    if report_dir is not None:
        problems.extend(report_problems(report_dir, snap))
    return problems, fig


def report_problems(report_dir: Path, snap: Snapshot) -> list[str]:
    """The last report written must say what the state file says."""
    folder = report_dir / snap.run_id
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        return [f"no report at {summary_path}"]
    summary = json.loads(summary_path.read_text())
    problems = []
    counts = {s.value: n for s, n in snap.counts.items()}
    if summary["counts"] != counts:
        problems.append(f"report counts {summary['counts']} != state counts {counts}")
    if summary["total"] != len(snap.targets):
        problems.append(f"report total {summary['total']} != {len(snap.targets)} targets")
    with (folder / "targets.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    states = {(r["project_id"], r["server_id"]): r["state"] for r in rows}
    truth = {(t.project_id, t.server_id): t.state.value for t in snap.targets}
    if states != truth:
        wrong = sorted(k for k in truth if states.get(k) != truth[k])[:5]
        problems.append(f"targets.csv disagrees with the state file, e.g. {wrong}")
    return problems


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"not reached within {timeout:.0f} s")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# libfaketime moves what the wall clock says in the processes it is preloaded into;
# DONT_FAKE_MONOTONIC leaves their monotonic clock alone, as NTP or a restored VM do.
FAKETIME_LIBRARY = Path(f"/usr/lib/{os.uname().machine}-linux-gnu/faketime/libfaketime.so.1")
# Offsets this host's wall clock is stepped through (libfaketime's relative form).
CLOCK_STEPS = ("+0", "+900", "-600", "+86400", "-30", "+3600", "+0")


class ClockStepper:
    """Steps the wall clock of every process started with `env()` through CLOCK_STEPS,
    one step every `every` seconds, round and round, until stopped."""

    def __init__(self, folder: Path, every: float = 1.5) -> None:
        self.file = folder / "faketime.rc"
        self.file.write_text(CLOCK_STEPS[0])
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._step, daemon=True)
        self.steps = 0

    @staticmethod
    def available() -> bool:
        return FAKETIME_LIBRARY.exists()

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(FAKETIME_LIBRARY),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_CACHE_DURATION": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def _step(self) -> None:
        for offset in itertools.cycle(CLOCK_STEPS[1:]):
            if self._stop.wait(self._every):
                return
            self.file.write_text(offset)
            self.steps += 1

    def __enter__(self) -> ClockStepper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
