"""The eight targets of issue 10, one function each (called by benchmarks/issue10.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import (
    INSTANT,
    SEND_RECORDER,
    aksk_env,
    busiest,
    console_script,
    emit,
    ensure_bytecode,
    print_machine,
    process_cpu,
    run_cli,
    run_flags,
    table,
    wait_rusage,
)
from make_inventory import write_csv

from orchestrator.simulator.process import SimulatorProcess

# No rate limit: what is measured is the orchestrator itself, against a simulator
# without gateway limits.
UNPACED = ("--rate", "100000", "--poll-rate", "100000", "--max-in-flight", "2000")
# How the fleet runs follow their jobs: a look after 1 s, then 1.5x up to 5 s. The
# project's lists are ticked at the first poll's interval (the run's `--first-poll`),
# so a much shorter one (0.02 s) measures ticks no real run makes.
FOLLOW = ("--first-poll", "1", "--poll-cap", "5")
# Short jobs: REBUILD for 1-3 s (queue, power-off and stop are 0 in `SimulatorProcess`).
SHORT_JOBS = "1:3"
# Instant jobs, followed fast: what the resume target measures (time to a first request).
FAST_FOLLOW = ("--first-poll", "0.02", "--poll-cap", "0.2")


BURST = 1  # RateLimiter's default burst, as the CLI builds it
# Makespan: the operator says how long jobs take (2 s). Without it the default
# --first-poll 5 would hold each slot 5 s.
MAKESPAN_POLL = ("--expected-job-seconds", "2")
PACED = ("--poll-rate", "100000", "--max-in-flight", "2000", "--first-poll", "0.02",
         "--poll-cap", "0.2")  # fmt: skip
# Polling economy: the product's polling defaults (first query after 5 s, backoff to
# 60 s). Reads get room (--poll-rate 200, default 50): at --rate 50 the preflight reads
# alone take the default's whole budget while the first jobs are being sent, and a
# query waiting for its turn is late for a reason that is not the polling policy.
POLLING_FLAGS: tuple[str, ...] = ("--poll-rate", "200")


def _counts(args: argparse.Namespace, default: str) -> list[int]:
    return [int(c) for c in (args.counts or default).split(",")]


def _exactly_once(stats: dict[str, object], count: int) -> bool:
    by_server = stats["reinstalls_by_server"]
    assert isinstance(by_server, dict)
    return len(by_server) == count and set(by_server.values()) == {1}


def fleet_run(
    work: Path,
    count: int,
    extra: tuple[str, ...] = (),
    *,
    job_seconds: str = SHORT_JOBS,
    deadline: float = 3600.0,
    interrupt_after: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    """One AK/SK run of `count` targets, unpaced, jobs of `job_seconds`; its figures.
    `interrupt_after`: stop it with SIGINT after so many seconds (a bounded part of a
    fleet too large to run to its end here)."""
    inventory = work / f"fleet-{count}.csv"
    if not inventory.exists():
        write_csv(inventory, count, 20, 1)
    state = work / f"fleet-{count}-{len(list(work.glob('*.state.sqlite')))}.state.sqlite"
    orch_env, sim_env = aksk_env()
    # The simulator reads the whole fleet before it prints its URL: ~10 s per 100,000
    # servers on a loaded machine.
    startup = max(20.0, count / 10_000)
    with SimulatorProcess(
        "--fleet", inventory, "--job-seconds", job_seconds, env=sim_env, startup_timeout=startup
    ) as sim:
        run = run_cli(
            [
                "run",
                inventory,
                "--endpoint",
                sim.url,
                "--state",
                state,
                *run_flags(work / "reports", *UNPACED, *FOLLOW, *extra),
            ],
            env={**orch_env, **(env or {})},
            cwd=work,
            deadline=deadline,
            log=work / f"run-{count}.out",
            interrupt_after=interrupt_after,
        )
        stats = sim.stats()
        sim_cpu = process_cpu(sim.pid)
    calls = {kind: int(n) for kind, n in stats["requests"].items()}
    reinstalled = len(stats["reinstalls_by_server"])
    return {
        "targets": count,
        "exit": run.exit_code,
        "wall_s": round(run.wall, 2),
        "targets_per_s": round(count / run.wall, 1),
        "cpu_s": round(run.cpu, 2),
        "cpu_ms_per_target": round(1000 * run.cpu / count, 3),
        "peak_rss_mb": round(run.max_rss_mb, 1),
        "exactly_once": _exactly_once(stats, count),
        # The simulator shares the machine: what it used bounds what the run can reach.
        "sim_cpu_ms_per_target": round(1000 * sim_cpu / count, 3),
        # Every call the service saw, by API, and per target (all APIs).
        "calls": calls,
        "calls_per_target": round(sum(calls.values()) / count, 3),
        "reinstalled": reinstalled,
        "rss_timeline": run.rss,
    }


def overhead(args: argparse.Namespace, work: Path) -> int:
    """Target 1: targets/s end to end and CPU per target, AK/SK, preflight on, no limit."""
    m = print_machine()
    extra = tuple(args.extra.split())
    results = [
        fleet_run(work, n, extra, job_seconds=args.job_seconds, deadline=args.deadline)
        for n in _counts(args, "20000,100000")
    ]
    table(
        ["targets", "exit", "wall s", "targets/s", "CPU s", "CPU ms/target", "RSS MB", "once",
         "sim CPU ms/target", "calls/target", "calls by API"],
        [[r[k] for k in ("targets", "exit", "wall_s", "targets_per_s", "cpu_s",
          "cpu_ms_per_target", "peak_rss_mb", "exactly_once", "sim_cpu_ms_per_target",
          "calls_per_target", "calls")] for r in results],
    )  # fmt: skip
    emit("overhead", {"runs": results}, m)
    ok = all(r["exit"] == 0 and r["exactly_once"] for r in results)
    return 0 if ok else 1


def sdk(args: argparse.Namespace, work: Path) -> int:
    """Target 2: the official SDK (a pool of `--threads`, 32 by default) and the
    orchestrator on the same fleet and simulator build, short jobs, in `--rounds`
    rounds; each round's ratio is ours over that round's best SDK, and each side's
    calls per target are the simulator's count of what it received."""
    m = print_machine()
    count = args.count or 2000
    inventory = work / f"fleet-{count}.csv"
    write_csv(inventory, count, 20, 1)
    try:
        import huaweicloudsdkecs  # noqa: F401
    except ImportError:
        print("the SDK is not installed: pip install -e '.[bench]'")
        threads: list[int] = []
    else:
        threads = [int(t) for t in args.threads.split(",")]
    rows: list[list[object]] = []
    rounds: list[dict[str, object]] = []
    extra = tuple(args.extra.split())
    jobs = args.job_seconds
    for number in range(1, args.rounds + 1):
        # This machine's speed drifts within minutes (and other work shares it): the
        # clients of one round run back to back, and every other round the orchestrator
        # goes first.
        ours = None
        if number % 2 == 0:
            ours = fleet_run(work, count, extra, job_seconds=jobs, deadline=args.deadline)
        sdk_runs = [_sdk_run(work, inventory, count, n, jobs, args.deadline) for n in threads]
        if ours is None:
            ours = fleet_run(work, count, extra, job_seconds=jobs, deadline=args.deadline)
        best = max((float(str(r["targets_per_s"])) for r in sdk_runs), default=0.0)
        ratio = round(float(str(ours["targets_per_s"])) / best, 2) if best else None
        rounds.append({"round": number, "sdk": sdk_runs, "orchestrator": ours, "ratio": ratio})
        for run in sdk_runs:
            rows.append(
                [number, *(run[k] for k in ("client", "targets_per_s", "cpu_ms_per_target",
                 "calls_per_target", "succeeded", "exactly_once")), ""]
            )  # fmt: skip
        rows.append(
            [number, "orchestrator", ours["targets_per_s"], ours["cpu_ms_per_target"],
             ours["calls_per_target"], count if ours["exit"] == 0 else "?",
             ours["exactly_once"], ratio]
        )  # fmt: skip
    table(
        ["round", "client", "targets/s", "CPU ms/target", "calls/target", "succeeded", "once",
         "ratio"],
        rows,
    )  # fmt: skip
    ratios = [float(str(r["ratio"])) for r in rounds if r["ratio"] is not None]
    ratio = round(statistics.median(ratios), 2) if ratios else None
    print(f"orchestrator / best SDK, median of {len(ratios)} round(s): {ratio}x (target: 5x)")
    emit("sdk", {"targets": count, "job_seconds": jobs, "rounds": rounds, "ratio": ratio}, m)
    return 0


