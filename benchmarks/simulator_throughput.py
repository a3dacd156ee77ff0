"""Throughput of one simulator process answering `GET /v1/{project_id}/jobs/{job_id}`.

Starts `python -m orchestrator simulate --port 0` as a subprocess (SimulatorProcess),
seeds a few reinstall jobs, then drives job queries from separate load processes
(aiohttp, keep-alive, many requests in flight) for a bounded time and count.
Prints requests/s as the clients saw them and as the simulator counted them,
then stops the simulator and exits.

    .venv/bin/python benchmarks/simulator_throughput.py [--seconds 10] [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import aiohttp

from orchestrator.simulator import SimulatorProcess

PROJECT = "0123456789abcdef0123456789abcdef"
SEED_JOBS = 16


@dataclass(frozen=True)
class LoadResult:
    ok: int
    failed: int
    seconds: float


async def _seed_jobs(url: str, count: int) -> list[str]:
    body = {"os-reinstall": {"keyname": "KeyPair-bench", "userid": "bench"}}
    job_ids = []
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            server = f"00000000-0000-4000-8000-{n:012x}"
            path = f"{url}/v1/{PROJECT}/cloudservers/{server}/reinstallos"
            async with session.post(path, json=body) as response:
                response.raise_for_status()
                job_ids.append((await response.json())["job_id"])
    return job_ids


async def _drive(
    url: str, job_ids: list[str], seconds: float, max_requests: int, concurrency: int
) -> LoadResult:
    paths = [f"{url}/v1/{PROJECT}/jobs/{job_id}" for job_id in job_ids]
    ok = failed = issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    deadline = started + seconds

    async def worker(offset: int) -> None:
        nonlocal ok, failed, issued
        n = offset
        while issued < max_requests and time.monotonic() < deadline:
            issued += 1
            n += 1
            try:
                async with session.get(paths[n % len(paths)]) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1
            except aiohttp.ClientError:
                failed += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return LoadResult(ok, failed, time.monotonic() - started)


def _load_process(
    url: str, job_ids: list[str], seconds: float, max_requests: int, concurrency: int
) -> LoadResult:
    return asyncio.run(_drive(url, job_ids, seconds, max_requests, concurrency))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration")
    parser.add_argument("--max-requests", type=int, default=500_000, help="cap on requests")
    parser.add_argument("--processes", type=int, default=1, help="load processes")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight each")
    args = parser.parse_args()

    # Long jobs keep every seeded job RUNNING: the answers stay the same size.
    simulator = SimulatorProcess("--job-seconds", "3600").start()
    url = simulator.url
    try:
        job_ids = asyncio.run(_seed_jobs(url, SEED_JOBS))
        before = simulator.stats()["requests"]["job"]
        per_process = max(1, args.max_requests // args.processes)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.processes, mp_context=context) as pool:
            futures = [
                pool.submit(
                    _load_process, url, job_ids, args.seconds, per_process, args.concurrency
                )
                for _ in range(args.processes)
            ]
            results = [f.result(timeout=args.seconds + 60) for f in futures]
        served = simulator.stats()["requests"]["job"] - before
    finally:
        code = simulator.stop()

    ok = sum(r.ok for r in results)
    failed = sum(r.failed for r in results)
    seconds = max(r.seconds for r in results)
    report = {
        "requests_per_second": round(ok / seconds),
        "ok": ok,
        "failed": failed,
        "seconds": round(seconds, 2),
        "served_by_simulator": served,
        "load_processes": args.processes,
        "concurrency_per_process": args.concurrency,
        "simulator_exit_code": code,
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
    }
    print(
        f"{report['requests_per_second']} requests/s ({ok} ok, {failed} failed in {seconds:.1f} s)"
    )
    print(json.dumps(report, indent=2))
    return 0 if failed == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
