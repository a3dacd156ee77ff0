"""What a campaign costs the cloud's API gateway, and how close it comes to the bound.

Against the simulator in its own process, behind a gateway that allows L calls per
second per API (`simulate --api-limit L`, 429 APIGW.0308 without Retry-After), with
jobs of 30-90 s (queued 0-5 s, then rebuilding 30-85 s):

    fleet     N servers in 2 projects, all in the inventory: the makespan against
              the physical bound N / L + the longest job, the share of throttled
              answers, and the calls per target (every API, preflight and
              verification included)
    sparse    1 % of a project of 50,000 servers: the calls per target
    waiter    side by side under the same gateway: a client that sends every
              reinstall at once (retrying what is throttled) and then asks each job
              every 10 s until it ends, as the Terraform provider polls, without its
              parallelism cap

    python benchmarks/api_budget.py [--limits 20,50] [--servers 2000] [--skip-waiter]

Each run takes minutes: the jobs are real-time seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from harness import REPO, TOKEN, emit, print_machine, run_cli, run_flags, table, token_env

from orchestrator.simulator.process import SimulatorProcess, read_stats

JOBS = {"queue": "0:5", "rebuild": "30:85"}  # --quick: shorter, for a smoke run
WAITER_POLL = 10.0
THROTTLED = 429


def make_inventory(path: Path, count: int, projects: int, seed: int) -> Path:
    script = REPO / "benchmarks" / "make_inventory.py"
    args = ["--count", str(count), "--projects", str(projects), "--seed", str(seed)]
    subprocess.run([sys.executable, str(script), *args, str(path)], check=True, timeout=60)
    return path


def simulator(inventory: Path, limit: int, extra: int, env: dict[str, str]) -> SimulatorProcess:
    return SimulatorProcess(
        "--fleet", inventory, "--api-limit", str(limit), "--extra-servers", str(extra),
        "--queue-seconds", JOBS["queue"], "--job-seconds", JOBS["rebuild"],
        "--power-off-seconds", "0",
        "--stopped-seconds", "0", "--seed", "1", env=env,
    )  # fmt: skip


def orchestrate(inventory: Path, limit: int, count: int, extra: int, work: Path) -> dict[str, Any]:
    """One campaign by the orchestrator's CLI: makespan, calls, throttling."""
    orch_env, sim_env = token_env()
    work.mkdir(parents=True, exist_ok=True)
    with simulator(inventory, limit, extra, sim_env) as sim:
        started = time.time()
        run = run_cli(
            [
                "run", inventory, "--endpoint", sim.url, "--state", work / f"{limit}.sqlite",
                "--rate", str(limit), "--poll-rate", str(limit), "--max-in-flight", str(count),
                "--first-poll", "2", "--poll-cap", "10",
                *run_flags(work / f"reports-{limit}"),
            ],
            env=orch_env, cwd=work, log=work / f"orchestrator-{limit}.log", deadline=3600,
        )  # fmt: skip
        stats = read_stats(sim.url)
    return figures(stats, count, limit, started, run.wall, run.exit_code)


def figures(
    stats: dict[str, Any], count: int, limit: int, started: float, wall: float, code: int
) -> dict[str, Any]:
    requests = stats["requests"]
    calls = sum(requests.values())
    throttled = sum(stats.get("gateway_throttled_by_kind", {}).values())
    bound = count / limit + _longest()
    return {
        "exit_code": code,
        "makespan_s": round(wall, 1),
        "bound_s": round(bound, 1),
        "over_bound_pct": round(100 * (wall / bound - 1), 1),
        "calls": calls,
        "calls_per_target": round(calls / count, 3),
        "throttled": throttled,
        "throttled_pct": round(100 * throttled / max(1, calls + throttled), 2),
        "by_api": dict(requests),
        "reinstalled_twice": sum(1 for n in stats["reinstalls_by_server"].values() if n > 1),
    }


