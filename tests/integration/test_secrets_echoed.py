"""A service that quotes the caller's token back: the token is shown, logged and kept nowhere.

The CLI runs as a subprocess against `hostile_server`, which quotes the X-Auth-Token
it was sent in a 403 reason (kept in the state as the targets' fail_reason and shown
by `status`), in a job's fail_reason, and in a bare 404's body (which stops the run
and is the last line on stderr). After each run, `status` and `report` run too;
then every byte the commands printed and every file they left (log, SQLite state
file, reports) is searched for the token.

A token of 3 characters is blanked where it stands alone (orchestrator.redact);
one that IAM issues mid-run (the simulator's IAM) is blanked like a fixed one.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hostile_server import HostileServer

from orchestrator.simulator import Simulator
from orchestrator.simulator.iam import TOKEN_PREFIX

pytestmark = pytest.mark.timeout(120)

PROJECT = "0123456789abcdef0123456789abcdef"
SERVERS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 4)]
LONG_TOKEN = "MIIecho-secret-token-0042"
SHORT_TOKEN = "k9z"  # shorter than redact.WHOLE_WORD_BELOW: blanked where it stands alone
PASSWORD = "echo-test-password-77"
AUTH_VARIABLES = ("OS_", "HUAWEICLOUD_")


async def cli(*args: str | Path, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *map(str, args),
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, (out + err).decode("utf-8", "replace")


def environment(**auth: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(AUTH_VARIABLES)}
    return {**env, **auth, "NO_PROXY": "127.0.0.1"}


def leaks(secret: str, text: str) -> list[str]:
    """Where `secret` appears in `text`: anywhere when long, standing alone when short."""
    if len(secret) >= 4:
        pattern = re.escape(secret)
    else:
        pattern = rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])"
    return [text[max(m.start() - 40, 0) : m.end() + 40] for m in re.finditer(pattern, text)]


def every_file(root: Path) -> dict[str, str]:
    """Every file under root as text (bytes read as latin-1: binary SQLite pages too)."""
    return {
        str(p.relative_to(root)): p.read_bytes().decode("latin-1")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def run_and_look(
    api: HostileServer, tmp_path: Path, env: dict[str, str]
) -> tuple[int, str, dict[str, str]]:
    """`run`, then `status` and `report` of its state: exit code, all output, all files."""
    inventory = tmp_path / "fleet.csv"
    rows = ["project_id,server_id,keyname,userid", *(f"{PROJECT},{s},k,u" for s in SERVERS)]
    inventory.write_text("\n".join(rows) + "\n", encoding="utf-8")
    state = tmp_path / "reports" / "fleet.state.sqlite"
    fast = ["--first-poll", "0.1", "--poll-cap", "0.2", "--settle-quiet", "1", "--no-live"]
    code, output = await cli(
        "run", inventory, "--endpoint", api.url, "--state", state, *fast, env=env, cwd=tmp_path
    )
    assert state.exists(), output
    for command in (["status", "--state", state], ["status", "--json", "--state", state]):
        output += (await cli(*command, env=env, cwd=tmp_path))[1]
    output += (await cli("report", "--state", state, env=env, cwd=tmp_path))[1]
    return code, output, every_file(tmp_path)


@pytest.mark.parametrize("token", [LONG_TOKEN, SHORT_TOKEN], ids=["long", "short"])
@pytest.mark.parametrize(
    ("way", "code", "quoted_in"),
    [
        ({"reinstall": "echo_403"}, 1, "a 403 reason, the targets' fail_reason"),
        ({"job": "fail_echo"}, 1, "a job's fail_reason"),
        ({"reinstall": "echo_404"}, 2, "a bare 404 that stops the run"),
    ],
    ids=["403", "job", "404"],
)
async def test_a_token_the_service_quotes_back_appears_nowhere(
    token: str, way: dict[str, str], code: int, quoted_in: str, tmp_path: Path
) -> None:
    async with HostileServer(**way) as api:
        exit_code, output, files = await run_and_look(
            api, tmp_path, environment(OS_AUTH_TOKEN=token)
        )
    assert exit_code == code, output
    assert "***" in output, f"the service's words ({quoted_in}) are shown, blanked:\n{output}"
    assert leaks(token, output) == [], output
    assert any(name.endswith(".sqlite") for name in files)
    assert any(name.endswith(".log") for name in files)
    assert any(name.endswith("summary.json") for name in files)
    assert any(name.endswith("targets.csv") for name in files)
    assert {name: found for name, text in files.items() if (found := leaks(token, text))} == {}


async def test_tokens_iam_issues_mid_run_are_blanked_too(
    start_sim: Callable[..., Awaitable[Simulator]], tmp_path: Path
) -> None:
    """The simulator's IAM issues the token; the hostile ECS quotes it in its 403s."""
    sim = await start_sim(
        fleet=tuple((PROJECT, s) for s in SERVERS), users=(("alice", PASSWORD, "Dom"),)
    )
    env = environment(
        OS_AUTH_URL=sim.url + "/v3",
        OS_USERNAME="alice",
        OS_PASSWORD=PASSWORD,
        OS_USER_DOMAIN_NAME="Dom",
    )
    async with HostileServer(reinstall="echo_403") as api:
        exit_code, output, files = await run_and_look(api, tmp_path, env)
    assert exit_code == 1, output
    assert sim.stats()["tokens_issued"] == {PROJECT: 1}, "the token came from IAM mid-run"
    assert "policy denies token *** in this project" in output
    for secret in (TOKEN_PREFIX, PASSWORD):
        assert leaks(secret, output) == [], output
        assert {name: f for name, text in files.items() if (f := leaks(secret, text))} == {}