def _sdk_run(
    work: Path, inventory: Path, count: int, threads: int, job_seconds: str, deadline: float
) -> dict[str, object]:
    """One run of sdk_client.py with a pool of `threads`, on a fresh simulator, following
    each job as the orchestrator's runs do (`FOLLOW`: first look after 1 s, 1.5x, up to
    5 s). Its targets per second are end to end, as the orchestrator's are: from starting
    the process to its exit (its own timer, which leaves out the interpreter's start,
    the SDK's imports and reading the inventory, is kept as `work_targets_per_s`)."""
    ensure_bytecode()
    orch_env, sim_env = aksk_env()
    first, cap = FOLLOW[1], FOLLOW[3]
    with SimulatorProcess("--fleet", inventory, "--job-seconds", job_seconds, env=sim_env) as sim:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sdk_client.py")), sim.url,
             str(inventory), str(threads), first, cap],
            env=orch_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        out = proc.stdout.read()
        code, usage = wait_rusage(proc, deadline)
        wall = time.monotonic() - started
        stats = sim.stats()
    figures = json.loads(out.decode().strip().splitlines()[-1]) if code == 0 else {}
    work_wall = float(figures.get("wall_s", 0) or 0)
    cpu = usage.ru_utime + usage.ru_stime
    calls = {kind: int(n) for kind, n in stats["requests"].items()}
    return {
        "client": f"SDK {threads} threads",
        "targets_per_s": round(count / wall, 1) if code == 0 else 0.0,
        "cpu_ms_per_target": round(1000 * cpu / count, 3),
        "calls": calls,
        "calls_per_target": round(sum(calls.values()) / count, 3),
        "succeeded": figures.get("succeeded", 0),
        "exactly_once": _exactly_once(stats, count),
        "work_targets_per_s": round(count / work_wall, 1) if work_wall else 0.0,
    }


