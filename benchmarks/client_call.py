"""CPU per ECS call of the orchestrator's client alone: `EcsClient.server` against the
simulator in its own process, AK/SK signed, 200 at a time. No state, no runner: what
one request costs the client, to compare with the whole run's CPU per target. Then
the same signed GET straight through the aiohttp session the client sends on
(what the client adds: pacing hooks, error translation, answer checks), alternated
with the client so that both see the same machine.

    .venv/bin/python benchmarks/client_call.py [--calls 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AK, SK, aksk_env, emit, print_machine
from make_inventory import write_csv

from orchestrator.cloud.auth import AkSkAuth
from orchestrator.cloud.client import JSON_HEADERS, EcsClient
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.network import CaBundle, Network
from orchestrator.simulator.process import SimulatorProcess

CONCURRENT = 200


async def measure(url: str, rows: list[dict[str, str]], calls: int, via: str) -> dict[str, float]:
    """`via` "client": EcsClient.server; "aiohttp": the same signed GET through the
    same kind of session, read whole."""
    session = Network.of(CaBundle(None, "system"), proxies=False).session(2000)
    auth = AkSkAuth(AK, SK)
    client = EcsClient(session, Endpoints(endpoint=url), auth)
    host = url.split("://", 1)[1]
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for i in range(calls):
        queue.put_nowait(rows[i % len(rows)])

    async def call(row: dict[str, str]) -> None:
        if via == "client":
            await client.server(row["project_id"], row["server_id"])
            return
        path = f"/v1/{row['project_id']}/cloudservers/{row['server_id']}"
        headers = auth.headers("GET", host, path, row["project_id"], b"", JSON_HEADERS)
        async with session.get(url + path, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status

    async def worker() -> None:
        while not queue.empty():
            await call(queue.get_nowait())

    await call(rows[0])  # connect, warm up
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    after, ended = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await client.aclose()
    await session.close()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"calls": calls, "calls_per_s": round(calls / (ended - started)),
            "cpu_ms_per_call": round(1000 * cpu / calls, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2, help="client/aiohttp pairs")
    args = parser.parse_args()
    machine = print_machine()
    results: dict[str, list[dict[str, float]]] = {"client": [], "aiohttp": []}
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "fleet.csv"
        write_csv(inventory, 2000, 20, 1)
        with inventory.open(newline="") as f:
            rows = list(csv.DictReader(f))
        with SimulatorProcess("--fleet", inventory, "--job-seconds", "0", env=aksk_env()[1]) as sim:
            for _ in range(args.rounds):
                for via in results:
                    results[via].append(asyncio.run(measure(sim.url, rows, args.calls, via)))
    for via, runs in results.items():
        label = "EcsClient.server" if via == "client" else "aiohttp session alone"
        figures = ", ".join(f"{r['cpu_ms_per_call']} ms ({r['calls_per_s']}/s)" for r in runs)
        print(f"{label:24} {args.calls} calls per round: {figures} CPU per call")
    emit("client_call", {"calls": args.calls, **results}, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
