"""What every issue-10 benchmark shares: the machine, the simulator, the CLI run, the output.

Each benchmark starts the simulator as its own process (`SimulatorProcess`),
runs the orchestrator as a user would (the `orchestrator` console script of the
venv, a subprocess), and measures the child with `wait4`, which gives that one
process's CPU time, and its peak RSS from /proc (VmHWM; not ru_maxrss, which on
Linux carries the benchmark's own peak into every child: see `wait_rusage`).
Output: the machine, one table, and one JSON line of figures (the last line).
"""

from __future__ import annotations

import bisect
import compileall
import functools
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

AK = "BENCHACCESSKEY0000001"
SK = "bench-secret-key-not-real-0000000000001"  # a benchmark's own, for the loopback simulator
TOKEN = "bench-token-not-real"

# Instant jobs: no queue, no power-off, REBUILD for 0 s (the simulator's in-process defaults
# already set the first three to 0).
INSTANT = ("--job-seconds", "0")

# `run_cli(..., command=[sys.executable, "-c", SEND_RECORDER, OUT])`: the orchestrator's
# CLI with each reinstall's send slot and the write of its headers to the socket
# stamped (wall clock, as the simulator stamps arrivals; the write through aiohttp's
# public tracing hook); the stamps are dumped to OUT as JSON at exit.
SEND_RECORDER = """
import atexit, json, sys, time
import aiohttp
from orchestrator.cloud import client, network
path, out = sys.argv.pop(1), {"slots": [], "writes": []}
async def headers_sent(session, context, params):
    if params.method == "POST":
        out["writes"].append(time.time())
trace = aiohttp.TraceConfig()
trace.on_request_headers_sent.append(headers_sent)
trace.freeze()
make_session, space = network.Network.session, client.EcsClient._space
def traced_session(self, limit, **kwargs):
    session = make_session(self, limit, **kwargs)
    session.trace_configs.append(trace)
    return session
async def recorded_space(self, kind, region, limiter):
    await space(self, kind, region, limiter)
    if kind == "reinstall":
        out["slots"].append(time.time())
network.Network.session, client.EcsClient._space = traced_session, recorded_space
atexit.register(lambda: json.dump(out, open(path, "w")))
from orchestrator.cli.main import main
sys.argv[0] = "orchestrator"
sys.exit(main())
"""


