"""What every command pays at start: the CLI does not import what only some need."""

from __future__ import annotations

import subprocess
import sys

import pytest

import orchestrator.simulator

# Each costs tens of milliseconds to import, and is needed only by `simulate` or
# `--simulate` (aiohttp's web stack, the simulator's server) or on first open of a
# state file (sqlite_utils).
DEFERRED = ("aiohttp.web", "orchestrator.simulator.server", "sqlite_utils")


def test_the_cli_imports_none_of_the_deferred_modules() -> None:
    probe = (
        "import sys, orchestrator.cli, orchestrator.__main__; "
        f"print(','.join(m for m in {DEFERRED!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


def test_the_simulator_package_still_gives_every_name() -> None:
    from orchestrator.simulator.server import Simulator

    assert orchestrator.simulator.Simulator is Simulator
    assert callable(orchestrator.simulator.load_fleet)
    assert callable(orchestrator.simulator.verify_signature)
    assert orchestrator.simulator.SimulatorProcess.__name__ == "SimulatorProcess"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = orchestrator.simulator.Nope  # type: ignore[attr-defined]
