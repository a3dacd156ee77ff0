"""The failure table and the hints, row by row, checked against the API reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.rollout.failures import (
    CANARY_ACTIONS,
    FAILURE_TABLE,
    FLOW_CONTROL_CODES,
    HINTS,
    canary_hint,
    counts_as_failure,
    hint,
)

ERROR_CODES = Path("/work/shared/reference/api-ref/error_codes.rst")


@pytest.mark.parametrize(
    ("code", "counts"),
    [
        # Flow control: "slower", never a failure.
        ("Common.1503", False),
        ("Common.0024", False),
        ("Ecs.0603", False),
        # Refusals that concern the server.
        ("Ecs.0605", True),
        ("Ecs.0105", True),
        ("Ecs.0100", True),
        ("Ecs.0314", True),
        ("Ecs.0114", True),
        ("Ecs.0614", True),
        ("Common.0018", True),
        # The orchestrator's own verdicts.
        ("Orchestrator.ServerError", True),
        ("Orchestrator.Unverified", True),
        ("Orchestrator.NotVerified", True),
        ("Orchestrator.JobTimeout", True),
        # A job FAIL's code, an unknown code, or none: a failure.
        ("Ecs.9999", True),
        ("unknown", True),
        (None, True),
    ],
)
def test_counts_as_failure(code: str | None, counts: bool) -> None:
    assert counts_as_failure(code) is counts


def test_only_flow_control_never_counts() -> None:
    never = {code for code, rule in FAILURE_TABLE.items() if not rule.counts}
    assert never == FLOW_CONTROL_CODES


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("Ecs.0114", "project ID"),
        ("Ecs.0100", "--stop-server"),
        ("Ecs.0314", "key pair does not exist in that project"),
        ("Ecs.0605", "locked"),
    ],
)
def test_hints(code: str, words: str) -> None:
    found = hint(code)
    assert found is not None and words in found


def test_no_hint_where_the_code_says_nothing() -> None:
    assert hint(None) is None
    assert hint("Ecs.9999") is None
    assert hint("Common.1503") is None


def test_a_missing_canary_is_named_and_never_blamed_on_the_project_id() -> None:
    said = canary_hint([("p1", "srv-1", "Ecs.0114")])
    assert said is not None and "project ID" not in said
    assert said.startswith("canary server p1/srv-1: the server does not exist (Ecs.0114): ")
    assert "not in this project, or was deleted" in said


def test_canary_hints_group_by_code_name_three_and_count_the_rest() -> None:
    failures = [("p1", f"srv-{n}", "Ecs.0100") for n in range(5)]
    failures += [("p2", "srv-9", None), ("p2", "srv-8", "Job.7777")]
    said = canary_hint(failures)
    assert said is not None
    running, no_code, unknown = said.split("; ")
    assert running.startswith("canary servers p1/srv-0, p1/srv-1, p1/srv-2 and 2 more: ")
    assert running.endswith(CANARY_ACTIONS["Ecs.0100"])
    assert no_code == "canary server p2/srv-9: the reinstall failed (no code)"
    assert unknown == "canary server p2/srv-8: the reinstall failed (Job.7777)"
    assert canary_hint([]) is None


@pytest.mark.skipif(not ERROR_CODES.exists(), reason="API reference not on this machine")
def test_ecs_and_common_codes_exist_in_the_reference() -> None:
    # A typo in a code would silently make it "unknown" (counted, no hint).
    text = ERROR_CODES.read_text(encoding="utf-8")
    listed = set(re.findall(r"\b((?:Ecs|Common)\.\d{4})\b", text))
    ours = {
        c for c in [*FAILURE_TABLE, *HINTS, *CANARY_ACTIONS] if not c.startswith("Orchestrator.")
    }
    assert ours <= listed, ours - listed
