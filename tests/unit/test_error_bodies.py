"""How an answer's body is read: the error shapes, row by row.

`error_of` reads the shapes the official SDK reads, in its order.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.cloud.answers import Answer, error_of

SERVER = "00000000-0000-4000-8000-000000000001"
GW = "APIGW.0308"


@pytest.mark.parametrize(
    ("payload", "read"),
    [
        # The API gateway's flat shape.
        ({"error_code": GW, "error_msg": "throttled", "request_id": "x"}, (GW, "throttled")),
        ({"error_code": "APIGW.0301", "error_msg": None}, ("APIGW.0301", "")),
        # Flat code and message; a number is a code too.
        ({"code": "Ecs.0114", "message": "gone"}, ("Ecs.0114", "gone")),
        ({"code": 400, "message": "bad"}, ("400", "bad")),
        # The ECS service's nested shape, and Nova's fault names (any key).
        ({"error": {"code": "Ecs.0605", "message": "locked"}}, ("Ecs.0605", "locked")),
        ({"error": {"message": "no code"}}, ("", "no code")),
        ({"badRequest": {"code": 400, "message": "no marker"}}, ("400", "no marker")),
        ({"itemNotFound": {"code": 404, "message": "not found"}}, ("404", "not found")),
        # The SDK's order: the flat gateway shape first.
        ({"error_code": GW, "error_msg": "a", "error": {"code": "X.1", "message": "b"}}, (GW, "a")),
        # Text is cleaned like any text from an answer.
        ({"error_code": "Ecs.\x1b[31m", "error_msg": "a\x00b"}, ("Ecs.\\x1b[31m", "a\\x00b")),
    ],
)
def test_error_shapes_are_read(payload: dict[str, Any], read: tuple[str, str]) -> None:
    assert error_of(payload) == read


@pytest.mark.parametrize(
    "payload",
    [
        # A job's own outcome: error_code without error_msg.
        {"status": "FAIL", "error_code": "Ecs.0101", "fail_reason": "disk"},
        {"status": "SUCCESS", "error_code": None, "fail_reason": None},
        {"error_code": "", "error_msg": "empty code"},
        {"code": True, "message": "a bool is no code"},
        {"code": "Ecs.0114"},  # no message
        # Answers that carry no error: a server (its fault is two levels down), a list.
        {"server": {"id": SERVER, "fault": {"code": 500, "message": "x"}}},
        {"count": 1, "servers": [{"code": "x", "message": "y"}]},
        {"job_id": "abc"},
        [],
        "text",
        None,
    ],
)
def test_what_is_no_error_body(payload: Any) -> None:
    assert error_of(payload) is None


@pytest.mark.parametrize(
    ("status", "payload", "throttled", "auth_refused"),
    [
        (429, None, True, False),
        (429, {"error_code": "APIGW.0308", "error_msg": "x"}, True, False),
        (400, {"code": "APIGW.0308", "message": "x"}, True, False),
        (200, {"overLimit": {"code": "APIGW.0308", "message": "x"}}, True, False),
        (202, {"error_code": "Common.0024", "error_msg": "x"}, True, False),
        (200, {"error_code": "Common.0024", "error_msg": "x"}, False, False),
        (401, None, False, True),
        (403, {"error_code": "APIGW.0307", "error_msg": "x"}, False, True),
        (400, {"error": {"code": "APIGW.0301", "message": "x"}}, False, True),
        (403, {"error": {"code": "Pdp.0001", "message": "x"}}, False, False),
    ],
)
def test_throttled_and_refused_credentials_by_status_or_code(
    status: int, payload: Any, throttled: bool, auth_refused: bool
) -> None:
    answer = Answer(status, {}, payload)
    assert (answer.throttled, answer.auth_refused) == (throttled, auth_refused)
