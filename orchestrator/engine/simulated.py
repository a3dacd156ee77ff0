"""`run --simulate` across invocations: the simulated fleet kept beside the state file.

The in-process simulator ends with each invocation. Its accepted jobs are kept in
`<state file>.simulated.jsonl` (`simulator.worldfile`), so that a resume after Ctrl-C
(or a kill) finds the jobs it left under way and follows them as it would at a real
service, instead of failing them as not verified. Decided before the invocation is
recorded, from what the state file holds:

    a world file of this campaign            read back; its seed is kept (another
                                             --sim-seed given: exit 2)
    none, or another state's; nothing        a new one: pending targets meet fresh
    mid-way                                  servers, final ones are not sent again
    none, or another state's; targets        exit 2, nothing changed: their jobs went
    mid-way                                  with the process that simulated them
    a PostgreSQL state                       no file: as "none" above
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.model import ACTIVE_STATES
from orchestrator.simulator import SimulatorConfig
from orchestrator.store import SqliteLocation, StateLocation
from orchestrator.store.sqlite import StateStore

__all__ = ["WORLD_SUFFIX", "prepare_world", "world_path"]

WORLD_SUFFIX = ".simulated.jsonl"
REHEARSE = (
    "to rehearse interruptions, run the simulator as a process of its own"
    " (`orchestrator simulate --fleet INVENTORY`) and give its URL with --endpoint"
)

log = logging.getLogger("orchestrator.campaign")


def world_path(state_path: Path) -> Path:
    """Where the simulated fleet of the SQLite state file `state_path` is kept."""
    return state_path.with_name(state_path.name + WORLD_SUFFIX)


def prepare_world(
    config: SimulatorConfig,
    location: StateLocation,
    store: StateStore,
    *,
    seed_given: int | None,
) -> SimulatorConfig:
    """`config` with the world file this invocation's simulator keeps (and its seed);
    UsageError, with nothing changed, where a resume could only be told lies."""
    # Imported here: only --simulate needs the simulator's job records.
    from orchestrator.simulator.worldfile import WorldFileError, read_world, start_world

    campaign = store.run_info().run_id
    counts = store.counts()
    mid_way = sum(n for state, n in counts.items() if state in ACTIVE_STATES)
    if not isinstance(location, SqliteLocation):
        if mid_way:
            raise UsageError(
                f"--simulate: {mid_way} target(s) of this simulated campaign are mid-way, and"
                " a PostgreSQL state keeps no simulated fleet: the simulator that accepted"
                " their jobs is gone, and a resume would fail them for jobs it forgot."
                f" Nothing was changed. Start the rehearsal again with a new --state; {REHEARSE}"
            )
        return config
    path = world_path(location.path)
    record = None
    if path.is_symlink():
        # Beside the state file, as its log: a link there is planted, never followed.
        raise UsageError(f"--simulate: {path} is a symbolic link; refusing to follow it")
    if path.exists():
        try:
            record = read_world(path)
        except WorldFileError as exc:
            raise UsageError(f"--simulate: simulated fleet {exc}; nothing was changed") from None
    if record is not None and record.campaign == campaign:
        if seed_given is not None and seed_given != record.seed:
            raise UsageError(
                f"--sim-seed {seed_given}: this simulated campaign's fleet ({path}) was drawn"
                f" with seed {record.seed}, and a resume keeps it: leave --sim-seed out"
            )
        return replace(config, seed=record.seed, world_file=str(path))
    if mid_way:
        what = "is missing" if record is None else "belongs to another state file"
        raise UsageError(
            f"--simulate: {mid_way} target(s) of this simulated campaign are mid-way (sent,"
            f" not settled), and the simulated fleet that accepted their jobs, {path}, {what}:"
            " a resume would fail them for jobs the simulator forgot. Nothing was changed."
            f" Start the rehearsal again with a new --state; {REHEARSE}"
        )
    try:
        start_world(path, campaign, config.seed)
    except OSError as exc:
        raise UsageError(f"--simulate: cannot write the simulated fleet {path}: {exc}") from None
    log.info("simulated fleet kept in %s", path)
    return replace(config, world_file=str(path))
