"""Make docs/report.png: a real campaign against the simulator, interrupted and resumed,
then its report.html photographed by headless Chromium.

    .venv/bin/python docs/make_screenshot.py [--count 400] [--out docs/report.png]

Everything runs on 127.0.0.1: `orchestrator simulate` with a rate limit (so
there is throttling), failing jobs and locked servers (so there are failures),
then `orchestrator run` stopped with SIGINT after a few seconds and `orchestrator
resume` to the end. Same arguments, same fleet; timings vary from run to run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.simulator.process import SimulatorProcess

REPO = Path(__file__).resolve().parents[1]
TOKEN = "screenshot-token-4d2e"


def orchestrator(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *map(str, args)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--stop-after", type=float, default=8.0, help="seconds before SIGINT")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="report-shot-"))
    inventory = work / "fleet.csv"
    subprocess.run(
        [sys.executable, REPO / "benchmarks" / "make_inventory.py", "--count", str(args.count),
         "--projects", "5", "--seed", "7", inventory],
        check=True,
    )  # fmt: skip
    reports = work / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD_"))}
    env["OS_AUTH_TOKEN"] = TOKEN
    sim_args = (
        "--fleet", inventory, "--seed", "7", "--job-seconds", "3:9", "--job-fail-rate", "0.06",
        "--locked-rate", "0.02", "--rate-limit", "12",
    )  # fmt: skip
    with SimulatorProcess(*sim_args, env={"SIM_TOKEN": TOKEN}) as sim:
        common = (
            "--endpoint", sim.url, "--report-dir", reports, "--rate", "20", "--max-in-flight",
            "60", "--first-poll", "1", "--poll-cap", "3", "--no-live", "--group-by", "owner",
        )  # fmt: skip
        first = subprocess.Popen(
            orchestrator("run", inventory, *common), env=env, cwd=work, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(args.stop_after)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
        time.sleep(2)  # a visible pause between the invocations on the timeline
        state = reports / "fleet.state.sqlite"
        done = subprocess.run(
            orchestrator("resume", "--state", state, *common),
            env=env, cwd=work, text=True, capture_output=True, timeout=600,
        )  # fmt: skip
    match = re.search(r"^report: (.+)$", done.stdout, re.MULTILINE)
    if match is None:
        print(done.stdout, done.stderr, file=sys.stderr)
        return 1
    page = Path(match.group(1)) / "report.html"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run(
            [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             f"--window-size=1280,{args.height}", f"--screenshot={args.out.resolve()}",
             page.as_uri() + "#state=failed"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(f"{args.out} from {page}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
