"""The API gateway's limit (`api_limit`, `--api-limit`) over HTTP: 429 APIGW.0308 in the
gateway's flat shape, per API, per clock second and per clock minute, no Retry-After;
and how it sits with the service's own `rate_limit`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from sim_helpers import PROJECT, START, Api, ApiFactory, FakeClock, server_id

from orchestrator.simulator import SimulatorConfig, SimulatorProcess
from orchestrator.simulator import cli as cli_module
from orchestrator.simulator.cli import simulate
from orchestrator.simulator.config import ApiLimit

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def assert_gateway_throttled(answer: Any, limit: int, unit: str) -> None:
    assert answer.status == 429
    assert set(answer.body) == {"error_code", "error_msg", "request_id"}
    assert answer.body["error_code"] == "APIGW.0308"
    assert answer.body["error_msg"] == (
        "The throttling threshold has been reached: "
        f"policy user over ratelimit,limit:{limit},time:1 {unit}"
    )
    assert REQUEST_ID.fullmatch(answer.body["request_id"])
    assert "Retry-After" not in answer.headers


async def test_per_second_limit_per_api_without_retry_after(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(api_limit=ApiLimit(per_second=2))
    assert [(await api.server()).status for _ in range(2)] == [200, 200]
    third = await api.server()
    assert_gateway_throttled(third, 2, "second")
    # Per API: the other APIs have their own windows.
    assert (await api.list_v1()).status == 200
    assert (await api.list_nova()).status == 200
    assert (await api.job("0" * 32)).code == "Common.0011"
    clock.advance(0.99)  # the same clock second
    assert (await api.server()).status == 429
    clock.advance(0.01)  # the next one
    assert [(await api.server()).status for _ in range(3)] == [200, 200, 429]
    stats = await api.stats()
    assert stats["throttled"] == 3
    by_kind = {"reinstall": 0, "job": 0, "server": 3, "list_v1": 0, "list_nova": 0}
    assert stats["throttled_by_kind"] == stats["gateway_throttled_by_kind"] == by_kind
    assert stats["errors_by_code"]["APIGW.0308"] == 3
    assert stats["requests"]["server"] == 7  # refused calls are requests too


async def test_per_minute_limit_counts_clock_minutes(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    assert START % 60 == 0  # the fake clock starts on a minute
    api = await make_api(api_limit=ApiLimit(per_second=10, per_minute=3))
    for _ in range(3):
        assert (await api.list_v1()).status == 200
        clock.advance(5)
    clock.advance(44.5)  # START + 59.5: the same minute, another second
    assert_gateway_throttled(await api.list_v1(), 3, "minute")
    clock.advance(0.5)  # START + 60: a new minute
    assert (await api.list_v1()).status == 200


async def test_a_refused_call_does_not_use_up_the_window(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(api_limit=ApiLimit(per_minute=2))
    statuses = [(await api.list_nova()).status for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    clock.advance(60)
    assert [(await api.list_nova()).status for _ in range(3)] == [200, 200, 429]


async def test_one_api_s_own_limit_replaces_the_limit_of_every_api(make_api: ApiFactory) -> None:
    api = await make_api(
        api_limit=ApiLimit(per_second=3),
        api_limit_by_kind=(("list_v1", ApiLimit(per_second=1)),),
    )
    assert [(await api.list_v1()).status for _ in range(2)] == [200, 429]
    assert [(await api.list_nova()).status for _ in range(4)] == [200, 200, 200, 429]
    reinstalls = [(await api.reinstall(server_id(n))).status for n in range(4)]
    assert reinstalls == [200, 200, 200, 429]
    stats = await api.stats()
    assert stats["reinstalls_total"] == 3  # the refused one was not acted on
    assert stats["gateway_throttled_by_kind"] == {
        "reinstall": 1,
        "job": 0,
        "server": 0,
        "list_v1": 1,
        "list_nova": 1,
    }


async def test_the_gateway_answers_before_the_service_s_own_flow_control(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(api_limit=ApiLimit(per_second=2), rate_limit=1.0)
    assert (await api.server()).status == 200
    # Past the service's bucket (1/s) but within the gateway's window: the service's answer.
    second = await api.server()
    assert (second.status, second.code, second.headers["Retry-After"]) == (429, "Common.1503", "1")
    # The gateway's window is full now (it let two through): its answer, the service never asked.
    assert_gateway_throttled(await api.server(), 2, "second")
    stats = await api.stats()
    assert stats["throttled_by_kind"]["server"] == 2
    assert stats["gateway_throttled_by_kind"]["server"] == 1
    assert stats["errors_by_code"] == {"Common.1503": 1, "APIGW.0308": 1}


async def test_unauthenticated_calls_do_not_count_against_the_limit(make_api: ApiFactory) -> None:
    api = await make_api(token="gw-t0k", api_limit=ApiLimit(per_second=1))
    for _ in range(3):
        assert (await api.server()).status == 401
    assert (await api.server(headers={"X-Auth-Token": "gw-t0k"})).status == 200
    assert (await api.server(headers={"X-Auth-Token": "gw-t0k"})).status == 429


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="per_second must be a whole number >= 1"):
        ApiLimit(per_second=0)
    with pytest.raises(ValueError, match="per_minute must be a whole number >= 1"):
        ApiLimit(per_minute=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per-second or a per-minute"):
        ApiLimit()
    with pytest.raises(ValueError, match="kind one of"):
        SimulatorConfig(api_limit_by_kind=(("lists", ApiLimit(per_second=1)),))
    with pytest.raises(ValueError, match="extra_servers"):
        SimulatorConfig(extra_servers=-1)


# -- the command line ------------------------------------------------------------------------


def _config_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> SimulatorConfig:
    seen: list[SimulatorConfig] = []

    async def fake_serve(config: SimulatorConfig, host: str, port: int, *tls: object) -> None:
        seen.append(config)

    monkeypatch.setattr(cli_module, "_serve", fake_serve)
    result = CliRunner().invoke(simulate, args, env={"SIM_AK": None, "SIM_SK": None})
    assert result.exit_code == 0, result.output
    (config,) = seen
    return config


def test_api_limit_and_extra_servers_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config_of(
        [
            *("--api-limit", "20/600", "--api-limit", "list_v1=2"),
            *("--api-limit", "reinstall=/30", "--extra-servers", "250"),
        ],
        monkeypatch,
    )
    assert config.api_limit == ApiLimit(20, 600)
    assert config.api_limit_by_kind == (
        ("list_v1", ApiLimit(2, None)),
        ("reinstall", ApiLimit(None, 30)),
    )
    assert config.extra_servers == 250
    assert config.api_limit_of("list_v1") == ApiLimit(2, None)
    assert config.api_limit_of("job") == ApiLimit(20, 600)
    defaults = _config_of([], monkeypatch)
    assert (defaults.api_limit, defaults.api_limit_by_kind, defaults.extra_servers) == (None, (), 0)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0", "whole numbers >= 1"),
        ("2/0", "whole numbers >= 1"),
        ("fast", "[KIND=]PER_SECOND[/PER_MINUTE]"),
        ("/", "[KIND=]PER_SECOND[/PER_MINUTE]"),
        ("lists=2", "unknown API 'lists'"),
    ],
)
def test_bad_api_limits_are_usage_errors(value: str, fragment: str) -> None:
    result = CliRunner().invoke(simulate, ["--api-limit", value])
    assert result.exit_code == 2
    assert "--api-limit" in result.output and fragment in " ".join(result.output.split())


def test_help_documents_the_new_options() -> None:
    text = " ".join(CliRunner().invoke(simulate, ["--help"]).output.split())
    assert "--api-limit [KIND=]PER_SECOND[/PER_MINUTE]" in text
    assert "APIGW.0308 without Retry-After" in text
    assert "--extra-servers N" in text


async def test_the_simulate_command_serves_lists_and_the_gateway_limit(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.csv"
    rows = "".join(f"{PROJECT},{server_id(n)}\n" for n in range(1, 4))
    inventory.write_text("project_id,server_id\n" + rows)
    args = ("--fleet", str(inventory), "--extra-servers", "4", "--api-limit", "list_v1=/2")
    with SimulatorProcess(*args) as sim:
        async with aiohttp.ClientSession() as session:
            url = f"{sim.url}/v1/{PROJECT}/cloudservers/detail?limit=5"
            answers = []
            for _ in range(3):
                async with session.get(url) as response:
                    answers.append((response.status, await response.json(), response.headers))
        stats = sim.stats()
    (status, first, _), (_, second, _), (refused, body, headers) = answers
    assert (status, first["count"], len(first["servers"])) == (200, 7, 5)
    assert second == first
    assert (refused, body["error_code"]) == (429, "APIGW.0308")
    assert body["error_msg"].endswith("limit:2,time:1 minute")
    assert "Retry-After" not in headers
    assert stats["requests"]["list_v1"] == 3
    assert stats["gateway_throttled_by_kind"]["list_v1"] == 1


async def test_detail_is_the_list_route_not_a_server_named_detail(api: Api) -> None:
    assert (await api.list_v1()).body == {"count": 0, "servers": []}
    assert (await api.list_nova()).body == {"servers": []}
    assert (await api.stats())["requests"]["server"] == 0
