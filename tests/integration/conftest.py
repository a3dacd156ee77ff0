"""Fixtures of the integration tests: the runner against the simulator over loopback HTTP.

    make_inventory(count, projects=, seed=)   a valid CSV inventory in the tmp dir
    start_sim(inventory, **config)            an in-process Simulator whose fleet is the inventory
    run_campaign(inventory, sim=, settings=, location=, rollout=, ack_failures=)
                                              campaign.open_state + campaign.execute, in-process
                                              (location: another store, e.g. PostgreSQL)
    fast_settings(**changes)                  RunSettings for a run of seconds
    sim_process(*args, env=)                  `orchestrator simulate` as a subprocess: its URL
    sim_stats(url)                            GET /_sim/stats

Test modules take everything as fixtures (never `from conftest import`: several
conftest.py files share that module name).

Settings are fast (polls every 0.2-0.5 s, short backoffs) so a run of 50-100
targets takes a few seconds; the simulator uses the wall clock.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer
from never_twice_helpers import Drive, Driven

from orchestrator.cloud.auth import Credentials, TokenAuth
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.campaign import Invocation, Result, execute, open_state
from orchestrator.engine.runner import RunSettings
from orchestrator.inventory import InventoryDefaults
from orchestrator.rollout.options import RolloutOptions
from orchestrator.simulator import Simulator, SimulatorConfig, load_fleet
from orchestrator.simulator.process import SimulatorProcess, read_stats
from orchestrator.store import StateLocation
from orchestrator.store.records import Event
from orchestrator.store.sqlite import StateStore

REPO = Path(__file__).resolve().parents[2]
SIM_TOKEN = "integration-token-5c1f"
KEYNAME = "fleet-key"


def _fast_settings(**changes: Any) -> RunSettings:
    """RunSettings for a run of seconds: quick polls, short backoffs, a short drain."""
    base = RunSettings(
        rate=50.0,
        poll_rate=100.0,
        first_poll=0.2,
        poll_cap=0.5,
        settle_delay=0.2,
        settle_quiet=1.0,
        # The simulator's answers and timestamps come from one clock.
        clock_margin=0.0,
        drain_timeout=10.0,
        job_timeout=60.0,
        verify_within=1.0,
        retry=RetrySettings(attempts=6, max_delay=60.0, backoff_base=0.05, backoff_cap=1.0),
    )
    return replace(base, **changes)


def _load_make_inventory() -> Any:
    name = "_bench_make_inventory"  # benchmarks/ is not a package
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "make_inventory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_make_inventory = _load_make_inventory()


@pytest.fixture
def make_inventory(tmp_path: Path) -> Callable[..., Path]:
    """Write benchmarks/make_inventory.py's deterministic fleet of `count` servers."""

    def make(count: int, projects: int = 4, seed: int = 1, name: str | None = None) -> Path:
        path = tmp_path / (name or f"fleet-{count}-{projects}-{seed}.csv")
        _make_inventory.write_csv(path, count, projects, seed)
        return path

    return make


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    path = tmp_path / "reports"
    path.mkdir()
    return path


@pytest.fixture
async def start_sim() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """Start an in-process simulator (token auth) whose fleet is the inventory's servers."""
    started: list[Simulator] = []

    async def start(inventory: Path | None = None, **fields: Any) -> Simulator:
        if inventory is not None:
            fields.setdefault("fleet", load_fleet(inventory))
        fields.setdefault("token", SIM_TOKEN)
        fields.setdefault("job_seconds", (0.2, 0.5))
        faults = fields.pop("faults", None)  # ScriptedFaults, for a test that scripts them
        sim = Simulator(SimulatorConfig(**fields), host="127.0.0.1", port=0, faults=faults)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


@dataclass
class Campaign:
    """What one in-process invocation left: its result and where its state is."""

    result: Result
    state_path: Path
    location: StateLocation | None = None  # a PostgreSQL campaign, else the file

    @property
    def exit_code(self) -> int:
        return self.result.outcome.exit_code

    def store(self) -> StateStore:
        if self.location is not None:
            return self.location.open(readonly=True)
        return StateStore.open(self.state_path, readonly=True)

    def targets(self) -> list[Any]:
        with self.store() as store:
            return list(store.iter_targets())

    def events(self, target_id: int) -> list[Event]:
        with self.store() as store:
            return store.events(target_id)


RunCampaign = Callable[..., Awaitable[Campaign]]


@pytest.fixture
def run_campaign(tmp_path: Path, report_dir: Path) -> RunCampaign:
    """Build an Invocation and run `campaign.execute` in-process, as the CLI does."""

    async def run(
        inventory: Path | None,
        *,
        endpoint: str | None = None,
        sim: Simulator | None = None,
        settings: RunSettings | None = None,
        credentials: Credentials | None = None,
        state_path: Path | None = None,
        simulate: SimulatorConfig | None = None,
        location: StateLocation | None = None,
        rollout: RolloutOptions | None = None,
        ack_failures: bool = False,
    ) -> Campaign:
        if sim is not None:
            endpoint = sim.url
            if credentials is None and sim.config.token is not None:
                credentials = TokenAuth(sim.config.token)
        if state_path is None:
            assert inventory is not None
            state_path = tmp_path / f"{inventory.stem}.state.sqlite"
        inv = Invocation(
            state_path=state_path,
            report_dir=report_dir,
            settings=settings or _fast_settings(),
            inventory=inventory,
            defaults=InventoryDefaults(),
            endpoint=endpoint,
            credentials=credentials,
            simulate=simulate,
            live_progress=False,
            options={"test": True},
            location=location,
            rollout=rollout or RolloutOptions(),
            ack_failures=ack_failures,
        )
        store = open_state(inv)
        try:
            result = await execute(inv, store)
        finally:
            store.close()
        return Campaign(result, state_path, location)

    return run


@pytest.fixture
def fast_settings() -> Callable[..., RunSettings]:
    """fast_settings(**changes) -> RunSettings for a run of seconds."""
    return _fast_settings


def _sim_stats(url: str) -> dict[str, Any]:
    """GET /_sim/stats of a simulator (loopback only)."""
    assert url.startswith("http://127.0.0.1:")
    return read_stats(url)


@contextlib.contextmanager
def simulator_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """`python -m orchestrator simulate --port 0 ARGS`: yield its URL; stop it with SIGTERM."""
    with SimulatorProcess(*args, env=env, cwd=cwd) as sim:
        yield sim.url


@pytest.fixture
def sim_process() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """sim_process(*args, env=) -> context manager yielding a simulator subprocess's URL."""
    return simulator_process


@pytest.fixture
def sim_stats() -> Callable[[str], dict[str, Any]]:
    """sim_stats(url) -> the GET /_sim/stats answer of a simulator."""
    return _sim_stats


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as exits:
        yield exits


@pytest.fixture
def driven(tmp_path: Path) -> Drive:
    """driven(inventory, simulator or hostile server) -> Driven on its URL."""

    def make(inventory: Path, api: Simulator | HostileServer) -> Driven:
        token = api.config.token if isinstance(api, Simulator) else None
        return Driven(tmp_path, inventory, api.url, token or "x")

    return make
