"""Hostile text from the service and from an inventory, on a real terminal (a pty): it is
shown, never acted on. No window title, no cleared screen, no link, no bell.

A loopback stub (in a thread of this process) answers every reinstall with a job, and
every job with FAIL carrying an error code and a fail reason full of terminal escapes
or rich markup. The CLI runs as a subprocess whose stdout and stderr are the pty.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web

pytestmark = pytest.mark.timeout(120)

PROJECT = "0123456789abcdef0123456789abcdef"
SERVERS = (
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",  # its reinstall is refused with a hostile message
)
# What the service answers for each server's failed job: (error_code, fail_reason).
TITLE_AND_CLEAR = "\x1b]0;pwned\x07\x1b[2J"
LINK_CODE = "[link=https://evil.example/login]Ecs.0605 unlock here[/link]"
ANSWERS = {
    SERVERS[0]: (TITLE_AND_CLEAR, "disk gone \x1b]0;title\x07\x1b[2J \x9b31m \u202eevil"),
    SERVERS[1]: (LINK_CODE, "[/bold] the panel must survive this"),
}
REFUSAL = {"error": {"code": "Ecs.0100", "message": "refused \x1b]0;t\x07\x1b[2J\u2028fake line"}}
# Written as the escapes `visible` shows.
SHOWN_CODE = "\\x1b]0;pwned\\x07\\x1b[2J"
# Cleaned on arrival: controls as escapes, the line separator a space.
SHOWN_REFUSAL = "refused \\x1b]0;t\\x07\\x1b[2J fake line"
# Bytes that act on a terminal (UTF-8 for the C1 and bidi characters).
ACTING = (b"\x07", b"\x1b]", b"\x1b[2J", b"\xc2\x9b", "\u202e".encode())
CSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]")


class Stub:
    """The ECS API on 127.0.0.1, answering every job with a hostile FAIL."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> Stub:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/{p}/cloudservers/{s}/reinstallos", self._reinstall)
        app.router.add_get("/v1/{p}/jobs/{job}", self._job)
        app.router.add_get("/v1/{p}/cloudservers/{s}", self._server)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _reinstall(self, request: web.Request) -> web.Response:
        server = request.match_info["s"]
        if server not in ANSWERS:
            return web.json_response(REFUSAL, status=400)
        return web.json_response({"job_id": "job-" + server})

    async def _job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job"]
        server = job_id.removeprefix("job-")
        code, reason = ANSWERS[server]
        body = {
            "job_id": job_id,
            "status": "FAIL",
            "entities": {"server_id": server},
            "error_code": code,
            "fail_reason": reason,
        }
        return web.json_response(body)

    async def _server(self, request: web.Request) -> web.Response:
        server = {
            "id": request.match_info["s"],
            "status": "SHUTOFF",
            "OS-EXT-STS:vm_state": "stopped",
            "OS-EXT-STS:task_state": None,
            "OS-SRV-USG:launched_at": "2024-01-01T00:00:00.000000",
        }
        return web.json_response({"server": server})


@pytest.fixture
def stub() -> Iterator[Stub]:
    with Stub() as api:
        yield api


def in_pty(args: Sequence[str | Path], cwd: Path, timeout: float = 60) -> tuple[int, bytes]:
    """Run the CLI with a pty as its terminal (stdout and stderr); (exit code, all bytes)."""
    leader, follower = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD", "SIM_"))}
    env.update(COLUMNS="220", LINES="50", TERM="xterm-256color", OS_AUTH_TOKEN="stub-token")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the other side closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(leader)
    return code, seen


def assert_inert(screen: bytes) -> None:
    """Nothing in `screen` sets a title, clears, rings, links or reorders."""
    for acting in ACTING:
        assert acting not in screen, (acting, screen[-3000:])


def inventory(workdir: Path, header: str = "project_id,server_id,keyname,userid") -> Path:
    path = workdir / "fleet.csv"
    rows = [header, *(f"{PROJECT},{server},kp,u1" for server in SERVERS)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_service_text_never_acts_on_the_terminal_in_the_panel_status_and_log(
    stub: Stub, workdir: Path
) -> None:
    state = workdir / "fleet.state.sqlite"
    fast = ["--first-poll", "0.2", "--poll-cap", "0.5", "--settle-quiet", "1"]
    code, screen = in_pty(
        ["run", inventory(workdir), "--endpoint", stub.url, "--state", state, *fast], workdir
    )
    text = CSI.sub(b"", screen).decode(errors="replace")
    assert code == 1, text[-3000:]  # finished, with failures
    assert "ECS reinstall" in text and "last failures" in text  # the live panel was up
    assert_inert(screen)
    assert SHOWN_CODE in text
    assert LINK_CODE in text  # as text: no OSC 8 hyperlink (asserted inert above)
    # The state file holds the service's words as they arrived, cleaned once: its
    # control characters written as visible escapes, nothing else changed.
    with sqlite3.connect(state) as conn:
        codes = {row[0] for row in conn.execute("SELECT error_code FROM targets")}
    assert codes == {SHOWN_CODE, LINK_CODE, "Ecs.0100"}

    code, screen = in_pty(["status", "--state", state], workdir)
    assert code == 1, screen[-3000:]
    assert b"\x1b" not in screen  # status prints plain text only
    status = screen.decode()
    assert f"  {SHOWN_CODE}: 1" in status and f"  {LINK_CODE}: 1" in status

    log = state.with_suffix(".log").read_bytes()
    assert b"\x1b" not in log and b"\x07" not in log
    assert SHOWN_REFUSAL.encode() in log

    report = next((workdir / "reports").glob("*/report.md")).read_bytes()
    assert b"\x1b" not in report and b"\x07" not in report


def test_inventory_column_names_never_act_on_the_terminal(stub: Stub, workdir: Path) -> None:
    hostile = "owner\x1b]0;pwned\x07\x1b[2J"
    # Rows have one cell fewer: the column is empty for them.
    path = inventory(workdir, f"project_id,server_id,keyname,userid,{hostile}")
    code, screen = in_pty(["plan", path], workdir)
    assert code == 0, screen[-3000:]
    assert_inert(screen)
    assert b"extra columns kept for the report: owner\\x1b]0;pwned\\x07\\x1b[2J" in screen

    code, screen = in_pty(
        ["run", path, "--endpoint", stub.url, "--group-by", "nope", "--no-live"], workdir
    )
    assert code == 2, screen[-3000:]
    assert_inert(screen)
    assert b"--group-by 'nope': no such column" in screen
    assert b"owner\\x1b]0;pwned\\x07\\x1b[2J" in screen


def test_json_logs_carry_the_cleaned_text(stub: Stub, workdir: Path) -> None:
    state = workdir / "json.state.sqlite"
    fast = ["--first-poll", "0.2", "--poll-cap", "0.5", "--settle-quiet", "1"]
    code, screen = in_pty(
        ["run", inventory(workdir), "--endpoint", stub.url, "--state", state, "--log-format",
         "json", "--log-level", "debug", *fast],
        workdir,
    )  # fmt: skip
    assert code == 1, screen[-3000:]
    assert b"\x1b" not in screen
    failed = [
        json.loads(line)
        for line in state.with_suffix(".log").read_text(encoding="utf-8").splitlines()
        if '"to": "failed"' in line
    ]
    assert {record["error_code"] for record in failed} == {SHOWN_CODE, LINK_CODE, "Ecs.0100"}
