"""CPU per ECS call of the orchestrator's client alone: `EcsClient.server` against the
simulator in its own process, AK/SK signed, 200 at a time. No state, no runner: what
one request costs the client, to compare with the whole run's CPU per target.

    .venv/bin/python benchmarks/client_call.py [--calls 20000] [--uvloop]
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

from orchestrator.auth import AkSkAuth
from orchestrator.client import EcsClient
from orchestrator.endpoints import Endpoints
from orchestrator.network import CaBundle, new_session
from orchestrator.simulator.process import SimulatorProcess

CONCURRENT = 200


async def measure(url: str, rows: list[dict[str, str]], calls: int) -> dict[str, float]:
    session = new_session(2000, CaBundle(None, "system"))
    client = EcsClient(session, Endpoints(endpoint=url), AkSkAuth(AK, SK))
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for i in range(calls):
        queue.put_nowait(rows[i % len(rows)])

    async def worker() -> None:
        while not queue.empty():
            row = queue.get_nowait()
            await client.server(row["project_id"], row["server_id"])

    await client.server(rows[0]["project_id"], rows[0]["server_id"])  # connect, warm up
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    after, ended = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await session.close()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"calls": calls, "calls_per_s": round(calls / (ended - started)),
            "cpu_ms_per_call": round(1000 * cpu / calls, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    machine = print_machine()
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "fleet.csv"
        write_csv(inventory, 2000, 20, 1)
        with inventory.open(newline="") as f:
            rows = list(csv.DictReader(f))
        with SimulatorProcess(
            "--http", "lean", "--fleet", inventory, "--job-seconds", "0", env=aksk_env()[1]
        ) as sim:
            if args.uvloop:
                import uvloop

                figures = uvloop.run(measure(sim.url, rows, args.calls))
            else:
                figures = asyncio.run(measure(sim.url, rows, args.calls))
    print(f"{figures['calls']} calls: {figures['calls_per_s']}/s, "
          f"{figures['cpu_ms_per_call']} ms CPU per call")  # fmt: skip
    emit("client_call", figures, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
