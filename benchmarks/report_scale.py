"""How the report scales: write time and memory for N targets, and how fast report.html
loads in headless Chromium.

Targets and events are generated on the fly (a generator, as the state store's
paged reads are), so the memory figure is the report's own: the targets are
never held together. Then Chromium loads the page (and again filtered to the
failed targets) and the page's own clock says when its table was ready.

    .venv/bin/python benchmarks/report_scale.py                    # 100,000 targets
    .venv/bin/python benchmarks/report_scale.py --targets 1000000 --no-browser

The issue's bar: a 100,000-target report.html loads in under 5 s.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.model import InvocationInfo, RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import write_report

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
FAIL_EVERY = 23
LOAD_BUDGET_S = 5.0


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def targets(count: int) -> Iterator[Target]:
    for n in range(1, count + 1):
        failed = n % FAIL_EVERY == 0
        sent = n / 50  # 50 reinstalls per second
        yield Target(
            id=n,
            spec=TargetSpec(
                project_id=f"{n % 20:032x}",
                server_id=f"00000000-0000-4000-8000-{n:012x}",
                keyname="fleet-key",
                userid="u1",
                line=n + 1,
                region="eu-de",
                extra={"name": f"web-{n:07d}", "owner": f"team-{n % 7}"},
            ),
            state=TargetState.FAILED if failed else TargetState.SUCCEEDED,
            job_id=f"job-{n:x}",
            attempts=1,
            error_code=f"Ecs.01{n % 3:02d}" if failed else None,
            fail_reason="EcsException: failed to create the system disk." if failed else None,
            submitted_at=iso(sent),
            finished_at=iso(sent + 60 + n % 90),
        )


@dataclass(frozen=True)
class Ev:
    at: str
    from_state: str
    to_state: str
    detail: str = ""
    invocation: int = 1


def events(count: int) -> Iterator[Ev]:
    for n in range(1, count + 1):
        sent = n / 50
        yield Ev(iso(sent), "pending", "submitting")
        yield Ev(iso(sent + 0.2), "submitting", "submitted")
        end = "failed" if n % FAIL_EVERY == 0 else "succeeded"
        yield Ev(iso(sent + 60 + n % 90), "submitted", end)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(browser: str, page: Path, fragment: str) -> tuple[float, int, str]:
    """(wall seconds, the page's own ms to a ready table, the ready flag) for one load."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        started = time.perf_counter()
        done = subprocess.run(
            [
                browser, "--headless", "--disable-gpu", "--no-sandbox",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--dump-dom", url,
            ],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
    tag = re.search(r"<html[^>]*>", done.stdout)
    head = tag.group(0) if tag else ""
    ready_ms = re.search(r'data-ready-ms="(\d+)"', head)
    error = re.search(r'data-error="([^"]*)"', head)
    flag = "error: " + error.group(1) if error else ("ready" if 'data-ready="1"' in head else "?")
    return wall, int(ready_ms.group(1)) if ready_ms else -1, flag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep", type=Path, help="write the report here and keep it")
    args = parser.parse_args()

    run = RunInfo(
        run_id="bench",
        state_path="bench.state.sqlite",
        inventory_path="bench.csv",
        inventory_sha256="0" * 64,
        created_at=iso(0),
        started_at=iso(0),
        ended_at=iso(args.targets / 50 + 200),
        invocations=1,
        options={"rate": 50.0},
        extra_columns=("name", "owner"),
    )
    invocation = InvocationInfo(1, iso(0), iso(args.targets / 50 + 200), "complete")
    out = args.keep or Path(tempfile.mkdtemp(prefix="report-scale-"))
    rss_before = max_rss_mib()
    started = time.perf_counter()
    paths = write_report(
        out,
        run,
        lambda: targets(args.targets),
        events=lambda: events(args.targets),
        invocations=[invocation],
        group_by="owner",
    )
    seconds = time.perf_counter() - started
    size = paths.report_html.stat().st_size / 2**20
    print(f"targets: {args.targets:,}")
    print(f"write: {seconds:.1f} s ({args.targets / seconds:,.0f} targets/s)")
    print(f"peak RSS: {max_rss_mib():.0f} MiB (before: {rss_before:.0f} MiB)")
    csv_size = paths.targets_csv.stat().st_size / 2**20
    print(f"report.html: {size:.1f} MiB; targets.csv: {csv_size:.1f} MiB")

    status = 0
    if not args.no_browser:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            print("chromium not found: no load time (apt-get install chromium)", file=sys.stderr)
            return 2
        for fragment in ("", "state=failed"):
            wall, ready_ms, flag = load(browser, paths.report_html, fragment)
            verdict = "ok" if flag == "ready" and wall < LOAD_BUDGET_S else "TOO SLOW OR BROKEN"
            print(
                f"chromium load #{fragment or '(all)'}: {wall:.2f} s wall incl. browser start, "
                f"table ready at {ready_ms} ms after navigation, {flag}: {verdict}"
            )
            if verdict != "ok":
                status = 1
    if args.keep is None:
        shutil.rmtree(out, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
