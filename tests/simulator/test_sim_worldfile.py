"""A simulated world kept in a file: a second simulator, started on it, answers for the
jobs the first one accepted (over HTTP, on a fake clock), and a file it cannot trust
is refused, naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_helpers import PROJECT, SERVER, ApiFactory, FakeClock, reinstall_body, server_id

from orchestrator.simulator.worldfile import WorldFileError, read_world, start_world


async def test_a_second_simulator_answers_for_the_first_ones_jobs(
    make_api: ApiFactory, clock: FakeClock, tmp_path: Path
) -> None:
    world = tmp_path / "world.jsonl"
    start_world(world, "campaign-1", seed=4)
    fields = {"world_file": str(world), "seed": 4, "job_seconds": (10.0, 10.0)}
    first = await make_api(**fields, power_off_seconds=(1.0, 1.0))
    running = (await first.reinstall()).body["job_id"]
    clock.advance(20)
    ended = (await first.reinstall(server=server_id(2))).body["job_id"]
    launched = (await first.server(server_id(2))).body["server"]["OS-SRV-USG:launched_at"]
    clock.advance(11)  # the second job has ended, unseen: settled in the next world
    assert len(read_world(world).jobs) == 2

    second = await make_api(**fields)
    job = (await second.job(running)).body
    assert job["status"] == "SUCCESS"
    job = (await second.job(ended)).body
    assert job["status"] == "SUCCESS"
    server = (await second.server(server_id(2))).body["server"]
    assert server["status"] == "ACTIVE"
    assert server["OS-SRV-USG:launched_at"] != launched  # rebuilt, in the first world
    # A server with a job under way is still busy in the new world.
    third_job = (await second.reinstall(server=server_id(3))).body["job_id"]
    third = await make_api(**fields)
    assert (await third.job(third_job)).body["status"] in ("INIT", "RUNNING")
    again = await third.reinstall(server=server_id(3))
    assert again.code in ("Ecs.0100", "Ecs.0603")
    # The counts carry over: each server reinstalled once, in whichever world.
    once = {SERVER: 1, server_id(2): 1, server_id(3): 1}
    assert (await third.stats())["reinstalls_by_server"] == once
    # Job IDs go on where the first world left off: a new reinstall is a new job.
    clock.advance(60)
    fresh = (await third.reinstall(body=reinstall_body(mode="withStopServer"))).body["job_id"]
    assert fresh not in (running, ended, third_job)
    assert [j.server_id for j in read_world(world).jobs] == [
        SERVER, server_id(2), server_id(3), SERVER
    ]  # fmt: skip


def test_a_write_cut_short_by_a_kill_is_a_job_never_heard_of(tmp_path: Path) -> None:
    world = tmp_path / "world.jsonl"
    start_world(world, "c", seed=0)
    with world.open("a") as fh:
        fh.write('{"job_id": "abc", "serv')  # no newline: the write never finished
    assert read_world(world).jobs == ()


HEADER = '{"simulated_world": 1, "campaign": "c", "seed": 0}\n'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ('{"simulated_world": 2, "campaign": "c", "seed": 0}\n', "line 1: not a simulated world"),
        ('{"simulated_world": 1, "seed": 0}\n', "line 1: the header needs a campaign"),
        (f"{HEADER}[]\n", "line 2: not a JSON object"),
        (f'{HEADER}{{"job_id": 1}}\n', "line 2: not a job"),
        ("\x00\n", "line 1: not JSON"),
    ],
)
def test_a_file_that_cannot_be_trusted_is_refused_by_line(
    tmp_path: Path, text: str, says: str
) -> None:
    world = tmp_path / "world.jsonl"
    world.write_text(text, encoding="utf-8")
    with pytest.raises(WorldFileError, match=f"^{world}.*{says}"):
        read_world(world)


async def test_a_world_of_another_seed_or_server_is_refused(
    make_api: ApiFactory, clock: FakeClock, tmp_path: Path
) -> None:
    world = tmp_path / "world.jsonl"
    start_world(world, "c", seed=1)
    first = await make_api(world_file=str(world), seed=1)
    await first.reinstall()
    with pytest.raises(WorldFileError, match="a world of seed 1, not 2"):
        await make_api(world_file=str(world), seed=2)
    with pytest.raises(WorldFileError, match=f"server {SERVER} is not in the fleet"):
        await make_api(world_file=str(world), seed=1, fleet=[(PROJECT, server_id(9))])
    line = json.loads(world.read_text().splitlines()[1])
    assert line["project_id"] == PROJECT and line["timeline"]["begin"] == clock()
