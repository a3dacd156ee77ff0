"""One unusable answer is a bad answer for one target, on either store, run and resume alike.

A hostile ECS (and IAM) on 127.0.0.1 answers one server (or one project) with what
broke whole runs before, the others well:

    JSON nested 1,000 levels deep     RecursionError in the parser
    an error code "Ecs.\\udfff"        UnicodeEncodeError when the state was written
    a fail_reason with NUL, ESC, a    PostgreSQL refuses NUL in text; a terminal
    bidi override and a surrogate     takes ESC as a command
    an IAM token that is not latin-1  ValueError when the first request was made

Each run must finish with that target (or project) classified, every other target
succeeded, and nothing but cleaned text in the state; a resume must finish the same
way. Runs are in-process (`campaign.execute`) on a real SQLite file, and on a real
PostgreSQL when ORCH_TEST_PG is set (`new_location` is parametrized over both).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.campaign import Invocation, Result, execute, open_state
from orchestrator.engine.runner import RunSettings
from orchestrator.model import TargetState
from orchestrator.store import StateLocation

pytestmark = pytest.mark.timeout(90)

S = TargetState
PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
SERVERS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 5)]
OTHER_SERVERS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(11, 13)]
VICTIM = SERVERS[0]

SETTINGS = RunSettings(
    rate=50,
    poll_rate=200,
    first_poll=0.1,
    poll_cap=0.2,
    settle_delay=0.1,
    settle_quiet=0.5,
    job_timeout=5,
    drain_timeout=0.5,
    retry=RetrySettings(attempts=2, max_delay=1, backoff_base=0.01, backoff_cap=0.05),
    verify_within=1.0,  # a server that never shows itself back fails within seconds
    busy_recheck_delay=0.05,
)


@dataclass(frozen=True)
class Case:
    name: str
    way: dict[str, Any]  # HostileServer's fields
    victim: frozenset[TargetState]  # where the victim (or the victim project's) targets end
    code: str | None = None  # their error code, when failed
    iam: bool = False  # password authentication against the stub's IAM


CASES = [
    Case("job deep", {"job": "deep", "only": VICTIM}, frozenset({S.SUCCEEDED})),
    Case(
        "job FAIL with a surrogate in the code",
        {"job": "fail_surrogate_code", "only": VICTIM},
        frozenset({S.FAILED}),
        "Ecs.\ufffd",
    ),
    Case(
        "job FAIL with NUL and escapes in the reason",
        {"job": "fail_bad_reason", "only": VICTIM},
        frozenset({S.FAILED}),
        "Ecs.0101",
    ),
    Case(
        "job FAIL with NUL in the reason",
        {"job": "fail_nul_reason", "only": VICTIM},
        frozenset({S.FAILED}),
        "Ecs.0101",
    ),
    Case("reinstall answer deep", {"reinstall": "deep", "only": VICTIM}, frozenset({S.SUCCEEDED})),
    Case(
        "reinstall refused with a surrogate code",
        {"reinstall": "refused_in_bad_text", "only": VICTIM},
        frozenset({S.FAILED}),
        "Ecs.\ufffd",
    ),
    Case("server answer deep", {"server": "deep", "only": VICTIM}, frozenset({S.PENDING})),
    Case(
        "IAM answer deep for one project",
        {"iam": "deep", "iam_only": OTHER_PROJECT},
        frozenset({S.PENDING, S.FAILED}),
        iam=True,
    ),
    Case(
        "IAM token not latin-1 for one project",
        {"iam": "token_not_latin1", "iam_only": OTHER_PROJECT},
        frozenset({S.PENDING, S.FAILED}),
        iam=True,
    ),
]


def write_inventory(path: Path) -> Path:
    rows = ["project_id,server_id,keyname,userid"]
    rows += [f"{PROJECT},{sid},key-1,user-1" for sid in SERVERS]
    rows += [f"{OTHER_PROJECT},{sid},key-1,user-1" for sid in OTHER_SERVERS]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def run(
    api: HostileServer, tmp_path: Path, location: StateLocation, *, iam: bool, resume: bool
) -> Result:
    cloud = None
    if iam:
        cloud = CloudConfig(
            source="clouds.yaml",
            auth_type="password",
            cloud="hostile",
            auth_url=api.url + "/v3",
            username="alice",
            password="hostile-test-password",
            user_domain_name="Dom",
        )
    inv = Invocation(
        state_path=tmp_path / "fleet.state.sqlite",
        location=location,
        report_dir=tmp_path / "reports",
        settings=SETTINGS,
        inventory=None if resume else write_inventory(tmp_path / "fleet.csv"),
        endpoint=api.url,
        credentials=None if iam else TokenAuth("hostile-text-token"),
        cloud=cloud,
        live_progress=False,
    )
    store = open_state(inv)
    try:
        return await asyncio.wait_for(execute(inv, store), timeout=60)
    finally:
        store.close()


def clean(text: str | None) -> bool:
    """Text a store, a log and a terminal can all take: no controls, no surrogates,
    no bidi overrides."""
    return text is None or not any(
        unicodedata.category(c) in ("Cc", "Cs") or c in "\u202a\u202b\u202c\u202d\u202e"
        for c in text
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_one_unusable_answer_is_one_targets_problem(
    case: Case, new_location: Callable[..., Any], tmp_path: Path
) -> None:
    location = new_location()
    async with HostileServer(**case.way) as api:
        first = await run(api, tmp_path, location, iam=case.iam, resume=False)
        again = await run(api, tmp_path, location, iam=case.iam, resume=True)

    with location.open(readonly=True) as store:
        targets = list(store.iter_targets())
        details = {t.server_id: [e.detail for e in store.events(t.id)] for t in targets}
    victims = set(OTHER_SERVERS) if case.iam else {VICTIM}
    for t in targets:
        where = (t.server_id, t.state.value, t.error_code, t.fail_reason, details[t.server_id])
        if t.server_id in victims:
            assert t.state in case.victim, where
            if case.code is not None:
                assert t.error_code == case.code, where
            if t.state is S.FAILED:
                assert t.error_code and t.fail_reason, where
        else:
            assert t.state is S.SUCCEEDED, where
        assert clean(t.error_code) and clean(t.fail_reason), where
        assert all(clean(d) for d in details[t.server_id]), where
    # Each invocation ended through its outcome (an internal error would have raised).
    for result in (first, again):
        assert result.outcome.exit_code in (0, 1, 3)
        assert result.report is not None
    # Nothing reached the service twice: one reinstall per server at most.
    assert max(api.acted.values()) == 1, dict(api.acted)
    if case.iam:
        assert api.issued, "IAM was asked for tokens"
        assert not any(api.acted[s] for s in OTHER_SERVERS)