def memory(args: argparse.Namespace, work: Path) -> int:
    """Target 3: peak RSS of run (import, run, report) and of status/report on the same file
    (with --synthetic: on a finished state file from make_state.py, no run). With
    --stop-after S the run is stopped by SIGINT after S seconds (a bounded part of a
    fleet too large to run to its end here: import, S seconds of run, the drain, the
    report of the whole state), and the table says how many targets were final."""
    m = print_machine()
    results = []
    for count in _counts(args, "100000,1000000"):
        if args.synthetic:  # no run: a finished state file made through the store's API
            state = work / f"synthetic-{count}.state.sqlite"
            if not state.exists():  # made before with --keep: 1M takes minutes to make
                subprocess.run(
                    [sys.executable, Path(__file__).with_name("make_state.py"), "--count",
                     str(count), state], check=True,
                )  # fmt: skip
            run: dict[str, object] = {"targets": count, "exit": "-", "targets_per_s":
                   "-", "cpu_ms_per_target": "-", "peak_rss_mb": "-"}  # fmt: skip
        else:
            run = dict(
                fleet_run(work, count, tuple(args.extra.split()), job_seconds=args.job_seconds,
                          deadline=args.deadline, interrupt_after=args.stop_after)
            )  # fmt: skip
            state = sorted(work.glob(f"fleet-{count}-*.state.sqlite"))[-1]
        status = run_cli(["status", "--state", state, "--json"], env=aksk_env()[0], cwd=work)
        report = run_cli(
            ["report", "--state", state, "--report-dir", work / "again"],
            env=aksk_env()[0],
            cwd=work,
        )
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as conn:
            requests = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            final = conn.execute(
                "SELECT count(*) FROM targets WHERE state IN ('succeeded', 'failed', 'skipped')"
            ).fetchone()[0]
        results.append(
            {
                **run,
                "final": final,
                # Job queries per target: the run's CPU per target grows with them.
                "job_queries_per_target": "-"
                if args.synthetic  # make_state.py's counters are made up, not measured
                else round(requests.get("requests.job", 0) / max(1, final), 2),
                "status_rss_mb": round(status.max_rss_mb, 1),
                "report_rss_mb": round(report.max_rss_mb, 1),
                "report_s": round(report.wall, 1),
            }
        )
    table(
        ["targets", "final", "exit", "targets/s", "CPU ms/target", "job queries/final",
         "run RSS MB", "status RSS MB", "report RSS MB", "report s"],
        [[r["targets"], r["final"], r["exit"], r["targets_per_s"], r["cpu_ms_per_target"],
          r["job_queries_per_target"], r["peak_rss_mb"], r["status_rss_mb"], r["report_rss_mb"],
          r["report_s"]] for r in results],
    )  # fmt: skip
    emit("memory", {"runs": results}, m)
    return 0


