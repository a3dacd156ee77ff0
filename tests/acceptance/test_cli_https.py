"""A campaign over HTTPS through the production path: the simulator as its own process
with `--tls` (a CA made at start), `orchestrator run --endpoint https://... --ca-bundle`
as a subprocess, as an operator behind a company CA runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.simulator import SimulatorProcess

Cli = Callable[..., subprocess.CompletedProcess[str]]
SIM_TOKEN = "https-acceptance-token-7d2e"
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}

pytestmark = pytest.mark.timeout(120)


def test_a_campaign_over_https_with_the_simulators_ca(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(20)
    state = workdir / "fleet.state.sqlite"
    with SimulatorProcess(
        "--tls", "--fleet", inventory, "--job-seconds", "0.1:0.3", env=SIM_ENV, cwd=workdir
    ) as sim:
        assert sim.url.startswith("https://127.0.0.1:") and sim.ca_bundle is not None
        done = cli(
            "run", inventory, "--endpoint", sim.url, "--ca-bundle", sim.ca_bundle,
            "--state", state, "--rate", "200", *fast, env=ENV,
        )  # fmt: skip
        stats = sim.stats()
    assert done.returncode == 0, done.stderr
    assert "finished: 20 succeeded" in done.stdout
    assert len(stats["reinstalls_by_server"]) == 20
    assert set(stats["reinstalls_by_server"].values()) == {1}
    # Each reinstall came on a connection of its own, the reads on kept-alive ones.
    assert stats["reinstalls_on_reused_connections"] == 0
    reads = sum(stats["requests"][kind] for kind in ("server", "job", "list_v1", "list_nova"))
    assert 20 < stats["connections"] < 20 + reads


def test_without_the_ca_the_run_stops_with_a_tls_error_and_nothing_sent(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(5)
    with SimulatorProcess("--tls", "--fleet", inventory, env=SIM_ENV, cwd=workdir) as sim:
        # The system's CAs (or whatever this machine's environment names) do not know
        # the simulator's CA: no wait mends that, so the first failure stops the run.
        done = cli(
            "run", inventory, "--endpoint", sim.url, "--state", workdir / "f.state.sqlite",
            *fast, env=ENV, timeout=90,
        )  # fmt: skip
        stats = sim.stats()
    assert done.returncode == 2, done.stderr
    assert f"cannot reach {sim.url}: the TLS certificate of 127.0.0.1" in done.stderr
    assert "is not trusted" in done.stderr and "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert "--ca-bundle" in done.stderr
    assert stats["connections"] == 0  # no request reached the service
    nothing = {"reinstall": 0, "job": 0, "server": 0, "list_v1": 0, "list_nova": 0}
    assert stats["requests"] == nothing
