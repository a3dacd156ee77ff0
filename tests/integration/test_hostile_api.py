"""Hostile answers from the API: the run never crashes and never lies about a target.

The orchestrator runs in-process (`campaign.execute`) against `hostile_server`, a
small aiohttp server on 127.0.0.1 that answers each of the three calls in a chosen
bad way: a 200 that is not JSON, a body over 1 MiB, JSON without a job_id, a job
with an unknown status or about another server, a server with fields missing.
Whatever the answers, no exception escapes `execute`, every target ends failed
with a reason, or succeeded because the server shows it, or is left pending / in
doubt with an event that says why, and the exit code follows from that.

Inventories whose IDs try to escape the URL path are refused with exit 2 before a
single request is sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_server import HostileServer

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.campaign import Invocation, Result, execute, open_state
from orchestrator.engine.runner import RunSettings
from orchestrator.model import FINAL_STATES, Target, TargetState
from orchestrator.store.records import Event
from orchestrator.store.sqlite import StateStore

pytestmark = pytest.mark.timeout(60)

PROJECT = "0123456789abcdef0123456789abcdef"
SERVERS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 5)]

SETTINGS = RunSettings(
    rate=50,
    poll_rate=200,
    first_poll=0.1,
    poll_cap=0.2,
    settle_delay=0.1,
    settle_quiet=0.5,
    job_timeout=3,
    drain_timeout=0.5,
    retry=RetrySettings(attempts=2, max_delay=1, backoff_base=0.01, backoff_cap=0.05),
    verify_within=1.0,  # a server that never shows itself back fails within seconds
    busy_recheck_delay=0.05,  # a server busy not by this run is read again, quickly
)

S = TargetState


@dataclass(frozen=True)
class Scenario:
    name: str
    reinstall: str = "ok"
    job: str = "ok"
    server: str = "ok"
    act: bool = True  # a reinstall POST rebuilds the server, whatever is answered
    outcome: frozenset[TargetState] = frozenset({S.SUCCEEDED})  # every target ends in one
    code: int = 0


SCENARIOS = [
    Scenario("baseline"),
    # The reinstall answer is junk, the server shows the rebuild: succeeded, once.
    Scenario("reinstall 200 not JSON", reinstall="not_json"),
    Scenario("reinstall body over 1 MiB", reinstall="huge"),
    Scenario("reinstall 200 {}", reinstall="no_job_id"),
    Scenario("reinstall 200 null", reinstall="null"),
    Scenario("reinstall job_id escaping the path", reinstall="job_id_escape"),
    Scenario("reinstall error object with 200", reinstall="error_in_200"),
    # The junk answer came from a service that did nothing: resent a few times, then
    # failed as Orchestrator.NotAccepted (the cap is stored, so it holds across resumes).
    Scenario(
        "reinstall 200 {} and nothing done",
        reinstall="no_job_id",
        act=False,
        outcome=frozenset({S.FAILED}),
        code=1,
    ),
    # Job answers that cannot be used: settled from the server.
    Scenario("job status WEIRD", job="weird_status"),
    Scenario("job about another server", job="other_server"),
    Scenario("job 200 not JSON", job="not_json"),
    Scenario("job body over 1 MiB", job="huge"),
    Scenario("job 200 {}", job="empty"),
    Scenario(
        "job FAIL without code or reason",
        job="fail_bare",
        outcome=frozenset({S.FAILED}),
        code=1,
    ),
    # (A job RUNNING past --job-timeout: test_a_job_past_the_timeout_is_failed_with_a_reason.)
    # Server answers that cannot be used before sending: nothing sent, left pending.
    Scenario("server 200 {}", server="empty", outcome=frozenset({S.PENDING}), code=3),
    Scenario("server not JSON", server="not_json", outcome=frozenset({S.PENDING}), code=3),
    Scenario("server about another id", server="other_id", outcome=frozenset({S.PENDING}), code=3),
    Scenario(
        "server rebuilding by someone else",
        server="rebuilding",
        outcome=frozenset({S.PENDING}),
        code=3,
    ),
    # A server answer without fields is usable before sending (nothing says it is
    # rebuilding), but after SUCCESS it cannot show the server back: not verified.
    Scenario(
        "server without fields",
        server="missing_fields",
        outcome=frozenset({S.FAILED}),
        code=1,
    ),
]


def write_inventory(path: Path, servers: list[str], project: str = PROJECT) -> Path:
    rows = ["project_id,server_id,keyname,userid"]
    rows += [f"{project},{sid},key-1,user-1" for sid in servers]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def run_against(api: HostileServer, tmp_path: Path) -> tuple[Result, Path]:
    inventory = write_inventory(tmp_path / "fleet.csv", SERVERS)
    inv = Invocation(
        state_path=tmp_path / "fleet.state.sqlite",
        report_dir=tmp_path / "reports",
        settings=SETTINGS,
        inventory=inventory,
        endpoint=api.url,
        credentials=TokenAuth("x"),
        live_progress=False,
    )
    store = open_state(inv)
    try:
        result = await asyncio.wait_for(execute(inv, store), timeout=30)
    finally:
        store.close()
    return result, inv.state_path


def explained(target: Target, events: list[Event]) -> str | None:
    """Why the target is where it is, or None if nothing says so."""
    if target.state is S.FAILED:
        return target.fail_reason if (target.error_code and target.fail_reason) else None
    if not events:
        return None
    last = events[-1]
    if target.state in (S.PENDING, S.IN_DOUBT) and not (
        "deferred" in last.detail or "doubt" in last.detail
    ):
        return None
    return last.detail or None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_hostile_answers_never_crash_the_run(scenario: Scenario, tmp_path: Path) -> None:
    async with HostileServer(
        reinstall=scenario.reinstall, job=scenario.job, server=scenario.server, act=scenario.act
    ) as api:
        result, state = await run_against(api, tmp_path)

    with StateStore.open(state, readonly=True) as store:
        targets = list(store.iter_targets())
        events = {t.id: store.events(t.id) for t in targets}
        counts = store.counts()

    # Every target is accounted for, and says why it is where it is.
    unexplained = [t.server_id for t in targets if explained(t, events[t.id]) is None]
    assert unexplained == [], {t.server_id: [e.detail for e in events[t.id]] for t in targets}
    assert {t.state for t in targets} <= scenario.outcome, [
        (t.state.value, events[t.id][-1].detail if events[t.id] else None) for t in targets
    ]
    incomplete = any(n for s, n in counts.items() if s not in FINAL_STATES)
    expected_code = 3 if incomplete else (1 if counts[S.FAILED] else 0)
    assert result.outcome.exit_code == expected_code == scenario.code

    # The report was written and agrees with the state file.
    assert result.report is not None
    summary = json.loads(result.report.summary_json.read_text())
    assert summary["counts"] == {s.value: n for s, n in counts.items()}

    # A succeeded target's server really was rebuilt, exactly once; nothing was sent
    # again once the service had given a job id; no request left the API's paths.
    for t in targets:
        if t.state is S.SUCCEEDED:
            assert api.acted[t.server_id] == 1, t.server_id
    assert api.posts_after_job_id() == {}
    assert [r.path for r in api.requests if r.kind == "unknown" or ".." in r.path] == []
    assert max(api.acted.values(), default=0) <= 1, dict(api.acted)


# -- a job id, then silence: the server is all there is to go by ---------------------------


@pytest.mark.parametrize("server", ["ok", "no_launched_at", "missing_fields"])
async def test_a_reinstall_given_a_job_id_is_never_sent_again(server: str, tmp_path: Path) -> None:
    """The service accepted the reinstall (a job id proves it); the job cannot be read.

    Whatever the server shows afterwards, the reinstall must not be sent a second time:
    a server wrongly taken as reinstalled is reported; one wrongly taken as untouched
    is wiped twice.
    """
    async with HostileServer(job="weird_status", server=server) as api:
        await run_against(api, tmp_path)
    assert api.posts_after_job_id() == {}, f"reinstalls sent again: {dict(api.acted)}"
    assert max(api.acted.values()) == 1


async def test_a_forgotten_job_is_settled_from_the_server(tmp_path: Path) -> None:
    """Common.0011 for a job the service handed out: the server shows it was rebuilt."""
    async with HostileServer(job="forgotten") as api:
        result, state = await run_against(api, tmp_path)

    assert result.outcome.exit_code == 0
    assert dict(api.acted) == dict.fromkeys(SERVERS, 1)
    with StateStore.open(state, readonly=True) as store:
        for target in store.iter_targets():
            details = [e.detail for e in store.events(target.id)]
            assert target.state is S.SUCCEEDED, details
            assert any("no longer knows job" in d for d in details), details
            assert "settled: accepted and finished" in details[-1], details


@pytest.mark.parametrize("server", ["ok", "no_launched_at"])
async def test_a_dropped_answer_is_not_resent_to_a_server_that_may_have_taken_it(
    server: str, tmp_path: Path
) -> None:
    """The reinstall was acted on and its answer lost; the server then hides launched_at.

    settle.py's rule is to err towards "accepted" when the server cannot prove the
    contrary; a server without a launch time proves nothing.
    """
    async with HostileServer(reinstall="drop", server=server) as api:
        await run_against(api, tmp_path)
    assert dict(api.acted) == dict.fromkeys(SERVERS, 1), "reinstalls per server"


async def test_a_job_past_the_timeout_is_failed_with_a_reason(tmp_path: Path) -> None:
    async with HostileServer(job="running_forever") as api:
        result, state = await run_against(api, tmp_path)
    with StateStore.open(state, readonly=True) as store:
        targets = list(store.iter_targets())
    assert {t.error_code for t in targets} == {"Orchestrator.JobTimeout"}
    assert all("job-timeout" in (t.fail_reason or "") for t in targets)
    assert result.outcome.exit_code == 1


# -- IDs that try to escape the URL ------------------------------------------------------

GOOD_SERVER = SERVERS[0]
BAD_SERVER_IDS = {
    "dot-dot-slash": "../../../v1/x/cloudservers/y",
    "dot-dot-in-uuid": "00000000-0000-4000-8000-000000000001/../..",
    "percent-2F": "00000000-0000-4000-8000-0000%2F000001",
    "question-mark": "00000000-0000-4000-8000-00000000000?",
    "space": "00000000-0000-4000-8000-000000 00001",
    "cyrillic-a": "00000000-0000-4000-8000-00000000000\u0430",  # looks like a
    "cyrillic-e": "00000000-0000-4000-8000-00000000000\u0435",  # looks like e
    "fullwidth-digits": "\uff10\uff1000000-0000-4000-8000-000000000001",
    "hash": "00000000-0000-4000-8000-00000000000#",
}
BAD_PROJECT_IDS = {
    "project-dot-dot": "../0123456789abcdef0123456789ab",
    "project-percent": "0123456789abcdef0123456789a%2F",
    "project-fullwidth": "\uff10123456789abcdef0123456789abcdef",
    "project-cyrillic": "0123456789\u0430bcdef0123456789abcdef",
}


async def _cli(*args: str | Path, env: dict[str, str], cwd: Path) -> tuple[int, str]:
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
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, (out + err).decode(errors="replace")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD_"))}
    return {**env, "OS_AUTH_TOKEN": "x", "NO_PROXY": "127.0.0.1"}


@pytest.mark.parametrize(
    ("field", "bad"),
    [("server_id", v) for v in BAD_SERVER_IDS.values()]
    + [("project_id", v) for v in BAD_PROJECT_IDS.values()],
    ids=list(BAD_SERVER_IDS) + list(BAD_PROJECT_IDS),
)
async def test_ids_escaping_the_url_are_refused_before_any_request(
    field: str, bad: str, tmp_path: Path
) -> None:
    if field == "server_id":
        inventory = write_inventory(tmp_path / "fleet.csv", [GOOD_SERVER, bad])
    else:
        inventory = tmp_path / "fleet.csv"
        write_inventory(inventory, [GOOD_SERVER])
        with inventory.open("a", encoding="utf-8") as fh:
            fh.write(f"{bad},{SERVERS[1]},key-1,user-1\n")
    state = tmp_path / "s.sqlite"
    async with HostileServer() as api:
        code, output = await _cli(
            "run",
            inventory,
            "--endpoint",
            api.url,
            "--state",
            state,
            "--report-dir",
            tmp_path / "reports",
            "--no-live",
            env=_env(),
            cwd=tmp_path,
        )
    assert code == 2, output
    assert field in output and ":3" in output, output  # names the field and the line
    assert api.requests == []
    assert not state.exists()


async def test_a_json_inventory_with_an_escaping_id_is_refused_too(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.json"
    servers = [
        {"project_id": PROJECT, "server_id": GOOD_SERVER},
        {"project_id": PROJECT, "server_id": "../" + GOOD_SERVER},
    ]
    inventory.write_text(
        json.dumps({"defaults": {"keyname": "key-1", "userid": "user-1"}, "servers": servers})
    )
    async with HostileServer() as api:
        code, output = await _cli(
            "run",
            inventory,
            "--endpoint",
            api.url,
            "--state",
            tmp_path / "s.sqlite",
            "--report-dir",
            tmp_path / "reports",
            env=_env(),
            cwd=tmp_path,
        )
    assert code == 2, output
    assert "server_id" in output, output
    assert api.requests == []


async def test_a_failure_settled_from_the_server_keeps_the_jobs_own_code(tmp_path: Path) -> None:
    """Job answers unusable, so the target is settled from the server (ERROR); the job's
    own code (asked once more) is reported, not Orchestrator.ServerError."""
    async with HostileServer(job="unreadable_then_fail", server="error_after_acting") as api:
        result, state = await run_against(api, tmp_path)
    with StateStore.open(state, readonly=True) as store:
        targets = list(store.iter_targets())
    assert result.outcome.exit_code == 1
    assert {(t.state, t.error_code) for t in targets} == {(S.FAILED, "Ecs.0101")}
    assert all(t.fail_reason == "EcsException: the disk broke." for t in targets)


async def test_an_unknown_job_status_is_reported_and_settled_at_once(tmp_path: Path) -> None:
    """A job status the reference does not name: reported (the event and the target's
    reason name it) and settled from the server at the first answer; before, the job
    was asked again as if the answer were unreadable, five times per target."""
    async with HostileServer(job="weird_status") as api:
        result, state = await run_against(api, tmp_path)

    assert result.outcome.exit_code == 0
    assert dict(api.acted) == dict.fromkeys(SERVERS, 1)
    assert api.count("job") == len(SERVERS)
    with StateStore.open(state, readonly=True) as store:
        for target in store.iter_targets():
            details = [e.detail for e in store.events(target.id)]
            assert target.state is S.SUCCEEDED, details
            assert any(
                "reports status 'WEIRD', which this version does not know" in d for d in details
            ), details
