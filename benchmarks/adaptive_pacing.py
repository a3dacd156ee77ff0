"""Benchmark: adaptive pacing against a service that allows fewer requests than configured.

Starts `orchestrator simulate --rate-limit L` as its own process (L requests
per second per API: reinstall, job, server; throttled answers are 429
Common.1503), then runs the orchestrator's runner in this process with
`--rate R --poll-rate P` and an `AdaptivePacing` hook on the client, over
--count targets, and reports:

- throttled: the simulator's throttled answers / all requests it received
  (target <= 5 %);
- limit used, per API: accepted requests beyond the simulator's initial burst
  (its bucket starts full, L tokens) / (L x the span from that API's first to
  its last request) (target >= 80 %; the verdict checks the API that binds,
  the most used one: with verification on, each reinstall needs two server
  reads, so the server API binds at half the reinstall limit;
  which has work queued from start to end);
- the rate each limiter settled at, and how often it was cut.

With --fixed the hook is left out (the plain limiters), for comparison.

    .venv/bin/python benchmarks/adaptive_pacing.py
    .venv/bin/python benchmarks/adaptive_pacing.py --fixed

Bounded: the run is stopped after --deadline seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from make_inventory import write_csv  # noqa: E402

from orchestrator.cloud.auth import TokenAuth  # noqa: E402
from orchestrator.cloud.client import EcsClient  # noqa: E402
from orchestrator.cloud.endpoints import Endpoints  # noqa: E402
from orchestrator.cloud.retry_policy import RetrySettings  # noqa: E402
from orchestrator.engine.adaptive import AdaptivePacing, AdaptiveRate  # noqa: E402
from orchestrator.engine.campaign import Invocation, open_state  # noqa: E402
from orchestrator.engine.pacing import RateLimiter  # noqa: E402
from orchestrator.engine.runner import Runner, RunSettings  # noqa: E402
from orchestrator.simulator.process import SimulatorProcess  # noqa: E402

TOKEN = "adaptive-pacing-token"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="servers in the fleet")
    parser.add_argument("--projects", type=int, default=4)
    parser.add_argument("--rate-limit", type=float, default=50.0, help="simulator, per API")
    parser.add_argument("--rate", type=float, default=200.0, help="orchestrator --rate")
    parser.add_argument("--poll-rate", type=float, default=1000.0)
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--job-seconds", default="2:5", help="simulator job duration MIN:MAX")
    parser.add_argument("--fixed", action="store_true", help="no adaptive pacing")
    parser.add_argument("--deadline", type=float, default=600.0, help="stop the run after (s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="adaptive-pacing-") as tmp:
        work = Path(tmp)
        inventory = work / "fleet.csv"
        write_csv(inventory, args.count, args.projects, 1)
        with SimulatorProcess(
            "--fleet", inventory, "--job-seconds", args.job_seconds,
            "--rate-limit", str(args.rate_limit), env={"SIM_TOKEN": TOKEN},
        ) as sim:  # fmt: skip
            started = time.monotonic()
            exit_code, pacing = asyncio.run(_run(args, work, inventory, sim.url))
            wall = time.monotonic() - started
            stats = sim.stats()

    requests = stats["requests"]
    total = sum(requests.values())
    throttled_share = stats["throttled"] / total if total else 0.0
    print(f"machine             {os.cpu_count()} CPUs")
    print(f"targets             {args.count}, exit code {exit_code}, wall {wall:.1f} s")
    print(f"simulator limit     {args.rate_limit:g} requests/s per API")
    print(f"configured          --rate {args.rate:g} --poll-rate {args.poll_rate:g}")
    print(f"pacing              {'fixed' if args.fixed else 'adaptive (AIMD x0.7)'}")
    print(f"requests            {requests} = {total}")
    print(f"throttled           {stats['throttled']} = {throttled_share:.2%} (target <= 5 %)")
    busiest = 0.0  # the most used API's share of its limit (the one that binds)
    if args.fixed:
        print("limit used          n/a: throttles per API are counted by the adaptive hook")
    for kind in [k for k in ("reinstall", "job", "server") if k in pacing]:
        times = stats["request_times"][kind]
        if len(times) < 2:
            continue
        span = max(times) - min(times)
        # Throttled answers per API are counted where they arrive (the simulator
        # counts them all together): at the client, by each API's controller.
        throttled = pacing[kind].throttles
        accepted = requests[kind] - throttled
        # The simulator's bucket starts full (one second's worth): not paced, not counted.
        paced = max(0.0, accepted - args.rate_limit)
        used = paced / (args.rate_limit * span) if span > 0 else 0.0
        print(
            f"limit used {kind:9}{used:7.1%}  ({accepted} accepted in {span:.1f} s, "
            f"{throttled} throttled)"
        )
        busiest = max(busiest, used)
    for kind, controller in pacing.items():
        print(
            f"settled {kind:12}{controller.rate:7.1f}/s of {controller.ceiling:g} "
            f"({controller.cuts} cuts for {controller.throttles} throttled answers)"
        )
    ok = exit_code == 0 and throttled_share <= 0.05 and busiest >= 0.80
    print(f"verdict             {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


async def _run(
    args: argparse.Namespace, work: Path, inventory: Path, url: str
) -> tuple[int, dict[str, AdaptiveRate]]:
    settings = RunSettings(
        rate=args.rate,
        poll_rate=args.poll_rate,
        max_in_flight=args.max_in_flight,
        first_poll=1.0,
        poll_cap=2.0,
        settle_delay=1.0,
        drain_timeout=30.0,
        retry=replace(RetrySettings(), max_delay=300.0),
    )
    inv = Invocation(
        state_path=work / "state.sqlite",
        report_dir=work / "reports",
        settings=settings,
        inventory=inventory,
        endpoint=url,
        credentials=TokenAuth(TOKEN),
        live_progress=False,
    )
    store = open_state(inv)
    adaptive = None
    if not args.fixed:
        adaptive = AdaptivePacing(
            {"reinstall": settings.rate, "job": settings.poll_rate, "server": settings.poll_rate}
        )
    stop = asyncio.Event()
    try:
        connector = aiohttp.TCPConnector(
            limit=max(64, settings.submit_workers() + settings.poll_workers())
        )
        async with aiohttp.ClientSession(connector=connector) as session:
            client = EcsClient(
                session,
                Endpoints(url),
                TokenAuth(TOKEN),
                submit_limiter=RateLimiter(settings.rate),
                poll_limiter=RateLimiter(settings.poll_rate),
                adaptive=adaptive,
            )
            runner = Runner(store, client, settings)
            task = asyncio.create_task(runner.run(stop))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), args.deadline)
            stop.set()
            outcome = await task
    finally:
        store.close()
    controllers = {kind: c for (kind, _), c in adaptive.controllers().items()} if adaptive else {}
    return outcome.exit_code, controllers


if __name__ == "__main__":
    sys.exit(main())
