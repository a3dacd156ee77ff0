"""Pure parts of the simulator: config validation, fleet files, token bucket, time formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_helpers import PROJECT, SERVER

from orchestrator.simulator import SimulatorConfig, load_fleet
from orchestrator.simulator.ratelimit import TokenBucket
from orchestrator.simulator.timefmt import job_time, launched_at, stamp


@pytest.mark.parametrize(
    "fields",
    [
        {"missing_rate": 1.5},
        {"error_rate": -0.1},
        {"job_fail_rate": float("nan")},
        {"job_seconds": (5.0, 2.0)},
        {"job_seconds": (-1.0, 2.0)},
        {"rate_limit": 0.0},
        {"throttle_style": "503"},
        {"latency_ms": -1.0},
        {"ak": "only-ak"},
    ],
)
def test_config_refuses_bad_values(fields) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**fields)


def test_config_normalises_lists_to_tuples() -> None:
    config = SimulatorConfig(fleet=[[PROJECT, SERVER]], keypairs=["a"], job_seconds=(1, 2))
    assert config.fleet == ((PROJECT, SERVER),)
    assert config.keypairs == ("a",)
    assert config.job_seconds == (1.0, 2.0)
    assert hash(config)


def test_load_fleet_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text(
        f"name, project_id ,server_id\nweb,{PROJECT},{SERVER}\n\ndb,{PROJECT},x-2\n"
        f"dup,{PROJECT},{SERVER}\n"
    )
    assert load_fleet(path) == ((PROJECT, SERVER), (PROJECT, "x-2"))


@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: {"servers": s}])
def test_load_fleet_from_json(tmp_path: Path, wrap) -> None:
    path = tmp_path / "fleet.json"
    servers = [{"project_id": PROJECT, "server_id": SERVER, "name": "web"}]
    path.write_text(json.dumps(wrap(servers)))
    assert load_fleet(path) == ((PROJECT, SERVER),)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("a.csv", "project_id,name\np,x\n", "server_id"),
        ("a.csv", f"project_id,server_id\n{PROJECT},\n", "line 2"),
        ("a.json", '{"hosts": []}', "servers"),
        ("a.json", '[{"project_id": "p"}]', "servers[0]"),
        ("a.json", "[1", "JSON"),
    ],
)
def test_load_fleet_names_the_problem(tmp_path: Path, name, text, fragment) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        load_fleet(path)


def test_token_bucket_refills_continuously_up_to_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0, tokens=2.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0
    assert bucket.take(1000.0) == 0.0  # long idle: refilled, but only to capacity
    assert bucket.take(1000.0) == 0.0
    assert bucket.take(1000.0) > 0.0


def test_time_formats_match_the_reference() -> None:
    t = 1461614687.591  # 2016-04-25T20:04:47.591Z, the reference's begin_time
    assert job_time(t) == "2016-04-25T20:04:47.591Z"
    assert launched_at(1536822249.197749) == "2018-09-13T07:04:09.197749"
    assert stamp(1536822411.9) == "2018-09-13T07:06:51Z"
