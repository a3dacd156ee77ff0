"""Chaos at fleet scale: SIGKILL the orchestrator many times, resume it, prove exactly-once.

Writes an inventory (benchmarks/make_inventory.py), starts `orchestrator simulate`
as its own process with the timing a real ECS may have (queued jobs, power-off
before the rebuild, answers dropped or 5xx after acting, late answers, 5xx before
acting, failing jobs), then runs
`orchestrator run` as a subprocess and kills it with SIGKILL at seeded random
moments, starting it again with the same command each time, until it exits 0 or
1. Then checks, from the simulator's counters and the state file, that every
server was reinstalled exactly once or failed with a reason, none was forgotten
or wiped twice, the event log explains every target and the report tells the
truth (tests/acceptance/chaos_helpers.py: fleet_problems). Prints the figures
and PASS or FAIL; exits 0 on PASS, 1 on FAIL. Bounded by --deadline.

    .venv/bin/python benchmarks/chaos.py [--count 1000] [--kills 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

# The invariants live with the acceptance tests, so the test and the benchmark
# cannot drift apart.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "acceptance"))

from chaos_helpers import (
    REAL_TIMING,
    ChaosError,
    Figures,
    SimProcess,
    child_env,
    fleet_problems,
    make_inventory,
    run_with_kills,
)

TOKEN = "chaos-bench-token"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="servers in the fleet")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs before the last life")
    parser.add_argument("--seed", type=int, default=1, help="inventory, simulator and kills")
    parser.add_argument("--rate", type=float, default=20.0, help="orchestrator --rate")
    parser.add_argument(
        "--kill-after",
        default="0.5:3",
        help="MIN:MAX seconds a life runs before its SIGKILL (uniform)",
    )
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="pass --no-preflight: in-doubt targets are settled against the intent time",
    )
    parser.add_argument("--deadline", type=float, default=900.0, help="give up after (s)")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args(argv)
    low, _, high = args.kill_after.partition(":")
    delay = (float(low), float(high or low))

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args, args.keep, delay)
    with tempfile.TemporaryDirectory(prefix="chaos-") as work:
        return run(args, Path(work), delay)


def run(args: argparse.Namespace, work: Path, delay: tuple[float, float]) -> int:
    inventory = make_inventory(work / "fleet.csv", args.count, projects=20, seed=args.seed)
    state, reports = work / "fleet.state.sqlite", work / "reports"
    output = work / "orchestrator.out"
    sim_args = [
        "--fleet",
        inventory,
        "--seed",
        str(args.seed),
        "--drop-rate",
        "0.05",
        "--error-rate",
        "0.1",
        "--job-fail-rate",
        "0.1",
        "--job-seconds",
        "0.3:2",
        *REAL_TIMING,
    ]
    run_args = [
        "run",
        inventory,
        "--endpoint",
        "URL",
        "--state",
        state,
        "--report-dir",
        reports,
        "--rate",
        str(args.rate),
        "--poll-rate",
        "200",
        "--first-poll",
        "0.3",
        "--poll-cap",
        "1",
        "--settle-quiet",
        "4",
        "--stop-server",
        "--no-live",
    ]
    if args.no_preflight:
        run_args.append("--no-preflight")
    started = time.monotonic()
    error = None
    with SimProcess(*sim_args, env={"SIM_TOKEN": TOKEN}) as sim:
        run_args[run_args.index("URL")] = sim.url
        try:
            lives = run_with_kills(
                run_args,
                child_env(OS_AUTH_TOKEN=TOKEN),
                work,
                kills=args.kills,
                rng=random.Random(args.seed),
                delay=delay,
                output=output,
                state_path=state,
                deadline=args.deadline,
                max_starts=args.kills + 50,
            )
        except ChaosError as exc:
            error = str(exc)
            lives = None
        stats = sim.stats()
    wall = time.monotonic() - started

    try:
        problems, fig = fleet_problems(state, stats, args.count, report_dir=reports)
    except Exception as exc:  # a state file that cannot be read is a failure too
        problems, fig = [f"cannot check the state file: {exc!r}"], Figures()
    if error:
        problems.insert(0, error)
    if lives is not None and lives.kills < args.kills:
        problems.insert(0, f"only {lives.kills} of {args.kills} kills happened")
    if lives is not None and lives.final_code != (1 if fig.failed else 0):
        problems.insert(0, f"final exit code {lives.final_code} with {fig.failed} failed")

    print(f"seed / rate / kill after    {args.seed} / {args.rate:g}/s / {args.kill_after} s")
    print(f"targets                     {fig.targets}")
    print(f"kills (SIGKILL)             {lives.kills if lives else '?'}")
    print(f"resumes                     {lives.resumes if lives else '?'}")
    print(f"exit codes of whole lives   {lives.exits if lives else '?'}")
    print(f"wall time                   {wall:.1f} s")
    print(f"succeeded / failed          {fig.succeeded} / {fig.failed}")
    print(f"left unfinished             {fig.not_final}")
    print(f"simulator reinstalls total  {fig.sim_reinstalls}")
    print(f"reinstalls_after_success    {fig.reinstalls_after_success}")
    print(f"rejected_while_rebuilding   {fig.rejected_while_rebuilding}")
    print(f"duplicates (servers > 1)    {fig.duplicates}")
    print(f"overlapping reinstalls      {len(stats.get('overlapping_servers', []))}")
    print(f"targets ever in doubt       {fig.in_doubt_targets}")
    print(f"kills between intent/answer {fig.intent_without_answer}")
    print(f"settled 'not accepted'      {fig.resent_after_settling}")
    print(f"answers dropped / 5xx       {fig.dropped} / {fig.errors_injected}")
    for line in problems[:30]:
        print(f"  problem: {line}")
    if len(problems) > 30:
        print(f"  ... and {len(problems) - 30} more")
    print("PASS" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
