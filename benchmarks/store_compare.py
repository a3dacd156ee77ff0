"""Benchmark: the same fleet run on the SQLite store and on the PostgreSQL store.

For each store, generates nothing new (one inventory for both), starts a fresh
`orchestrator simulate` with that fleet, runs `orchestrator run` as a subprocess
and prints wall time, targets per second, the orchestrator's CPU time per target
and, for PostgreSQL, the database server's CPU time per target (its backends,
reaped ones included, read from /proc: the server must run on this machine and
ORCH_PG_DIR must name the directory .ci/pg-start made).

    eval "$(.ci/pg-start)"
    .venv/bin/python benchmarks/store_compare.py --count 3000 --rate 300

The PostgreSQL cluster of .ci/pg-start runs with its defaults (fsync and
synchronous_commit on), as the SQLite store runs with synchronous=FULL: both
make every intent durable before the request leaves.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from fleet_scale import _cpu_model  # noqa: E402
from harness import wait_rusage  # noqa: E402
from make_inventory import write_csv  # noqa: E402

from orchestrator.simulator.process import SimulatorProcess  # noqa: E402

TOKEN = "store-compare-token"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    store: str
    status: int
    wall: float
    cpu: float  # the orchestrator's user + system seconds
    server_cpu: float | None  # PostgreSQL's, when measurable
    exactly_once: bool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="servers in the fleet")
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--rate", type=float, default=300.0, help="orchestrator --rate")
    parser.add_argument("--poll-rate", type=float, default=1500.0)
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--job-seconds", default="1:2", help="simulator job duration MIN:MAX")
    parser.add_argument("--repeat", type=int, default=1, help="runs per store, alternating")
    parser.add_argument("--deadline", type=float, default=900.0)
    args = parser.parse_args()
    dsn = os.environ.get("ORCH_TEST_PG")
    if not dsn:
        print('ORCH_TEST_PG is not set: eval "$(.ci/pg-start)" first', file=sys.stderr)
        return 2

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="store-compare-") as tmp:
        work = Path(tmp)
        inventory = work / "fleet.csv"
        write_csv(inventory, args.count, args.projects, 1)
        for n in range(args.repeat):
            for store in ("sqlite", "postgresql"):
                run_dir = work / f"{store}-{n}"
                run_dir.mkdir()
                if store == "sqlite":
                    state = ["--state", str(run_dir / "fleet.state.sqlite")]
                else:
                    state = ["--state", dsn, "--campaign", f"bench_{secrets.token_hex(4)}"]
                results.append(run_once(store, inventory, run_dir, state, args))

    print(f"machine       {os.cpu_count()} CPUs, {_cpu_model()}")
    print(f"targets       {args.count}, --rate {args.rate:g}, --max-in-flight "
          f"{args.max_in_flight}, jobs {args.job_seconds} s")  # fmt: skip
    print(f"{'store':<11} {'exit':>4} {'wall s':>7} {'targets/s':>9} "
          f"{'CPU ms/target':>13} {'DB CPU ms/target':>16} {'once':>5}")  # fmt: skip
    for r in results:
        server = f"{1000 * r.server_cpu / args.count:.2f}" if r.server_cpu is not None else "-"
        once = "yes" if r.exactly_once else "NO"
        print(
            f"{r.store:<11} {r.status:>4} {r.wall:>7.1f} {args.count / r.wall:>9.1f}"
            f" {1000 * r.cpu / args.count:>13.2f} {server:>16} {once:>5}"
        )
    ok = all(r.status == 0 and r.exactly_once for r in results)
    return 0 if ok else 1


def run_once(
    store: str, inventory: Path, work: Path, state: list[str], args: argparse.Namespace
) -> Result:
    flags = [
        "--rate", str(args.rate), "--poll-rate", str(args.poll_rate),
        "--max-in-flight", str(args.max_in_flight), "--first-poll", "0.5", "--poll-cap", "2",
        "--no-live", "--report-dir", str(work / "reports"),
    ]  # fmt: skip
    env = {**os.environ, "OS_AUTH_TOKEN": TOKEN}
    with SimulatorProcess(
        "--fleet", inventory, "--job-seconds", args.job_seconds, env={"SIM_TOKEN": TOKEN}
    ) as sim:
        server_before = server_cpu()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(inventory),
             "--endpoint", sim.url, *state, *flags],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        status, usage = wait_rusage(proc, args.deadline)
        wall = time.monotonic() - started
        server_after = server_cpu()
        stats = sim.stats()
    reinstalls = stats["reinstalls_by_server"]
    once = len(reinstalls) == args.count and set(reinstalls.values()) == {1}
    server = None
    if store == "postgresql" and server_before is not None and server_after is not None:
        server = server_after - server_before
    return Result(store, status, wall, usage.ru_utime + usage.ru_stime, server, once)


def server_cpu() -> float | None:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live children,
    and (in the postmaster's cutime/cstime) the children it already reaped."""
    directory = os.environ.get("ORCH_PG_DIR")
    if not directory:
        return None
    try:
        postmaster = int((Path(directory) / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


if __name__ == "__main__":
    sys.exit(main())