async def waiter(url: str, fleet: list[tuple[str, str]]) -> tuple[float, int, int]:
    """Every reinstall at once, then each job every 10 s: (makespan, calls, throttled)."""
    calls = throttled = 0
    headers = {"X-Auth-Token": TOKEN, "Content-Type": "application/json"}
    body = b'{"os-reinstall": {"keyname": "fleet-key", "userid": "user-1"}}'
    connector = aiohttp.TCPConnector(limit=256)

    async def call(session: aiohttp.ClientSession, method: str, path: str) -> dict[str, Any]:
        nonlocal calls, throttled
        while True:
            async with session.request(method, url + path, data=body if method == "POST" else None,
                                       headers=headers) as answer:  # fmt: skip
                calls += 1
                payload: dict[str, Any] = await answer.json(content_type=None)
                if answer.status != THROTTLED:
                    return payload
                throttled += 1
            await asyncio.sleep(1.0 + random.random())  # a client's retry of a 429

    async def one(session: aiohttp.ClientSession, project: str, server: str) -> None:
        job = await call(session, "POST", f"/v1/{project}/cloudservers/{server}/reinstallos")
        while True:
            await asyncio.sleep(WAITER_POLL)
            state = await call(session, "GET", f"/v1/{project}/jobs/{job['job_id']}")
            if state.get("status") in ("SUCCESS", "FAIL"):
                return

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, p, s) for p, s in fleet))
    return time.monotonic() - started, calls, throttled


def wait_side_by_side(inventory: Path, limit: int, count: int) -> dict[str, Any]:
    from orchestrator.simulator import load_fleet

    _, sim_env = token_env()
    with simulator(inventory, limit, 0, sim_env) as sim:
        wall, calls, throttled = asyncio.run(waiter(sim.url, load_fleet(inventory)))
        stats = read_stats(sim.url)
    found = figures(stats, count, limit, 0.0, wall, 0)
    found["calls_incl_throttled"] = calls
    found["throttled"] = throttled
    found["throttled_pct"] = round(100 * throttled / max(1, calls), 2)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", default="20,50")
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--skip-waiter", action="store_true")
    parser.add_argument("--skip-sparse", action="store_true")
    parser.add_argument("--quick", action="store_true", help="jobs of 1-3 s: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        JOBS.update(queue="0:1", rebuild="1:2")
    machine = print_machine()
    limits = [int(x) for x in args.limits.split(",")]
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="api-budget-") as tmp:
        work = Path(tmp)
        fleet = make_inventory(work / "fleet.csv", args.servers, 2, seed=11)
        for limit in limits:
            ours = orchestrate(fleet, limit, args.servers, 0, work / f"ours-{limit}")
            results[f"fleet_L{limit}"] = ours
            rows.append([f"orchestrator, L={limit}", *_row(ours)])
            print(rows[-1], flush=True)
            if not args.skip_waiter:
                theirs = wait_side_by_side(fleet, limit, args.servers)
                results[f"waiter_L{limit}"] = theirs
                rows.append([f"waiter, L={limit}", *_row(theirs)])
                print(rows[-1], flush=True)
        if not args.skip_sparse:
            sparse = make_inventory(work / "sparse.csv", 500, 1, seed=12)
            found = orchestrate(sparse, limits[0], 500, 49_500, work / "sparse")
            results[f"sparse_L{limits[0]}"] = found
            rows.append([f"1 % of 50,000, L={limits[0]}", *_row(found)])
    table(["run", "exit", "makespan s", "bound s", "over %", "calls/target", "throttled %"], rows)
    emit("api_budget", results, machine)
    return 0


def _longest() -> float:
    return sum(float(JOBS[k].split(":")[-1]) for k in ("queue", "rebuild"))


def _row(found: dict[str, Any]) -> list[Any]:
    return [
        found["exit_code"], found["makespan_s"], found["bound_s"], found["over_bound_pct"],
        found["calls_per_target"], found["throttled_pct"],
    ]  # fmt: skip


if __name__ == "__main__":
    for path in (REPO / "benchmarks", REPO):
        sys.path.insert(0, str(path))
    raise SystemExit(main())
