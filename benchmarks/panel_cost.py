"""Benchmark: the CPU cost of the live panel, per target, with and without it.

Runs the same fleet twice per round through `campaign.execute` (as `orchestrator run`
does), against `orchestrator simulate` in its own process so that the CPU measured
is the orchestrator's alone: once with plain progress lines (no terminal), once
with the live panel drawing to a terminal console (force_terminal, written to
/dev/null). Prints CPU seconds per target for both, their difference, and the
panel's own cost per redraw, measured directly over --redraws redraws.

    .venv/bin/python benchmarks/panel_cost.py --count 2000 --rounds 2

Bounded: every run has a deadline, and the whole benchmark stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from make_inventory import write_csv  # noqa: E402

from orchestrator.cloud.auth import TokenAuth  # noqa: E402
from orchestrator.console.livestats import FailureNote, LiveStats  # noqa: E402
from orchestrator.console.panel import LivePanel  # noqa: E402
from orchestrator.console.progress import ProgressMeter  # noqa: E402
from orchestrator.engine.campaign import Invocation, execute, open_state  # noqa: E402
from orchestrator.engine.runner import RunSettings  # noqa: E402
from orchestrator.inventory import InventoryDefaults  # noqa: E402
from orchestrator.model import TargetState  # noqa: E402
from orchestrator.simulator.process import SimulatorProcess  # noqa: E402

TOKEN = "panel-cost-token"


def one_run(work: Path, inventory: Path, args: argparse.Namespace, panel: bool) -> float:
    """CPU seconds of this process for one run of the fleet (fresh simulator and state)."""
    tag = f"{'panel' if panel else 'lines'}-{time.monotonic_ns()}"
    with SimulatorProcess(
        "--fleet", inventory, "--job-seconds", args.job_seconds, env={"SIM_TOKEN": TOKEN}
    ) as sim:
        devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
        inv = Invocation(
            state_path=work / f"{tag}.state.sqlite",
            report_dir=work / "reports",
            settings=RunSettings(
                rate=args.rate,
                poll_rate=args.poll_rate,
                max_in_flight=args.max_in_flight,
                first_poll=0.5,
                poll_cap=1.0,
            ),
            inventory=inventory,
            defaults=InventoryDefaults(),
            endpoint=sim.url,
            credentials=TokenAuth(TOKEN),
            live_progress=panel,
            console=Console(file=devnull, force_terminal=True, width=120, height=40),
            options={"benchmark": tag},
        )
        store = open_state(inv)
        started = time.process_time()
        try:
            result = asyncio.run(asyncio.wait_for(execute(inv, store), args.deadline))
        finally:
            store.close()
            devnull.close()
        cpu = time.process_time() - started
    counts = result.outcome.counts
    if counts[TargetState.SUCCEEDED] != args.count:
        raise SystemExit(f"run did not finish: {counts}")
    return cpu


def redraw_cost(redraws: int) -> float:
    """CPU seconds per redraw of a realistic panel (five failures listed)."""
    counts = {state: 0 for state in TargetState}
    counts.update({TargetState.SUCCEEDED: 41_000, TargetState.RUNNING: 2000})
    counts.update({TargetState.FAILED: 900, TargetState.PENDING: 56_100})
    stats = LiveStats(
        counts=counts,
        total=100_000,
        requests={"reinstall": 44_000, "job": 300_000, "server": 44_000},
        throttled=1399,
        submit_limit=500,
        query_limit=2000,
        in_flight=2000,
        max_in_flight=3000,
        recent_failures=tuple(
            FailureNote("a" * 32, f"server-{i}", "Ecs.0100", "rejected: running") for i in range(5)
        ),
    )
    meter = ProgressMeter(stats.total)
    meter.begin(stats)
    with open(os.devnull, "w") as devnull:
        console = Console(file=devnull, force_terminal=True, width=120, height=40)
        with LivePanel(console, "ECS reinstall") as panel:
            for _ in range(redraws):
                panel.show(meter.read(stats))
    return panel.cpu_seconds / redraws


def _seconds(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="servers in the fleet")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternated")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--poll-rate", type=float, default=1000.0)
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--job-seconds", default="0.5:1.5")
    parser.add_argument("--redraws", type=int, default=500)
    parser.add_argument("--deadline", type=float, default=300.0, help="per run, seconds")
    args = parser.parse_args()

    per_redraw = redraw_cost(args.redraws)
    lines: list[float] = []
    panels: list[float] = []
    with tempfile.TemporaryDirectory(prefix="panel-cost-") as tmp:
        work = Path(tmp)
        inventory = work / "fleet.csv"
        write_csv(inventory, args.count, 10, 1)
        for _ in range(args.rounds):
            lines.append(one_run(work, inventory, args, panel=False))
            panels.append(one_run(work, inventory, args, panel=True))
    without = statistics.median(lines) / args.count * 1e3
    with_panel = statistics.median(panels) / args.count * 1e3
    print(f"targets per run            {args.count} ({args.rounds} round(s) of each)")
    print(f"CPU per target, lines      {without:.3f} ms   runs: {[round(c, 2) for c in lines]} s")
    print(
        f"CPU per target, panel      {with_panel:.3f} ms   runs: {[round(c, 2) for c in panels]} s"
    )
    print(f"difference                 {with_panel - without:+.3f} ms per target")
    print(
        f"one redraw (direct)        {per_redraw * 1e3:.2f} ms CPU, so "
        f"{per_redraw * 2 * 100:.2f} % of one core at 2 redraws/s, whatever the fleet's rate"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
