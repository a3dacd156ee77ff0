"""Pure parts of the simulator: config validation, fleet files, token bucket, time formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_helpers import PROJECT, SERVER

from orchestrator.simulator import SimulatorConfig, load_fleet
from orchestrator.simulator.jobs import JobStatus, plan_job
from orchestrator.simulator.phases import Phase, Timeline
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
        {"queue_seconds": (3.0, 1.0)},
        {"power_off_seconds": (-1.0, 1.0)},
        {"stopped_seconds": (0.0, float("inf"))},
        {"fail_to_error_rate": 2.0},
        {"error_after_acting_rate": -0.5},
        {"slow_answer_rate": 1.1},
        {"slow_answer_seconds": -1.0},
        {"success_but_error_rate": float("nan")},
        {"success_but_stale_rate": 3},
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


def test_default_timings_are_instant() -> None:
    config = SimulatorConfig()
    assert config.queue_seconds == config.power_off_seconds == config.stopped_seconds == (0, 0)
    assert (config.error_after_acting_rate, config.slow_answer_rate) == (0.0, 0.0)
    assert config.fail_to_error_rate == 1.0


@pytest.mark.parametrize(
    ("stops_server", "at", "phase"),
    [
        (True, 0.0, Phase.QUEUED),
        (True, 9.99, Phase.QUEUED),
        (True, 10.0, Phase.POWERING_OFF),
        (True, 29.99, Phase.POWERING_OFF),
        (True, 30.0, Phase.STOPPED),
        (True, 33.0, Phase.REBUILDING),
        (True, 62.99, Phase.REBUILDING),
        (True, 63.0, Phase.ENDED),
        (False, 9.99, Phase.QUEUED),
        (False, 10.0, Phase.REBUILDING),  # no power-off phases without withStopServer
        (False, 39.99, Phase.REBUILDING),
        (False, 40.0, Phase.ENDED),
    ],
)
def test_timeline_phases(stops_server: bool, at: float, phase: Phase) -> None:
    timeline = Timeline.plan(100.0, 10.0, 20.0, 3.0, 30.0, stops_server=stops_server)
    assert timeline.phase_at(100.0 + at) is phase


def test_timeline_without_any_wait_rebuilds_at_once() -> None:
    timeline = Timeline.plan(100.0, 0.0, 0.0, 0.0, 5.0, stops_server=True)
    assert timeline.phase_at(100.0) is Phase.REBUILDING
    assert timeline.changed_at(Phase.REBUILDING) == 100.0
    assert timeline.changed_at(Phase.QUEUED) is None


def test_job_is_init_at_its_acceptance_even_without_a_queue() -> None:
    job = plan_job(SimulatorConfig(job_seconds=(4.0, 4.0)), PROJECT, SERVER, 1, 100.0)
    assert job.status_at(100.0) is JobStatus.INIT
    assert job.status_at(100.001) is JobStatus.RUNNING
    assert job.status_at(104.0) is JobStatus.SUCCESS


@pytest.mark.parametrize(
    ("prior", "to_error", "end_status"),
    [
        ("SHUTOFF", 0.0, "SHUTOFF"),
        ("ACTIVE", 0.0, "SHUTOFF"),  # powered off by the job, left stopped
        ("ERROR", 0.0, "ERROR"),
        ("SHUTOFF", 1.0, "ERROR"),
        ("ACTIVE", 1.0, "ERROR"),
    ],
)
def test_failed_job_end_state(prior: str, to_error: float, end_status: str) -> None:
    config = SimulatorConfig(job_fail_rate=1.0, fail_to_error_rate=to_error)
    job = plan_job(
        config, PROJECT, SERVER, 1, 0.0, stops_server=prior == "ACTIVE", prior_status=prior
    )
    assert (job.outcome, job.end_status, job.launches) == (JobStatus.FAIL, end_status, False)


def test_plans_are_fixed_by_seed_server_and_attempt() -> None:
    config = SimulatorConfig(seed=9, queue_seconds=(1, 50), power_off_seconds=(1, 50))
    first = plan_job(config, PROJECT, SERVER, 1, 0.0, stops_server=True)
    assert first == plan_job(config, PROJECT, SERVER, 1, 0.0, stops_server=True)
    assert first.timeline != plan_job(config, PROJECT, SERVER, 2, 0.0, stops_server=True).timeline
    other_seed = SimulatorConfig(seed=10, queue_seconds=(1, 50), power_off_seconds=(1, 50))
    reseeded = plan_job(other_seed, PROJECT, SERVER, 1, 0.0, stops_server=True)
    assert first.timeline != reseeded.timeline
