"""Which simulated fleet an invocation of `--simulate` gets (engine.simulated), on real
SQLite state files: its own kept one, a new one, or a refusal that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engine.simulated import prepare_world, world_path
from orchestrator.errors import UsageError
from orchestrator.model import TargetSpec, TargetState
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.worldfile import read_world, start_world
from orchestrator.store import SqliteLocation
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

PROJECT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def location(tmp_path: Path) -> SqliteLocation:
    return SqliteLocation(tmp_path / "fleet.state.sqlite")


@pytest.fixture
def store(location: SqliteLocation) -> Iterator[StateStore]:
    specs = [
        TargetSpec(PROJECT, f"00000000-0000-4000-8000-{n:012x}", "key", "user", line=n)
        for n in range(1, 4)
    ]
    store = StateStore.create(
        location.path, specs, inventory_path="inventory.csv", inventory_sha256="0" * 64
    )
    store.begin_invocation({}, "inventory.csv")
    yield store
    store.close()


def mid_way(store: StateStore) -> None:
    target = next(iter(store.iter_targets()))
    store.apply([Change(target.id, TargetState.PENDING, TargetState.SUBMITTING, "intent")])


def test_a_first_run_starts_a_world_of_its_campaign_and_seed(
    location: SqliteLocation, store: StateStore
) -> None:
    config = prepare_world(SimulatorConfig(seed=7), location, store, seed_given=7)
    path = world_path(location.path)
    assert config.world_file == str(path) and path.name == "fleet.state.sqlite.simulated.jsonl"
    record = read_world(path)
    assert (record.campaign, record.seed, record.jobs) == (store.run_info().run_id, 7, ())
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_resume_keeps_its_worlds_seed_and_refuses_another(
    location: SqliteLocation, store: StateStore
) -> None:
    prepare_world(SimulatorConfig(seed=7), location, store, seed_given=7)
    mid_way(store)
    kept = prepare_world(SimulatorConfig(seed=0), location, store, seed_given=None)
    assert kept.seed == 7 and kept.world_file == str(world_path(location.path))
    with pytest.raises(UsageError, match=r"--sim-seed 3: .* drawn with seed 7"):
        prepare_world(SimulatorConfig(seed=3), location, store, seed_given=3)


@pytest.mark.parametrize("other", [False, True])
def test_targets_mid_way_without_their_world_are_refused_and_nothing_is_written(
    location: SqliteLocation, store: StateStore, other: bool
) -> None:
    path = world_path(location.path)
    if other:
        start_world(path, "another-campaign", seed=0)
    before = path.read_bytes() if other else None
    mid_way(store)
    with pytest.raises(UsageError, match=r"1 target.* mid-way.*orchestrator simulate") as caught:
        prepare_world(SimulatorConfig(), location, store, seed_given=None)
    assert str(path) in str(caught.value)
    assert ("belongs to another state file" if other else "is missing") in str(caught.value)
    assert (path.read_bytes() if other else None) == before
    assert path.exists() is other


def test_nothing_mid_way_without_a_world_starts_a_new_one(
    location: SqliteLocation, store: StateStore
) -> None:
    path = world_path(location.path)
    start_world(path, "another-campaign", seed=0)
    prepare_world(SimulatorConfig(), location, store, seed_given=None)
    assert read_world(path).campaign == store.run_info().run_id


def test_a_world_that_cannot_be_read_is_refused_naming_it(
    location: SqliteLocation, store: StateStore
) -> None:
    path = world_path(location.path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match=f"simulated fleet {path}, line 1: not JSON"):
        prepare_world(SimulatorConfig(), location, store, seed_given=None)
    assert path.read_text(encoding="utf-8") == "not json\n"


def test_a_link_planted_for_the_world_is_refused_and_left_alone(
    location: SqliteLocation, store: StateStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("mine\n", encoding="utf-8")
    path = world_path(location.path)
    path.symlink_to(elsewhere)
    with pytest.raises(UsageError, match="is a symbolic link"):
        prepare_world(SimulatorConfig(), location, store, seed_given=None)
    assert path.is_symlink() and elsewhere.read_text(encoding="utf-8") == "mine\n"