def pacing(args: argparse.Namespace, work: Path) -> int:
    """Target 4: the reinstall rate against --rate, and its 1-second peaks, at three points.

    At the pacer: each reinstall's send slot (when `EcsClient._space` returned), what the
    limiter itself bounds. At the sender: when each reinstall's bytes were handed to the
    socket, stamped inside the orchestrator (`SEND_RECORDER`): what the orchestrator puts
    on the wire, and what the target is judged on. At the simulator: when it read each
    request, which adds the receiving process's own pauses on these shared cores
    (`pacing_jitter.py`).
    """
    m = print_machine()
    orch_env, sim_env = aksk_env()
    results = []
    for rate in [float(r) for r in args.rates.split(",")]:
        count = max(20, int(rate * args.seconds))
        inventory = work / f"pacing-{rate:g}.csv"
        write_csv(inventory, count, 20, 1)
        record = work / f"pacing-{rate:g}.sends.json"
        with SimulatorProcess("--fleet", inventory, *INSTANT, env=sim_env) as sim:
            run = run_cli(
                ["run", inventory, "--endpoint", sim.url, "--state", work / f"p{rate:g}.sqlite",
                 *run_flags(work / "reports", "--rate", f"{rate:g}", *PACED)],
                env=orch_env, cwd=work, deadline=args.deadline,
                command=[sys.executable, "-c", SEND_RECORDER, str(record)],
            )  # fmt: skip
            arrivals = sorted(sim.stats()["request_times"]["reinstall"])
        sends = json.loads(record.read_text())
        writes, slots = sorted(sends["writes"]), sorted(sends["slots"])
        allowed = int(rate) + BURST
        sent, seen = _achieved(writes), _achieved(arrivals)
        busiest_sent = busiest(writes)
        results.append(
            {
                "rate": rate,
                "exit": run.exit_code,
                "requests": len(arrivals),
                "achieved_sender": round(sent, 2),
                "error_pct_sender": round(100 * (sent - rate) / rate, 2),
                "max_1s_slot": busiest(slots),
                "max_1s_sender": busiest_sent,
                "achieved_simulator": round(seen, 2),
                "max_1s_simulator": busiest(arrivals),
                "allowed_1s": allowed,
                "met": abs(sent - rate) <= 0.02 * rate and busiest_sent <= allowed,
            }
        )
    table(
        ["--rate", "exit", "requests", "sent/s", "error %", "max 1 s slot", "max 1 s sent",
         "seen/s", "max 1 s seen", "rate+burst", "met"],
        [list(r.values()) for r in results],
    )  # fmt: skip
    print(
        "slot: the pacer's send slots; sent: the orchestrator's socket writes;"
        " seen: the simulator's arrival stamps"
    )
    emit("pacing", {"runs": results, "burst": BURST}, m)
    return 0


