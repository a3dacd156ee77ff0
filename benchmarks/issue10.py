"""The benchmark suite of issue 10 (fleet-scale performance): one flag per target.

    .venv/bin/python benchmarks/issue10.py overhead   [--counts 20000,100000]
    .venv/bin/python benchmarks/issue10.py sdk        [--count 2000] [--threads 32] [--rounds 3]
    .venv/bin/python benchmarks/issue10.py memory     [--counts 100000,1000000] [--stop-after S]
    .venv/bin/python benchmarks/issue10.py pacing     [--rates 10,50,200] [--seconds 30]
    .venv/bin/python benchmarks/issue10.py makespan   [--count 2000]
    .venv/bin/python benchmarks/issue10.py polling    [--count 300] [--median 20]
    .venv/bin/python benchmarks/issue10.py resume     [--count 100000]

Each starts the simulator as its own process, runs the `orchestrator` console
script as a subprocess, and prints the machine, one table and, last, one JSON
line of figures. See benchmarks/README.md for what each measures. Not run in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets

TARGETS = {
    "overhead": targets.overhead,
    "sdk": targets.sdk,
    "memory": targets.memory,
    "pacing": targets.pacing,
    "makespan": targets.makespan,
    "polling": targets.polling,
    "resume": targets.resume,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--counts", help="comma-separated fleet sizes (overhead, memory)")
    parser.add_argument("--count", type=int, help="fleet size (sdk, makespan, polling, ...)")
    parser.add_argument("--threads", default="32", help="sdk: thread pool sizes, e.g. 8,32,128")
    parser.add_argument(
        "--job-seconds",
        default=targets.SHORT_JOBS,
        help="overhead/sdk/memory: the simulator's REBUILD time MIN[:MAX] (0: instant jobs)",
    )
    parser.add_argument(
        "--stop-after",
        type=float,
        help="memory: stop the run by SIGINT after so many seconds (a bounded part)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="sdk: rounds (median ratio)")
    parser.add_argument("--rates", default="10,50,200", help="pacing: --rate settings")
    parser.add_argument("--seconds", type=float, default=30.0, help="pacing: seconds per rate")
    parser.add_argument("--median", type=float, default=20.0, help="polling: median job s")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="memory: status/report on a state file from make_state.py, without the run"
        " (with --keep DIR: DIR/synthetic-N.state.sqlite is made once and used again)",
    )
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    parser.add_argument("--deadline", type=float, default=3600.0, help="kill a run after (s)")
    parser.add_argument(
        "--extra",
        default="",
        help="overhead/sdk/memory: more orchestrator run flags, e.g. '--no-verify'",
    )
    args = parser.parse_args(argv)
    if args.keep:
        args.keep = args.keep.resolve()  # the runs use it as their cwd too
        args.keep.mkdir(parents=True, exist_ok=True)
        return int(TARGETS[args.target](args, args.keep))
    with tempfile.TemporaryDirectory(prefix=f"issue10-{args.target}-") as tmp:
        return int(TARGETS[args.target](args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
