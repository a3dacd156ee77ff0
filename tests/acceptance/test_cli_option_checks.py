"""Every option is checked before anything is created: exit 2, the option named, no traceback.

Each case runs the CLI as a subprocess with one bad option and otherwise good
arguments (a run against the built-in simulator, or a plan, status, report,
resume, retry, simulate). Before these checks, some of these hung a run
(--first-poll inf), ran it with nan (--poll-cap nan), sent nothing and exited 3
(--expected-job-seconds nan with --deadline), printed a traceback (a port above
65535, --log-file /proc/version, a time past year 9999), exited 0 without a log
(--log-file /dev/full), made the state file and then refused (--group-by), or
silently ignored --endpoint next to --simulate.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
PROJECT = "0123456789abcdef0123456789abcdef"
SERVER = "00000000-0000-4000-8000-000000000001"
LOOPBACK = "http://127.0.0.1:9"  # never reached: every case stops before sending
FAR_FUTURE = "9999-12-31T23:59:59-23:59"  # past the last time Python holds, in UTC

RUN = ["run", "fleet.csv", "--simulate", "--no-live", "--sim-job-seconds", "0.1"]
PLAN = ["plan", "fleet.csv"]

CASES: list[tuple[str, list[str], str, dict[str, str]]] = [
    # (id, arguments, what stderr must name, environment)
    ("first-poll inf", [*RUN, "--first-poll", "inf"], "--first-poll", {}),
    ("first-poll nan", [*RUN, "--first-poll", "nan"], "--first-poll", {}),
    ("first-poll 0", [*RUN, "--first-poll", "0"], "--first-poll", {}),
    ("poll-cap nan", [*RUN, "--poll-cap", "nan"], "--poll-cap", {}),
    ("drain-timeout nan", [*RUN, "--drain-timeout", "nan"], "--drain-timeout", {}),
    ("drain-timeout -1", [*RUN, "--drain-timeout", "-1"], "--drain-timeout", {}),
    ("job-timeout inf", [*RUN, "--job-timeout", "inf"], "--job-timeout", {}),
    ("settle-quiet nan", [*RUN, "--settle-quiet", "nan"], "--settle-quiet", {}),
    ("busy-recheck-delay nan", [*RUN, "--busy-recheck-delay", "nan"], "--busy-recheck-delay", {}),
    ("busy-rechecks 31", [*RUN, "--busy-rechecks", "31"], "--busy-rechecks", {}),
    ("rate nan", [*RUN, "--rate", "nan"], "--rate", {}),
    ("poll-rate inf", [*RUN, "--poll-rate", "inf"], "--poll-rate", {}),
    ("max-in-flight 0", [*RUN, "--max-in-flight", "0"], "--max-in-flight", {}),
    ("pause nan", [*RUN, "--pause-between-waves", "nan"], "--pause-between-waves", {}),
    ("pause inf", [*RUN, "--pause-between-waves", "inf"], "--pause-between-waves", {}),
    (
        "expected-job-seconds nan",
        [*RUN, "--expected-job-seconds", "nan", "--deadline", "2099-01-01T00:00Z"],
        "--expected-job-seconds",
        {},
    ),
    ("not-before past 9999", [*RUN, "--not-before", FAR_FUTURE], "--not-before", {}),
    (
        "skip-reinstalled-since past 9999",
        [*RUN, "--skip-reinstalled-since", FAR_FUTURE],
        "--skip-reinstalled-since",
        {},
    ),
    ("sim-job-fail-rate nan", [*RUN, "--sim-job-fail-rate", "nan"], "--sim-job-fail-rate", {}),
    ("sim-job-fail-rate 2", [*RUN, "--sim-job-fail-rate", "2"], "--sim-job-fail-rate", {}),
    ("sim-job-seconds inf", [*RUN, "--sim-job-seconds", "1:inf"], "--sim-job-seconds", {}),
    ("log-file /proc/version", [*RUN, "--log-file", "/proc/version"], "--log-file", {}),
    ("log-file /dev/full", [*RUN, "--log-file", "/dev/full"], "--log-file", {}),
    ("log-file a directory", [*RUN, "--log-file", "."], "--log-file", {}),
    ("group-by no such column", [*RUN, "--group-by", "nosuchcol"], "--group-by", {}),
    ("region not a region", [*RUN, "--region", "eu/../x"], "--region", {}),
    ("state a FIFO", [*RUN, "--state", "fifo"], "--state", {}),
    (
        "simulate with endpoint",
        [*RUN, "--endpoint", LOOPBACK],
        "--simulate runs against the built-in simulator; --endpoint cannot be used with it",
        {},
    ),
    (
        "simulate with os-cloud",
        [*RUN, "--os-cloud", "prod"],
        "--simulate runs against the built-in simulator; --os-cloud cannot be used with it",
        {},
    ),
    (
        "endpoint port above 65535",
        ["run", "fleet.csv", "--no-live", "--endpoint", "http://127.0.0.1:70000"],
        "http://127.0.0.1:70000",
        {"OS_AUTH_TOKEN": "tok-0815"},
    ),
    (
        "token not latin-1",
        ["run", "fleet.csv", "--no-live", "--endpoint", LOOPBACK],
        "OS_AUTH_TOKEN",
        {"OS_AUTH_TOKEN": "tok-\u20ac-0815"},
    ),
    (
        "resume first-poll nan",
        ["resume", "--state", "s.sqlite", "--first-poll", "nan"],
        "--first-poll",
        {},
    ),
    (
        "retry poll-cap inf",
        ["retry", "--state", "s.sqlite", "--poll-cap", "inf"],
        "--poll-cap",
        {},
    ),
    ("plan job-seconds nan", [*PLAN, "--job-seconds", "nan"], "--job-seconds", {}),
    ("plan job-seconds -5", [*PLAN, "--job-seconds", "-5"], "--job-seconds", {}),
    ("plan pause nan", [*PLAN, "--pause-between-waves", "nan"], "--pause-between-waves", {}),
    ("plan poll-rate nan", [*PLAN, "--poll-rate", "nan"], "--poll-rate", {}),
    (
        "plan port above 65535",
        [*PLAN, "--endpoint", "http://127.0.0.1:70000"],
        "http://127.0.0.1:70000",
        {},
    ),
    (
        "plan simulate with endpoint",
        [*PLAN, "--simulate", "--endpoint", LOOPBACK],
        "--endpoint cannot be used with it",
        {},
    ),
    ("status watch nan", ["status", "--state", "s.sqlite", "--watch", "nan"], "--watch", {}),
    ("status state a FIFO", ["status", "--state", "fifo"], "--state", {}),  # it blocked
    ("plan state a FIFO", [*PLAN, "--state", "fifo"], "--state", {}),
    ("simulate latency nan", ["simulate", "--latency-ms", "nan"], "--latency-ms", {}),
    ("simulate fail rate nan", ["simulate", "--job-fail-rate", "nan"], "--job-fail-rate", {}),
    ("simulate token-ttl inf", ["simulate", "--token-ttl", "inf"], "--token-ttl", {}),
    ("simulate job-seconds inf", ["simulate", "--job-seconds", "1:inf"], "--job-seconds", {}),
    ("simulate host unknown", ["simulate", "--host", "no-such-host.invalid"], "--host", {}),
]


@pytest.mark.parametrize(
    ("args", "named", "env"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_option_is_refused_before_anything_is_created(
    cli: Cli, workdir: Path, args: list[str], named: str, env: dict[str, str]
) -> None:
    (workdir / "fleet.csv").write_text(
        f"project_id,server_id,keyname,userid,owner\n{PROJECT},{SERVER},k,u,me\n"
    )
    os.mkfifo(workdir / "fifo")
    before = set(workdir.rglob("*"))

    done = cli(*args, env=env, timeout=30)

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert named in done.stderr, output
    assert "Traceback" not in output
    # No state, log or report; at most the (empty) report folder, made before the
    # inventory's columns are known (--group-by), as for an invalid inventory.
    created = set(workdir.rglob("*")) - before
    assert [p for p in created if not (p.is_dir() and not any(p.iterdir()))] == [], created
