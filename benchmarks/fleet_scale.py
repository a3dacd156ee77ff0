"""Benchmark: one fleet run end to end, at scale, against the simulator as its own process.

Generates an inventory of --count servers, starts `orchestrator simulate` with that
fleet, runs `orchestrator run` as a subprocess at the given pacing, and prints wall
time, targets per second, the orchestrator's own peak memory (VmHWM, as
harness.wait_rusage reads it: not ru_maxrss, which carries this script's peak into
the child) and CPU time, the requests the simulator received (and per target), and
whether every server was reinstalled exactly once.

    .venv/bin/python benchmarks/fleet_scale.py --count 100000 --rate 500 --poll-rate 2000

Bounded: the run is killed after --deadline seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from harness import wait_rusage  # noqa: E402
from make_inventory import write_csv  # noqa: E402

from orchestrator.simulator.process import SimulatorProcess  # noqa: E402

TOKEN = "fleet-scale-token"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="servers in the fleet")
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="orchestrator --rate")
    parser.add_argument("--poll-rate", type=float, default=1000.0)
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--job-seconds", default="2:5", help="simulator job duration MIN:MAX")
    parser.add_argument("--no-preflight", action="store_true")
    parser.add_argument("--deadline", type=float, default=1800.0, help="kill the run after (s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as tmp:
        work = Path(tmp)
        inventory = work / "fleet.csv"
        write_csv(inventory, args.count, args.projects, 1)
        flags = [
            "--rate", str(args.rate), "--poll-rate", str(args.poll_rate),
            "--max-in-flight", str(args.max_in_flight), "--first-poll", "1", "--poll-cap", "5",
            "--no-live", "--report-dir", str(work / "reports"),
        ]  # fmt: skip
        if args.no_preflight:
            flags.append("--no-preflight")
        env = {**os.environ, "OS_AUTH_TOKEN": TOKEN}
        with SimulatorProcess(
            "--fleet", inventory, "--job-seconds", args.job_seconds, env={"SIM_TOKEN": TOKEN}
        ) as sim:
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "run", str(inventory),
                 "--endpoint", sim.url, *flags],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            status, usage = wait_rusage(proc, args.deadline)
            wall = time.monotonic() - started
            stats = sim.stats()

    reinstalls = stats["reinstalls_by_server"]
    exactly_once = len(reinstalls) == args.count and set(reinstalls.values()) == {1}
    print(f"machine                    {os.cpu_count()} CPUs, {_cpu_model()}")
    print(f"targets                    {args.count}")
    print(f"rate / poll-rate / inflight {args.rate:g} / {args.poll_rate:g} / {args.max_in_flight}")
    print(f"job seconds                {args.job_seconds}")
    print(f"exit code                  {status}")
    print(f"wall time                  {wall:.1f} s")
    print(f"targets per second         {args.count / wall:.1f}")
    print(f"orchestrator peak RSS      {usage.ru_maxrss / 1024:.0f} MB")
    print(f"orchestrator CPU           {usage.ru_utime + usage.ru_stime:.1f} s")
    calls = sum(stats["requests"].values())
    print(f"requests at the simulator  {stats['requests']}")
    print(f"calls per target           {calls / args.count:.3f}")
    print(f"throttled                  {stats['throttled']}")
    print(f"exactly once               {'yes' if exactly_once else 'NO'}")
    return 0 if status == 0 and exactly_once else 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
