"""`orchestrator simulate`: flags, validation, HTTPS, and a real subprocess stopped by
SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest
import trustme
from click.testing import CliRunner
from sim_helpers import PROJECT, SERVER

from orchestrator.simulator import SimulatorConfig, SimulatorProcess
from orchestrator.simulator import cli as cli_module
from orchestrator.simulator.cli import simulate
from orchestrator.simulator.process import IN_PROCESS_DEFAULTS

FLAGS = [
    "--host",
    "--port",
    "--seed",
    "--fleet",
    "--missing-rate",
    "--locked-rate",
    "--no-disk-rate",
    "--running-rate",
    "--job-seconds",
    "--queue-seconds",
    "--power-off-seconds",
    "--stopped-seconds",
    "--job-fail-rate",
    "--fail-to-error-rate",
    "--success-but-error-rate",
    "--success-but-stale-rate",
    "--error-rate",
    "--drop-rate",
    "--error-after-acting-rate",
    "--slow-answer-rate",
    "--slow-answer-seconds",
    "--rate-limit",
    "--throttle-style",
    "--busy-rate",
    "--latency-ms",
    "--token",
    "--ak",
    "--sk",
    "--keypairs",
    "--tls",
    "--tls-cert",
    "--tls-key",
]
TOKEN = "cli-secret-token-4242"


def test_help_lists_and_documents_every_flag() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    for flag in FLAGS:
        assert f"  {flag} " in result.output
    documented = {opt for p in simulate.params if p.help for opt in p.opts}
    assert set(FLAGS) <= documented
    for env in ("SIM_TOKEN", "SIM_AK", "SIM_SK"):
        assert env in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--missing-rate", "1.5"], "--missing-rate"),
        (["--drop-rate", "-0.1"], "--drop-rate"),
        (["--job-seconds", "5:2"], "MIN <= MAX"),
        (["--job-seconds", "soon"], "MIN or MIN:MAX"),
        (["--queue-seconds", "9:1"], "MIN <= MAX"),
        (["--power-off-seconds", "-1"], "MIN <= MAX"),
        (["--slow-answer-seconds", "-2"], "--slow-answer-seconds"),
        (["--error-after-acting-rate", "2"], "--error-after-acting-rate"),
        (["--throttle-style", "503"], "--throttle-style"),
        (["--ak", "only-ak"], "--ak and --sk"),
        (["--tls-cert", __file__], "--tls-cert and --tls-key"),
        (["--tls", "--tls-cert", __file__, "--tls-key", __file__], "one or the other"),
    ],
)
def test_bad_values_are_refused_clearly(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(simulate, args, env={"SIM_AK": None, "SIM_SK": None})
    assert result.exit_code == 2
    assert fragment in result.output


def test_bad_fleet_file_is_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.csv"
    inventory.write_text("name,other\nx,y\n")
    result = CliRunner().invoke(simulate, ["--fleet", str(inventory)])
    assert result.exit_code == 2
    assert "project_id" in result.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_subprocess_serves_until_signal_and_exits_0(signum: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SIM_TOKEN", "SIM_AK", "SIM_SK")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "simulate",
        "--port",
        "0",
        "--token",
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        first = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        url = first.decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            path = f"{url}/v1/{PROJECT}/cloudservers/{SERVER}"
            async with session.get(path, headers={"X-Auth-Token": TOKEN}) as response:
                assert response.status == 200
                assert (await response.json())["server"]["id"] == SERVER
            async with session.get(path) as response:
                assert response.status == 401
        process.send_signal(signum)
        out, err = await asyncio.wait_for(process.communicate(), timeout=15)
        assert process.returncode == 0, err.decode()
        assert TOKEN.encode() not in out + err + first
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_flags_and_env_vars_reach_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[SimulatorConfig, str, int]] = []

    async def fake_serve(config: SimulatorConfig, host: str, port: int, *tls: object) -> None:
        seen.append((config, host, port))

    monkeypatch.setattr(cli_module, "_serve", fake_serve)
    inventory = tmp_path / "inv.csv"
    inventory.write_text(f"project_id,server_id\n{PROJECT},{SERVER}\n")
    args = [
        "--port",
        "8123",
        "--seed",
        "5",
        "--fleet",
        str(inventory),
        "--job-seconds",
        "1:3",
        "--rate-limit",
        "7.5",
        "--throttle-style",
        "202",
        "--keypairs",
        "a, b",
        "--latency-ms",
        "20",
        "--missing-rate",
        "0.25",
    ]
    env = {"SIM_TOKEN": TOKEN, "SIM_AK": "ak-1", "SIM_SK": "sk-secret-1"}
    result = CliRunner().invoke(simulate, args, env=env)
    assert result.exit_code == 0, result.output
    ((config, host, port),) = seen
    assert (host, port) == ("127.0.0.1", 8123)
    assert config.seed == 5
    assert config.fleet == ((PROJECT, SERVER),)
    assert config.job_seconds == (1.0, 3.0)
    assert (config.rate_limit, config.throttle_style) == (7.5, "202")
    assert config.keypairs == ("a", "b")
    assert (config.latency_ms, config.missing_rate) == (20.0, 0.25)
    assert (config.token, config.ak, config.sk) == (TOKEN, "ak-1", "sk-secret-1")


def _config_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> SimulatorConfig:
    seen: list[SimulatorConfig] = []

    async def fake_serve(config: SimulatorConfig, host: str, port: int, *tls: object) -> None:
        seen.append(config)

    monkeypatch.setattr(cli_module, "_serve", fake_serve)
    result = CliRunner().invoke(simulate, args, env={"SIM_AK": None, "SIM_SK": None})
    assert result.exit_code == 0, result.output
    (config,) = seen
    return config


def test_command_line_timing_defaults_are_realistic(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config_of([], monkeypatch)
    assert config.queue_seconds == (2.0, 60.0)
    assert config.power_off_seconds == (10.0, 90.0)
    assert config.stopped_seconds == (1.0, 5.0)
    assert config.fail_to_error_rate == 0.5
    assert config.slow_answer_seconds == 75.0
    help_text = CliRunner().invoke(simulate, ["--help"]).output
    assert "--queue-seconds 0 --power-off-seconds 0" in " ".join(help_text.split())


def test_new_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config_of(
        [
            *("--queue-seconds", "1:2", "--power-off-seconds", "3", "--stopped-seconds", "0"),
            *("--fail-to-error-rate", "0.25", "--error-after-acting-rate", "0.1"),
            *("--slow-answer-rate", "0.2", "--slow-answer-seconds", "9"),
            *("--success-but-error-rate", "0.3", "--success-but-stale-rate", "0.4"),
        ],
        monkeypatch,
    )
    assert (config.queue_seconds, config.power_off_seconds) == ((1.0, 2.0), (3.0, 3.0))
    assert config.stopped_seconds == (0.0, 0.0)
    assert (config.fail_to_error_rate, config.error_after_acting_rate) == (0.25, 0.1)
    assert (config.slow_answer_rate, config.slow_answer_seconds) == (0.2, 9.0)
    assert (config.success_but_error_rate, config.success_but_stale_rate) == (0.3, 0.4)


@pytest.mark.parametrize(
    ("world", "on_reinstall", "on_start"),
    [("reinstall", True, False), ("never", False, False), ("any-start", True, True)],
)
def test_the_undocumented_worlds_reach_the_config(
    world: str, on_reinstall: bool, on_start: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config_of(
        [
            *("--launched-at", world, "--keep-power-state", "--fail-restarts"),
            *("--come-back-seconds", "30:120", "--second-reinstall", "fail-both"),
        ],
        monkeypatch,
    )
    assert (config.launched_at_on_reinstall, config.launched_at_on_start) == (
        on_reinstall,
        on_start,
    )
    assert config.keep_power_state and config.fail_restarts
    assert config.come_back_seconds == (30.0, 120.0)
    assert config.second_reinstall == "fail-both"
    defaults = _config_of([], monkeypatch)
    assert (defaults.launched_at_on_reinstall, defaults.launched_at_on_start) == (True, False)
    assert not (defaults.keep_power_state or defaults.fail_restarts)
    assert defaults.come_back_seconds == (0.0, 0.0)
    assert defaults.second_reinstall == "refuse"


def test_simulator_process_starts_with_in_process_defaults_that_args_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = SimulatorProcess("--queue-seconds", "5:30")
    args = sim.command[sim.command.index("simulate") + 1 :]
    assert args[: len(IN_PROCESS_DEFAULTS) + 2] == ["--port", "0", *IN_PROCESS_DEFAULTS]
    config = _config_of(args, monkeypatch)
    assert config.queue_seconds == (5.0, 30.0)  # the caller's flag came last and won
    assert (config.power_off_seconds, config.fail_to_error_rate) == ((0.0, 0.0), 1.0)


def test_a_certificate_that_cannot_be_loaded_is_a_usage_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key, and never quoted\n")
    result = CliRunner().invoke(simulate, ["--tls-cert", str(cert), "--tls-key", str(key)])
    assert result.exit_code == 2
    assert str(cert) in result.output and str(key) in result.output
    assert "never quoted" not in result.output


async def _server_read(url: str, context: ssl.SSLContext) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/{PROJECT}/cloudservers/{SERVER}", ssl=context) as response,
    ):
        return response.status


async def test_tls_serves_https_with_a_ca_it_prints_and_removes_at_exit() -> None:
    with SimulatorProcess("--tls") as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        assert sim.ca_bundle is not None and sim.ca_bundle.is_file()
        trusting = ssl.create_default_context(cafile=str(sim.ca_bundle))
        assert await _server_read(sim.url, trusting) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _server_read(sim.url, ssl.create_default_context())
        stats = sim.stats()  # over HTTPS too, trusting the printed CA
        assert stats["requests"]["server"] == 1
    assert not sim.ca_bundle.exists()  # a throwaway CA does not outlive its simulator


async def test_tls_with_a_given_certificate_and_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    with SimulatorProcess("--tls-cert", cert, "--tls-key", key) as sim:
        assert sim.url.startswith("https://") and sim.ca_bundle is None
        context = ssl.create_default_context(cafile=str(ca_file))
        assert await _server_read(sim.url, context) == 200