def console_script() -> str:
    """The `orchestrator` console script next to this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("orchestrator")
    if script.exists():
        return str(script)
    found = shutil.which("orchestrator")
    if found is None:
        raise SystemExit("the `orchestrator` console script is not installed: pip install -e .")
    return found


@functools.cache
def ensure_bytecode() -> None:
    """Byte-compile the package once, as `pip install` does for a user's install.

    Where PYTHONDONTWRITEBYTECODE is set (this project's machines set it), an editable
    install is compiled from source at every start: ~0.2 s of CPU per run that no user
    pays. Python still reads bytecode that exists, so compiling once is enough."""
    compileall.compile_dir(REPO / "orchestrator", quiet=1)


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load1": round(load, 2),
    }


def print_machine() -> dict[str, Any]:
    m = machine()
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']},"
        f" load {m['load1']}",
        flush=True,
    )
    return m


@dataclass
class Run:
    exit_code: int
    wall: float  # seconds from start to exit
    cpu: float  # the child's user + system CPU seconds
    max_rss_mb: float  # the child's peak resident set
    first_request_at: float | None = None  # seconds, when asked for
    # (seconds since start, VmRSS MB) every `RSS_EVERY` s while it ran
    rss: list[tuple[float, float]] = field(default_factory=list)


def aksk_env() -> tuple[dict[str, str], dict[str, str]]:
    """(orchestrator env, simulator env) for AK/SK signing."""
    orch = {
        k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD_SDK_", "SIM_"))
    }
    orch.update({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK})
    return orch, {"SIM_AK": AK, "SIM_SK": SK}


def token_env() -> tuple[dict[str, str], dict[str, str]]:
    orch = {
        k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD_SDK_", "SIM_"))
    }
    orch["OS_AUTH_TOKEN"] = TOKEN
    return orch, {"SIM_TOKEN": TOKEN}


def run_cli(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    cwd: Path,
    deadline: float = 3600.0,
    log: Path | None = None,
    command: Sequence[str] | None = None,
    interrupt_after: float | None = None,
) -> Run:
    """Run `orchestrator ARGS` to its end (killed after `deadline` s); its own rusage.
    `command`: another program (and its first arguments) in place of the console script.
    `interrupt_after`: send SIGINT (an operator's Ctrl-C) after so many seconds, then
    wait for the process to stop as it does (it drains and writes its report)."""
    ensure_bytecode()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    started = time.monotonic()
    try:
        command = [*(command or [console_script()]), *map(str, args)]
        profile = os.environ.get("BENCH_PYSPY")
        if profile:
            # BENCH_PYSPY=out.txt: sample every thread (the SQLite writer too), collapsed stacks;
            # BENCH_PYSPY_ARGS: more py-spy flags (--gil: only the thread holding the GIL).
            command = [
                str(Path(sys.executable).with_name("py-spy")), "record", "--threads",
                "--nonblocking", "-r", "250", "-f", "raw", "-o", profile,
                *os.environ.get("BENCH_PYSPY_ARGS", "").split(), "--", *command,
            ]  # fmt: skip
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        rss: list[tuple[float, float]] = []
        code, usage = wait_rusage(proc, deadline, interrupt_after=interrupt_after, rss=rss)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    wall = time.monotonic() - started
    return Run(code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rss=rss)


RSS_EVERY = 10.0  # seconds between the RSS timeline's samples


def wait_rusage(
    proc: subprocess.Popen[bytes],
    deadline: float,
    *,
    interrupt_after: float | None = None,
    rss: list[tuple[float, float]] | None = None,
) -> tuple[int, Any]:
    """Wait for the child; wait4 gives this child's own CPU time, /proc its own peak memory.

    ru_maxrss is not the child's own: on Linux a process started by fork (or vfork)
    and exec keeps the largest of its parent's peak at the fork and its own, so a
    benchmark that holds 300 MB (the simulator's figures of a 1M fleet) made every
    child look 300 MB big, even `/bin/true`. The child's own high-water mark is
    VmHWM in /proc/PID/status, read here every 50 ms while it runs (it only grows:
    at most the last 50 ms are missed); the usage returned carries it as ru_maxrss.
    """
    if proc.returncode is not None:  # already reaped (by poll): no rusage left to read
        return proc.returncode, resource.struct_rusage((0.0,) * 16)
    start = time.monotonic()
    end = start + deadline
    interrupt_at = None if interrupt_after is None else start + interrupt_after
    next_sample = start
    peak_kb = 0
    while time.monotonic() < end:
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        now = time.monotonic()
        if rss is not None and now >= next_sample:
            rss.append((round(now - start, 1), round(_status_kb(proc.pid, "VmRSS:") / 1024, 1)))
            next_sample = now + RSS_EVERY
        if interrupt_at is not None and now >= interrupt_at:
            proc.send_signal(signal.SIGINT)
            interrupt_at = None
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, _own_peak(usage, peak_kb)
        time.sleep(0.05)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, _own_peak(usage, peak_kb)


def _vm_hwm_kb(pid: int) -> int:
    """The process's own peak resident set (kB), 0 once it is gone."""
    return _status_kb(pid, "VmHWM:")


def _status_kb(pid: int, key: str) -> int:
    """A kB field of /proc/PID/status (VmHWM:, VmRSS:), 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _own_peak(usage: Any, peak_kb: int) -> Any:
    """`usage` with ru_maxrss (kB, index 2) replaced by the peak read from /proc."""
    if not peak_kb:
        return usage  # not Linux, or it ended before the first read
    fields = list(usage)
    fields[2] = peak_kb
    return resource.struct_rusage(fields)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (the simulator), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def busiest(times: Sequence[float], window: float = 1.0) -> int:
    """Most stamps in any closed window [t, t + window] starting at a stamp."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def emit(target: str, figures: Mapping[str, Any], machine_info: Mapping[str, Any]) -> None:
    """The one JSON line of figures, last on stdout."""
    print(json.dumps({"target": target, **figures, "machine": machine_info}, sort_keys=False))


def run_flags(report_dir: Path, *extra: str) -> list[str]:
    return ["--no-live", "--report-dir", str(report_dir), *extra]
