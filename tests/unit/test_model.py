"""Target states: the transition table, checked pair by pair, and the reinstall body."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from orchestrator.model import (
    ACTIVE_STATES,
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    Target,
    TargetSpec,
    TargetState,
    check_transition,
    evolve,
)
from orchestrator.simulator.reinstall import parse_reinstall

S = TargetState

# The legal moves, written out from the life of a reinstall (not copied from the code):
# intent first, then an answer; anything uncertain goes through IN_DOUBT; final is final.
LEGAL: frozenset[tuple[TargetState, TargetState]] = frozenset(
    {
        (S.PENDING, S.SUBMITTING),  # intent made durable before sending
        (S.PENDING, S.FAILED),  # refused without sending (e.g. server gone)
        (S.SUBMITTING, S.SUBMITTED),  # job_id received
        (S.SUBMITTING, S.FAILED),  # 4xx: the service means it
        (S.SUBMITTING, S.IN_DOUBT),  # sent, no usable answer
        (S.SUBMITTING, S.PENDING),  # refused before acting (throttled, busy)
        (S.SUBMITTED, S.RUNNING),
        (S.SUBMITTED, S.SUCCEEDED),
        (S.SUBMITTED, S.FAILED),
        (S.SUBMITTED, S.IN_DOUBT),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.IN_DOUBT),
        (S.IN_DOUBT, S.PENDING),  # the server shows it was never accepted
        (S.IN_DOUBT, S.RUNNING),  # the server is rebuilding
        (S.IN_DOUBT, S.SUCCEEDED),
        (S.IN_DOUBT, S.FAILED),
        (S.PENDING, S.SKIPPED),  # --skip-reinstalled-since: relaunched since TIME
        (S.PENDING, S.IN_DOUBT),  # an earlier attempt shows on the server: settle it
    }
)

ALL_PAIRS = list(itertools.product(TargetState, repeat=2))


@pytest.mark.parametrize(("old", "new"), ALL_PAIRS, ids=[f"{o}->{n}" for o, n in ALL_PAIRS])
def test_check_transition_every_pair(old: TargetState, new: TargetState) -> None:
    assert ((old, new) in LEGAL) == (new in TRANSITIONS[old])
    if (old, new) in LEGAL:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(TargetState)


def test_illegal_transition_is_a_value_error() -> None:
    # Callers that guard against bad input with `except ValueError` still catch it.
    with pytest.raises(ValueError):
        check_transition(S.SUCCEEDED, S.PENDING)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_have_no_exits(final: TargetState) -> None:
    assert TRANSITIONS[final] == frozenset()
    for new in TargetState:
        with pytest.raises(IllegalTransition):
            check_transition(final, new)


def test_final_states_are_succeeded_failed_and_skipped() -> None:
    assert frozenset({S.SUCCEEDED, S.FAILED, S.SKIPPED}) == FINAL_STATES
    assert not (FINAL_STATES & ACTIVE_STATES)
    assert S.PENDING not in ACTIVE_STATES | FINAL_STATES


def test_only_pending_leads_to_submitting() -> None:
    # A reinstall is sent only after an intent from PENDING: nothing else may re-send.
    sources = {old for old, targets in TRANSITIONS.items() if S.SUBMITTING in targets}
    assert sources == {S.PENDING}


def test_every_state_can_reach_a_final_state() -> None:
    for start in TargetState:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & FINAL_STATES, start


def _spec(**changes: object) -> TargetSpec:
    fields: dict[str, object] = {
        "project_id": "0123456789abcdef0123456789abcdef",
        "server_id": "0b3a8a5c-6c9f-4c2a-9f59-6d1c1c2d3e4f",
        "keyname": "KeyPair-350b",
        "userid": "7e25b1da389f4697a79df3a0e5bd494e",
        "line": 2,
    }
    fields.update(changes)
    return TargetSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "byol", "expected_extra"),
    [
        (None, None, {}),
        ("withStopServer", None, {"mode": "withStopServer"}),
        (None, True, {"metadata": {"BYOL": "true"}}),
        (None, False, {"metadata": {"BYOL": "false"}}),
        ("withStopServer", True, {"mode": "withStopServer", "metadata": {"BYOL": "true"}}),
        ("withStopServer", False, {"mode": "withStopServer", "metadata": {"BYOL": "false"}}),
    ],
)
def test_reinstall_body_matches_the_seed_page(
    mode: str | None, byol: bool | None, expected_extra: dict[str, object]
) -> None:
    body = _spec(mode=mode, byol=byol).reinstall_body()
    # The seed's shape: {"os-reinstall": {"keyname", "userid", "metadata": {"BYOL"}, "mode"}}.
    assert body == {
        "os-reinstall": {
            "keyname": "KeyPair-350b",
            "userid": "7e25b1da389f4697a79df3a0e5bd494e",
            **expected_extra,
        }
    }
    # BYOL is a string in the API, never a JSON boolean.
    metadata = body["os-reinstall"].get("metadata", {})
    assert all(isinstance(v, str) for v in metadata.values())
    # And the simulator's request parser (which follows the same page) accepts it.
    parsed = parse_reinstall(json.dumps(body).encode())
    assert (parsed.keyname, parsed.mode) == ("KeyPair-350b", mode)
    assert parsed.byol == (None if byol is None else str(byol).lower())


def test_reinstall_body_leaves_out_extra_columns() -> None:
    body = _spec(extra={"owner": "team-web", "name": "srv-1"}, region="eu-de").reinstall_body()
    assert set(body["os-reinstall"]) == {"keyname", "userid"}


def test_target_key_and_finality() -> None:
    spec = _spec()
    assert spec.key == (spec.project_id, spec.server_id)
    running = Target(id=1, spec=spec, state=S.RUNNING)
    done = Target(id=1, spec=spec, state=S.SUCCEEDED)
    assert (running.project_id, running.server_id) == spec.key
    assert not running.is_final
    assert done.is_final


def test_evolve_is_dataclasses_replace_for_every_field() -> None:
    spec = TargetSpec("p1", "s1", "key", "root", 2)
    target = Target(7, spec, S.SUBMITTING, attempts=1, job_id="j0", wave=3)
    for index, f in enumerate(dataclasses.fields(Target)):
        value = f"value {index}"  # any value, only its place is checked
        assert evolve(target, **{f.name: value}) == dataclasses.replace(target, **{f.name: value})
    several = {"state": S.SUBMITTED, "job_id": "j1", "submitted_at": "now", "error_code": None}
    assert evolve(target, **several) == dataclasses.replace(target, **several)
    assert evolve(target) == target and evolve(target) is not target


def test_evolve_refuses_an_unknown_field() -> None:
    target = Target(1, TargetSpec("p", "s", "k", "u", 2), S.PENDING)
    with pytest.raises(TypeError, match="no field 'jobid'"):
        evolve(target, jobid="typo")
