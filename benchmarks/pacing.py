"""Benchmark: orchestrator.pacing.RateLimiter against asyncio-throttle.

For each rate R and each number N of queued tasks, N tasks take tokens in a
loop (so about N callers are always waiting, as when N targets are queued
behind --rate) on a fresh event loop: a 2-second warm-up (queueing N tasks is an
O(N) cost paid once), then --seconds of measurement. Measured per limiter:

- achieved rate: grants / elapsed seconds over the measurement, as % of R;
- max/1s: the most grants in any closed 1-second window [t, t + 1], warm-up
  included (so a burst at the start counts), against the target R + burst;
- max/100ms: the same over 100 ms windows, against burst + R/10: shows a
  limiter that meets the 1-second figure by releasing a second's quota at once;
- CPU per grant: process CPU time (time.process_time) / grants over the
  measurement, which must not grow with N; CPU %: CPU time / elapsed;
- loop lag: the worst lateness of a 100 ms heartbeat sleep during the
  measurement, i.e. how busy the limiter keeps the event loop.

Limiters: `ours` = RateLimiter(R, burst); `throttler` = asyncio_throttle
Throttler(rate_limit=R, period=1.0) (its default shape); `throttler-even` =
Throttler(rate_limit=1, period=1/R) (paced evenly).

Bounded and self-stopping: runs x --seconds, printed up front.

    .venv/bin/python benchmarks/pacing.py --quick
    .venv/bin/python benchmarks/pacing.py --seconds 60 --rates 100 --tasks 10000 \
        --limiters ours,throttler-even
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from asyncio_throttle import Throttler

from orchestrator.engine.pacing import RateLimiter


class _Acquirer(Protocol):
    async def acquire(self) -> None: ...


LIMITERS: dict[str, Callable[[float, int], _Acquirer]] = {
    "ours": lambda rate, burst: RateLimiter(rate, burst),
    "throttler": lambda rate, burst: Throttler(rate_limit=int(rate), period=1.0),
    "throttler-even": lambda rate, burst: Throttler(rate_limit=1, period=1.0 / rate),
}

HEARTBEAT = 0.1  # seconds between loop-lag probes
WARMUP = 2.0  # seconds run before measuring rate and CPU


@dataclass(frozen=True)
class Result:
    limiter: str
    rate: float
    tasks: int
    burst: int
    seconds: float  # elapsed, by the loop's clock
    grants: int
    achieved_pct: float  # grants / seconds, as % of rate
    max_1s: int  # most grants in any closed 1-second window
    max_100ms: int  # most grants in any closed 100 ms window
    cpu_s: float  # process CPU seconds over the run
    cpu_us_per_grant: float
    max_loop_lag_ms: float

    @property
    def rate_ok(self) -> bool:
        return abs(self.achieved_pct - 100.0) <= 2.0

    @property
    def window_ok(self) -> bool:
        return self.max_1s <= self.rate + self.burst

    @property
    def burst_ok(self) -> bool:
        return self.max_100ms <= self.burst + self.rate / 10


def max_in_window(stamps: list[float], width: float) -> int:
    """The most stamps in any closed window [t, t + width] (stamps sorted)."""
    return max(
        (bisect.bisect_right(stamps, t + width) - i for i, t in enumerate(stamps)),
        default=0,
    )


async def _measure(name: str, rate: float, n: int, burst: int, seconds: float) -> Result:
    loop = asyncio.get_running_loop()
    limiter = LIMITERS[name](rate, burst)
    stamps: list[float] = []
    lag = [0.0]

    async def worker() -> None:
        while True:
            await limiter.acquire()
            stamps.append(loop.time())

    async def heartbeat() -> None:
        while True:
            due = loop.time() + HEARTBEAT
            await asyncio.sleep(HEARTBEAT)
            lag[0] = max(lag[0], loop.time() - due)

    tasks = [asyncio.create_task(worker()) for _ in range(n)]
    tasks.append(asyncio.create_task(heartbeat()))
    # Queueing N tasks costs O(N) once; the steady state is measured after it.
    await asyncio.sleep(WARMUP)
    cpu0, t0, before, lag[0] = time.process_time(), loop.time(), len(stamps), 0.0
    await asyncio.sleep(seconds)
    cpu, elapsed = time.process_time() - cpu0, loop.time() - t0
    end = len(stamps)  # taken before cancelling: cancellation is not measured
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    grants = end - before
    return Result(
        limiter=name,
        rate=rate,
        tasks=n,
        burst=burst,
        seconds=round(elapsed, 3),
        grants=grants,
        achieved_pct=100.0 * grants / elapsed / rate,
        # The windows include the warm-up: a burst at the start counts.
        max_1s=max_in_window(stamps[:end], 1.0),
        max_100ms=max_in_window(stamps[:end], 0.1),
        cpu_s=cpu,
        cpu_us_per_grant=1e6 * cpu / grants if grants else float("inf"),
        max_loop_lag_ms=1e3 * lag[0],
    )


def measure(name: str, rate: float, n: int, burst: int, seconds: float) -> Result:
    gc.collect()  # leftovers of the previous run are not this run's CPU
    return asyncio.run(_measure(name, rate, n, burst, seconds))


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def table(results: list[Result]) -> str:
    head = (
        "| limiter | R | N | grants | achieved | max/1s (≤ R+burst) | max/100ms (≤ burst+R/10) "
        "| CPU µs/grant | CPU % | loop lag ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {r.limiter} | {r.rate:g} | {r.tasks} | {r.grants} | "
        f"{r.achieved_pct:.2f}% {'ok' if r.rate_ok else 'FAIL'} | "
        f"{r.max_1s} (≤ {r.rate + r.burst:g}) {'ok' if r.window_ok else 'FAIL'} | "
        f"{r.max_100ms} (≤ {r.burst + r.rate / 10:g}) {'ok' if r.burst_ok else 'FAIL'} | "
        f"{r.cpu_us_per_grant:,.0f} | {100 * r.cpu_s / r.seconds:.1f} | "
        f"{r.max_loop_lag_ms:.1f} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def _csv(kind: Callable[[str], float]) -> Callable[[str], list[float]]:
    return lambda text: [kind(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="per run (default 60; 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="10 s per run")
    parser.add_argument("--rates", type=_csv(float), default=[10, 50, 100])
    parser.add_argument("--tasks", type=_csv(int), default=[100, 10_000])
    parser.add_argument("--burst", type=int, default=1, help="burst of our limiter and target")
    parser.add_argument(
        "--limiters",
        type=lambda s: s.split(","),
        default=list(LIMITERS),
        help=f"comma-separated, from {','.join(LIMITERS)}",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    unknown = set(args.limiters) - set(LIMITERS)
    if unknown:
        parser.error(f"unknown limiter(s): {', '.join(sorted(unknown))}")

    runs = [(name, r, n) for r in args.rates for n in args.tasks for name in args.limiters]
    print(f"# {machine()}", flush=True)
    total = len(runs) * (WARMUP + seconds)
    print(f"# {len(runs)} runs x ({WARMUP:g} s warm-up + {seconds:g} s)", end="", flush=True)
    print(f" = about {total / 60:.1f} min", flush=True)
    results = []
    for name, rate, n in runs:
        result = measure(name, rate, int(n), args.burst, seconds)
        results.append(result)
        print(f"# done: {table([result]).splitlines()[-1]}", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
