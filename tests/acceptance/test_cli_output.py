"""What an operator (or a log collector) gets from `run`: JSON lines, the live panel on a
real terminal (a pty), and what a refused credential prints."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.console.logs import STATE_CHANGE_FIELDS

Cli = Callable[..., subprocess.CompletedProcess[str]]
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][A-Z0-9]|\r")


def parse_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_every_line_parses_and_state_changes_carry_the_fields(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path], fast: list[str]
) -> None:
    inventory = make_inventory(12, projects=2, seed=5)
    state = workdir / "json.state.sqlite"
    done = cli(
        "run", inventory, "--simulate", "--state", state, "--sim-job-seconds", "0.1:0.3",
        "--log-format", "json", "--log-level", "debug", *fast,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    console = parse_lines(done.stderr)  # every stderr line is a JSON object
    logged = parse_lines(state.with_suffix(".log").read_text(encoding="utf-8"))
    for records in (console, logged):
        changes = [r for r in records if r["event"] == "state_change"]
        assert changes, records[:3]
        for change in changes:
            assert set(STATE_CHANGE_FIELDS) <= set(change)
            assert {"time", "level", "logger", "message"} <= set(change)
        finals = [c for c in changes if c["to"] == "succeeded"]
        assert len({(c["project_id"], c["server_id"]) for c in finals}) == 12
        assert any(r["event"] == "progress" and r["final"] == 12 for r in records)

    # At INFO the console gets the interval summary, not one line per state change.
    quiet_state = workdir / "quiet.state.sqlite"
    quiet = cli(
        "run", inventory, "--simulate", "--state", quiet_state, "--sim-job-seconds", "0.1",
        "--log-format", "json", *fast,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    events = [r["event"] for r in parse_lines(quiet.stderr)]
    assert "state_change" not in events and "progress" in events


def test_json_logs_open_and_close_each_invocation_and_never_mix_with_text(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    fast: list[str],
) -> None:
    inventory = make_inventory(4, projects=1, seed=8)
    state = workdir / "mixed.state.sqlite"
    log = state.with_suffix(".log")
    token = "log-records-token-5d1e"
    with sim_process("--fleet", inventory, "--job-seconds", "0", env={"SIM_TOKEN": token}) as url:
        args = ("--endpoint", url, "--state", state, *fast)
        done = cli("run", inventory, *args, "--log-format", "json", env={"OS_AUTH_TOKEN": token})
        assert done.returncode == 0, done.stderr
        records = parse_lines(log.read_text(encoding="utf-8"))
        first, last = records[0], records[-1]
        assert first["event"] == "run_start"
        assert (first["command"], first["inventory"], first["state"]) == (
            "run",
            str(inventory),
            str(state),
        )
        assert first["options"]["endpoint"] == url and first["options"]["rate"] == 10
        assert last["event"] == "run_end"
        assert (last["outcome"], last["exit_code"], last["error"]) == ("complete", 0, None)
        assert last["counts"]["succeeded"] == 4
        report = re.search(r"^report: (.+)$", done.stdout, re.MULTILINE)
        assert report and last["report"] == report.group(1)
        assert token not in log.read_text(encoding="utf-8")

        # Text into this JSON log is refused, before anything is written...
        before = log.read_bytes()
        mixed = cli("resume", *args, "--log-format", "text", env={"OS_AUTH_TOKEN": token})
        assert mixed.returncode == 2
        assert f"the log file {log} holds json lines" in mixed.stderr
        assert log.read_bytes() == before
        # ...and without --log-format the resume goes on in the file's format.
        again = cli("resume", *args, env={"OS_AUTH_TOKEN": token})
        assert again.returncode == 0, again.stderr
    records = parse_lines(log.read_text(encoding="utf-8"))  # every line is still JSON
    assert [r["event"] for r in records if r["event"].startswith("run_")] == [
        "run_start",
        "run_end",
        "run_start",
        "run_end",
    ]
    starts = [r for r in records if r["event"] == "run_start"]
    assert starts[-1]["command"] == "resume" and records[-1]["outcome"] == "complete"

    # The same the other way round: JSON into a text log.
    text_state = workdir / "text.state.sqlite"
    plain = cli("run", inventory, "--simulate", "--state", text_state, *fast)
    assert plain.returncode == 0, plain.stderr
    lines = text_state.with_suffix(".log").read_text(encoding="utf-8").splitlines()
    assert "start: orchestrator run" in lines[0] and "end: complete, exit 0" in lines[-1]
    refused = cli("resume", "--state", text_state, "--log-format", "JSON", *fast)
    assert refused.returncode == 2 and "holds text lines" in refused.stderr


def test_refused_credentials_say_nothing_was_sent(
    cli: Cli,
    sample_inventory: Path,
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    with sim_process("--fleet", sample_inventory, env={"SIM_TOKEN": "the-right-token"}) as url:
        done = cli(
            "run", sample_inventory, "--endpoint", url, *fast,
            env={"OS_AUTH_TOKEN": "a-wrong-token-123"},
        )  # fmt: skip
        stats = sim_stats(url)
    assert done.returncode == 2, done.stderr
    assert "finished" not in done.stdout + done.stderr
    assert "credentials refused" in done.stderr
    assert "nothing was sent" in done.stderr and "300 of 300 targets are still to do" in done.stderr
    assert stats["reinstalls_total"] == 0
    assert "a-wrong-token-123" not in done.stdout + done.stderr


def read_until(fd: int, proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Read the pty until `pattern` shows (or the process ends, or time runs out)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen += chunk
            if pattern in ANSI.sub("", seen.decode(errors="replace")):
                break
        elif proc.poll() is not None:
            break
    return seen.decode(errors="replace")


def test_on_a_terminal_the_panel_keeps_the_ctrl_c_acknowledgement_above_it(
    workdir: Path, sample_inventory: Path, fast: list[str]
) -> None:
    leader, follower = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD", "SIM_"))}
    env.update(COLUMNS="100", LINES="40", TERM="xterm-256color")
    options = [o for o in fast if o != "--no-live"]  # the panel, this time
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(sample_inventory), "--simulate",
         "--rate", "20", "--sim-job-seconds", "0.5:1", *options],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=follower, text=True,
    )  # fmt: skip
    os.close(follower)
    try:
        screen = read_until(leader, proc, "in flight", timeout=30)  # the panel is up
        assert "ECS reinstall" in screen, screen[-2000:]
        proc.send_signal(signal.SIGINT)
        screen += read_until(leader, proc, "\0never", timeout=60)  # to the end
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = ANSI.sub("", screen)
    assert proc.returncode == 3, text[-2000:]
    ack = text.index("WARNING: signal SIGINT: finishing accepted jobs, then stopping")
    assert text.count("signal SIGINT") == 1
    assert "ECS reinstall" in text[ack:]  # the panel was redrawn below the warning
    assert "stopped before finishing" in stdout and "finished:" not in stdout
