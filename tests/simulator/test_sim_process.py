"""SimulatorProcess: the `simulate` command as a child process, its URL, stats and stop."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from sim_helpers import PROJECT, SERVER

from orchestrator.simulator import SimulatorProcess

TOKEN = "process-test-token-9b1e"
SERVER_PATH = f"/v1/{PROJECT}/cloudservers/{SERVER}"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET straight to loopback (never a proxy): the status and the JSON body."""
    assert url.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def test_serves_with_the_token_from_env_and_stops_with_exit_0() -> None:
    sim = SimulatorProcess("--seed", "3", env={"SIM_TOKEN": TOKEN})
    with sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.url)
        pid = sim.pid
        assert pid == sim.process.pid > 0
        stats = sim.stats()
        assert stats["requests"]["server"] == 0

        status, body = _get(sim.url + SERVER_PATH, {"X-Auth-Token": TOKEN})
        assert status == 200
        assert body["server"]["id"] == SERVER
        assert _get(sim.url + SERVER_PATH)[0] == 401
        assert sim.stats()["requests"]["server"] >= 1

        assert sim.stop() == 0
        assert sim.stop() == 0  # idempotent
        with pytest.raises(RuntimeError):
            sim.process  # noqa: B018
    assert sim.stop() == 0  # __exit__ after stop() is harmless
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pid, 0)


def test_credentials_in_the_environment_are_not_inherited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_TOKEN", "inherited-by-accident")
    with SimulatorProcess() as sim:
        assert sim.env.get("SIM_TOKEN") is None
        status, body = _get(sim.url + SERVER_PATH)  # auth is off: no token reached it
        assert status == 200, body


def test_an_invalid_flag_fails_the_start_naming_the_problem() -> None:
    sim = SimulatorProcess("--drop-rate", "5")
    with pytest.raises(RuntimeError, match="--drop-rate") as caught:
        sim.start()
    assert "exited with code 2" in str(caught.value)
    assert sim.stop() == 2
    with pytest.raises(RuntimeError):
        sim.url  # noqa: B018


def test_no_url_within_the_timeout_fails_the_start_and_stops_the_child() -> None:
    sim = SimulatorProcess(startup_timeout=0.001)
    with pytest.raises(RuntimeError, match="no URL within"):
        sim.start()
    assert sim.returncode is not None
    assert sim.stop() == sim.returncode
