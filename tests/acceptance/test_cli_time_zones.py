"""Time zones said aloud: a --window without --tz is read in this machine's zone (TZ of
the process here) and the CLI says so once; windows are shown in that zone and in UTC;
every time printed is to the second; the example offset of an error is the one the
zone really has (not a fixed +02:00)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

Cli = Callable[..., subprocess.CompletedProcess[str]]
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+")


def window_ahead(zone: str, hours: int = 2) -> tuple[str, datetime, datetime]:
    """A one-hour window starting `hours` from now in `zone` (on the hour): its text,
    and its next opening's start and end, worked out here."""
    tz = ZoneInfo(zone)
    start = (datetime.now(UTC) + timedelta(hours=hours)).astimezone(tz)
    start = start.replace(minute=0, second=0, microsecond=0)
    end = (start.astimezone(UTC) + timedelta(hours=1)).astimezone(tz)
    return f"{start:%H:%M}-{end:%H:%M}", start, end


def window_closing(zone: str) -> str:
    """A window open for the last hour that closes in two minutes, in `zone`."""
    tz = ZoneInfo(zone)
    now = datetime.now(UTC).astimezone(tz)
    start, end = now - timedelta(hours=1), now + timedelta(minutes=2)
    return f"{start:%H:%M}-{end:%H:%M}"


def both(moment: datetime) -> str:
    """How a time in a zone is said: local to the second with its name, then UTC."""
    utc = moment.astimezone(UTC)
    shown = f"{utc:%H:%M:%S}" if utc.date() == moment.date() else f"{utc:%Y-%m-%d %H:%M:%S}"
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname()} ({shown} UTC)"


def offset_on(day: date, zone: str) -> str:
    moment = datetime.combine(day, time(5), tzinfo=ZoneInfo(zone))
    return moment.isoformat(timespec="minutes")


def test_plan_without_tz_names_the_machines_zone_once_and_shows_both_clocks(
    make_inventory: Callable[..., Path], cli: Cli
) -> None:
    inventory = make_inventory(4, projects=1, seed=51)
    text, start, end = window_ahead("Europe/Berlin")
    berlin = cli("plan", inventory, "--window", text, env={"TZ": "Europe/Berlin"})
    assert berlin.returncode == 0, berlin.stderr
    warnings = [line for line in berlin.stderr.splitlines() if "--tz was not given" in line]
    assert len(warnings) == 1, berlin.stderr
    assert "machine's zone, Europe/Berlin (UTC+0" in warnings[0]
    assert f"window: {text} Europe/Berlin (this machine's zone: no --tz)" in berlin.stdout
    assert f"next opening {both(start)} to {both(end)}" in berlin.stdout, berlin.stdout
    assert not MICROSECONDS.search(berlin.stdout + berlin.stderr)

    # The same command on a UTC jump host: another hour, and it says so.
    utc = cli("plan", inventory, "--window", text, env={"TZ": "UTC"})
    assert "machine's zone, UTC (UTC+00:00 now)" in utc.stderr
    assert f"window: {text} UTC (this machine's zone: no --tz)" in utc.stdout

    text, start, end = window_ahead("Asia/Tokyo")
    named = cli("plan", inventory, "--window", text, "--tz", "Asia/Tokyo", env={"TZ": "UTC"})
    assert "--tz was not given" not in named.stderr
    assert f"window: {text} Asia/Tokyo next opening {both(start)} to {both(end)}" in (
        named.stdout
    ), named.stdout


def test_run_says_the_zone_once_and_its_times_are_to_the_second(
    workdir: Path, make_inventory: Callable[..., Path], cli: Cli, fast: list[str]
) -> None:
    inventory = make_inventory(6, projects=1, seed=52)
    # A deadline with microseconds, close enough that the cutoff holds the run at once.
    deadline = datetime.now(UTC) + timedelta(seconds=30, microseconds=123456)
    done = cli(
        "run", inventory, "--simulate", "--state", workdir / "s.sqlite", *fast,
        "--deadline", deadline.isoformat(), "--expected-job-seconds", "600",
        env={"TZ": "Europe/Berlin"},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    held = next(line for line in done.stderr.splitlines() if line.startswith("held: "))
    assert both(deadline.replace(microsecond=0).astimezone(ZoneInfo("Europe/Berlin"))) in held
    assert not MICROSECONDS.search(done.stdout + done.stderr), done.stdout + done.stderr

    status = cli("status", "--state", workdir / "s.sqlite")
    assert "invocation 1 of 1" in status.stdout
    assert not MICROSECONDS.search(status.stdout), status.stdout

    window = cli(
        "run", inventory, "--simulate", "--state", workdir / "w.sqlite", *fast,
        "--window", window_closing("Asia/Tokyo"), "--expected-job-seconds", "600",
        env={"TZ": "Asia/Tokyo"},
    )  # fmt: skip
    assert window.returncode == 3, window.stderr
    said = [line for line in window.stderr.splitlines() if "--tz was not given" in line]
    assert len(said) == 1 and "Asia/Tokyo (UTC+09:00 now)" in said[0], window.stderr
    log = (workdir / "w.log").read_text()
    assert "--tz was not given" in log  # in the log file too, once per invocation


def test_the_example_offset_of_an_error_is_the_zones_own(
    make_inventory: Callable[..., Path], cli: Cli
) -> None:
    inventory = make_inventory(2, projects=1, seed=53)
    for zone in ("Europe/Berlin", "America/New_York", "Asia/Kolkata"):
        done = cli("plan", inventory, "--deadline", "2026-12-24T05:00", env={"TZ": zone})
        assert done.returncode == 2
        tomorrow = datetime.now(UTC).astimezone(ZoneInfo(zone)).date() + timedelta(days=1)
        example = f"e.g. {offset_on(tomorrow, zone)} for 05:00 in {zone}"
        assert example in done.stderr, (zone, done.stderr)
    # The zone of --tz, where given, is the one the example speaks of.
    done = cli(
        "plan", inventory, "--window", "02:00-05:00", "--tz", "Asia/Tokyo",
        "--not-before", "tomorrow", env={"TZ": "UTC"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "for 05:00 in Asia/Tokyo" in done.stderr and "+09:00" in done.stderr, done.stderr
