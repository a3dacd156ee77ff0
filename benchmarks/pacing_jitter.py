"""Where a 1-second window of reinstalls goes over `--rate` + burst: at the sender or on the way.

Runs `orchestrator run --rate R` (R × seconds instant targets, AK/SK) against the
simulator in its own process, with the orchestrator's send times recorded from
inside it: when each reinstall got its send slot (`EcsClient._space`) and when its
headers were written to the socket (aiohttp's `on_request_headers_sent`), wall clock. The
simulator stamps arrivals with the same clock. Prints the busiest closed 1 s window
of each series and the delay from write to arrival. `issue10.py pacing` measures
only the arrivals; this shows which side a window over the limit comes from.

    .venv/bin/python benchmarks/pacing_jitter.py [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    INSTANT,
    SEND_RECORDER,
    aksk_env,
    busiest,
    emit,
    print_machine,
    run_cli,
    run_flags,
    table,
)
from make_inventory import write_csv
from targets import BURST, PACED

from orchestrator.simulator.process import SimulatorProcess


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    m = print_machine()
    orch_env, sim_env = aksk_env()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inventory = work / "fleet.csv"
        write_csv(inventory, max(20, int(args.rate * args.seconds)), 20, 1)
        record = work / "sends.json"
        with SimulatorProcess("--fleet", inventory, *INSTANT, env=sim_env) as sim:
            run = run_cli(
                ["run", inventory, "--endpoint", sim.url, "--state", work / "state.sqlite",
                 *run_flags(work / "reports", "--rate", f"{args.rate:g}", *PACED)],
                env=orch_env, cwd=work, deadline=args.seconds * 10 + 60,
                command=[sys.executable, "-c", SEND_RECORDER, str(record)],
            )  # fmt: skip
            arrivals = sorted(sim.stats()["request_times"]["reinstall"])
        sends = json.loads(record.read_text())
    slots, writes = sends["slots"], sorted(sends["writes"])
    delays = [1000 * (a - w) for a, w in zip(arrivals, writes, strict=False)]
    figures = {
        "rate": args.rate,
        "exit": run.exit_code,
        "allowed_1s": int(args.rate) + BURST,
        "busiest_1s": {
            "send_slot": busiest(slots),
            "socket_write": busiest(writes),
            "arrival": busiest(arrivals),
        },
        "write_to_arrival_ms": {
            "p50": round(percentile(delays, 0.5), 2),
            "p99": round(percentile(delays, 0.99), 2),
            "max": round(max(delays, default=0.0), 2),
        },
    }
    table(
        ["series", "stamps", "busiest 1 s", "rate+burst"],
        [
            [name, len(times), busiest(times), figures["allowed_1s"]]
            for name, times in (("send slot", slots), ("socket write", writes),
                                ("arrival at the simulator", arrivals))
        ],
    )  # fmt: skip
    d = figures["write_to_arrival_ms"]
    print(f"write -> arrival: p50 {d['p50']} ms, p99 {d['p99']} ms, max {d['max']} ms")
    emit("pacing_jitter", figures, m)
    return 0 if run.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
