"""A fake ECS API (reinstall, job status, server details, the two server lists) with the
real service's faults and its API gateway's limits.

    from orchestrator.simulator import Simulator, SimulatorConfig

    async with Simulator(SimulatorConfig(seed=1, token="t0k")) as sim:
        ...  # send requests to sim.url; read sim.stats()

Modules, one concern each: `config` (settings), `fleetfile` (fleet from an
inventory file), `fleet` (servers and what a read shows), `phases` (the timeline
of an accepted reinstall), `jobs` (job plans and answers), `reinstall` (request
bodies of v1 and v2), `auth` (token and AK/SK), `iam` (Keystone password tokens
per project, POST /v3/auth/tokens), `ratelimit` (the service's flow control and the
API gateway's limit), `listing` (the v1 and Nova lists: filters and paging),
`faults`, `world` (state and rules), `worldfile` (the accepted jobs kept in a file,
so that a world outlives its process), `app` (the routes' handlers, and them as an
aiohttp application), `server` (in-process start/stop, HTTP or HTTPS), `tls` (the
certificate of `simulate --tls`), `cli` (the `simulate` command), `process`
(`SimulatorProcess`: the `simulate` command as a child process, for tests and load
measurements).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orchestrator.simulator.config import SimulatorConfig

if TYPE_CHECKING:
    from orchestrator.simulator.auth import verify_signature
    from orchestrator.simulator.fleetfile import load_fleet
    from orchestrator.simulator.process import SimulatorProcess
    from orchestrator.simulator.server import Simulator

# Imported on first use: the server pulls in aiohttp's web stack (~50 ms), which a
# run against a real endpoint, `status` or `report` never needs.
_LAZY = {
    "Simulator": "server",
    "SimulatorProcess": "process",
    "load_fleet": "fleetfile",
    "verify_signature": "auth",
}

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorProcess",
    "load_fleet",
    "verify_signature",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