def _achieved(times: list[float]) -> float:
    """Requests per second from the first to the last."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span else 0.0


def makespan(args: argparse.Namespace, work: Path) -> int:
    """Target 5: 2,000 targets, 2 s jobs, --rate 100, --max-in-flight 200, against the ideal."""
    m = print_machine()
    count, rate, inflight, job = args.count or 2000, 100.0, 200, 2.0
    inventory = work / "makespan.csv"
    write_csv(inventory, count, 20, 1)
    orch_env, sim_env = aksk_env()
    ideal = count / min(rate, inflight / job) + job
    with SimulatorProcess("--fleet", inventory, "--job-seconds", f"{job:g}", env=sim_env) as sim:
        run = run_cli(
            ["run", inventory, "--endpoint", sim.url, "--state", work / "makespan.sqlite",
             *run_flags(work / "reports", "--rate", f"{rate:g}", "--poll-rate", "100000",
                        "--max-in-flight", str(inflight), *MAKESPAN_POLL)],
            env=orch_env, cwd=work, deadline=args.deadline,
        )  # fmt: skip
        stats = sim.stats()
    first = min(stats["request_times"]["server"] + stats["request_times"]["reinstall"])
    last = max(stats["request_times"]["job"])
    at_service = last - first
    row = {
        "targets": count,
        "exit": run.exit_code,
        "ideal_s": round(ideal, 2),
        "process_s": round(run.wall, 2),
        "at_service_s": round(at_service, 2),
        "over_ideal_pct": round(100 * (at_service - ideal) / ideal, 1),
        "process_over_ideal_pct": round(100 * (run.wall - ideal) / ideal, 1),
    }
    table(list(row), [list(row.values())])
    emit("makespan", {**row, "poll_flags": list(MAKESPAN_POLL)}, m)
    return 0


def polling(args: argparse.Namespace, work: Path) -> int:
    """Target 6: jobs of 0.5x-2x a median: detection lag and job queries per target.

    Three phases on one simulator: a first run with nothing known (the product's
    default polling), stopped by SIGINT once a quarter of the fleet has ended; then
    `resume`, whose polling has learned from those jobs; then a first run on a new
    state file told the median with `--expected-job-seconds`.
    """
    m = print_machine()
    count, median = args.count or 300, args.median
    inventory = work / "polling.csv"
    write_csv(inventory, count, 20, 1)
    orch_env, sim_env = aksk_env()
    state = work / "polling.sqlite"
    spread = f"{median / 2:g}:{median * 2:g}"
    flags = ("--rate", "50", *POLLING_FLAGS)
    with SimulatorProcess("--fleet", inventory, "--job-seconds", spread, env=sim_env) as sim:
        first = subprocess.Popen(
            [console_script(), "run", str(inventory), "--endpoint", sim.url, "--state",
             str(state), *run_flags(work / "reports", *flags, "--max-in-flight",
                                    str(max(1, count // 8)), "--drain-timeout", "300")],
            cwd=work, env=orch_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while first.poll() is None and sim.stats()["jobs"]["SUCCESS"] < count // 4:
            time.sleep(0.5)
        first.send_signal(signal.SIGINT)
        first.wait(timeout=args.deadline)
        queries_before = sim.stats()["requests"]["job"]
        resumed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        run = run_cli(
            ["resume", "--state", state, "--endpoint", sim.url,
             *run_flags(work / "reports", *flags, "--max-in-flight", str(count))],
            env=orch_env, cwd=work, deadline=args.deadline,
        )  # fmt: skip
        queries_after = sim.stats()["requests"]["job"]
    # A new state file (nothing learned) whose operator says how long jobs take, on a
    # new simulator (the first one's servers are running now: they would refuse).
    with SimulatorProcess("--fleet", inventory, "--job-seconds", spread, env=sim_env) as sim:
        told = work / "polling-told.sqlite"
        told_run = run_cli(
            ["run", inventory, "--endpoint", sim.url, "--state", told,
             *run_flags(work / "reports", *flags, "--max-in-flight", str(count),
                        "--expected-job-seconds", f"{median:g}")],
            env=orch_env, cwd=work, deadline=args.deadline, log=work / "polling-told.out",
        )  # fmt: skip
        queries_told = sim.stats()["requests"]["job"]
    rows = []
    phases = (
        ("first run: defaults", state, "<", queries_before),
        ("resumed: learned", state, ">=", queries_after - queries_before),
        (f"first run: --expected-job-seconds {median:g}", told, ">=", queries_told),
    )
    for phase, path, where, queries in phases:
        lags, durations = [], []
        with sqlite3.connect(path) as conn:
            for begin, end, seen in conn.execute(
                "SELECT job_begin_at, job_end_at, finished_at FROM targets"
                f" WHERE state = 'succeeded' AND submitted_at {where} ?",
                (resumed_at if path == state else "",),
            ):
                b, e, f = (_epoch(v) for v in (begin, end, seen))
                if b is None or e is None or f is None or e <= b:
                    continue
                durations.append(e - b)
                lags.append((f - e) / (e - b))
        rows.append(
            {
                "phase": phase,
                "targets": len(lags),
                "median_job_s": round(statistics.median(durations), 1) if durations else None,
                "mean_lag_pct": round(100 * statistics.fmean(lags), 1) if lags else None,
                "job_queries_per_target": round(queries / len(lags), 2) if lags else None,
            }
        )
    table(["phase", "targets", "median job s", "mean lag %", "job queries/target"],
          [list(r.values()) for r in rows])  # fmt: skip
    exits = {"resume": run.exit_code, "told": told_run.exit_code}
    emit("polling", {"job_s": spread, "exit": exits, "phases": rows}, m)
    return 0


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def resume(args: argparse.Namespace, work: Path) -> int:
    """Target 7: a 100,000-target state file stopped half done: time to the first request."""
    m = print_machine()
    count = args.count or 100_000
    inventory = work / "resume.csv"
    write_csv(inventory, count, 20, 1)
    orch_env, sim_env = aksk_env()
    state = work / "resume.sqlite"
    # One simulator for both: the resume must talk to the endpoint the run used.
    with SimulatorProcess("--fleet", inventory, *INSTANT, env=sim_env) as sim:
        command = [
            console_script(), "run", str(inventory), "--endpoint", sim.url, "--state", str(state),
            *run_flags(work / "reports", *UNPACED, *FAST_FOLLOW, "--drain-timeout", "5"),
        ]  # fmt: skip
        first = subprocess.Popen(
            command, cwd=work, env=orch_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while first.poll() is None and sim.stats()["reinstalls_total"] < count // 2:
            time.sleep(0.5)
        first.send_signal(signal.SIGINT)
        first.wait(timeout=600)
        with sqlite3.connect(state) as conn:
            done = conn.execute(
                "SELECT count(*) FROM targets WHERE state IN ('succeeded', 'failed', 'skipped')"
            ).fetchone()[0]
        time.sleep(1.0)  # nothing in flight at the simulator from the first run
        started = time.time()
        second = subprocess.Popen(
            [console_script(), "resume", "--state", str(state), "--endpoint", sim.url,
             *run_flags(work / "reports", *UNPACED, *FAST_FOLLOW)],
            cwd=work, env=orch_env, stdout=subprocess.DEVNULL,
            stderr=open(work / "resume.err", "wb"),  # noqa: SIM115
        )  # fmt: skip
        first_request = None
        while first_request is None and time.time() - started < args.deadline:
            times = sim.stats()["request_times"]
            arrivals = [t for kind in ("reinstall", "job", "server") for t in times[kind]]
            later = [t for t in arrivals if t >= started]
            if later:
                first_request = min(later) - started
            elif second.poll() is not None:
                break
            else:
                time.sleep(0.05)
        code, usage = wait_rusage(second, args.deadline)
    row = {
        "targets": count,
        "final_before_resume": done,
        "first_request_s": round(first_request, 2) if first_request is not None else None,
        "resume_exit": code,
        "resume_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }
    table(list(row), [list(row.values())])
    emit("resume", row, m)
    return 0
