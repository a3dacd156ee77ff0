"""The decision table for failed calls, row by row."""

from __future__ import annotations

import pytest

from orchestrator.engine.decisions import Act, Call, decide
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    CommandUnderWay,
    NotFound,
    NotSent,
    OutcomeUnknown,
    ProjectRefused,
    Rejected,
    ServiceBusy,
    Throttled,
    WrongEndpoint,
)


@pytest.mark.parametrize(
    ("call", "error", "act"),
    [
        (Call.REINSTALL, AuthFailed("401"), Act.CREDENTIALS),
        (Call.REINSTALL, WrongEndpoint("404"), Act.STOP),
        # 501 Ecs.0603: the command under way may be our own queued reinstall.
        (Call.REINSTALL, CommandUnderWay("501", status=501, code="Ecs.0603"), Act.DOUBT),
        (Call.REINSTALL, Throttled("429"), Act.DEFER),
        (Call.REINSTALL, NotSent("refused"), Act.DEFER),
        (Call.REINSTALL, ProjectRefused("403"), Act.FAIL),
        (Call.REINSTALL, Rejected("400"), Act.FAIL),
        (Call.REINSTALL, OutcomeUnknown("timeout"), Act.DOUBT),
        (Call.REINSTALL, BadResponse("junk"), Act.DOUBT),
        (Call.REINSTALL, ApiError("other"), Act.DOUBT),
        (Call.JOB, NotFound("Common.0011"), Act.FORGOTTEN),
        (Call.JOB, ServiceBusy("501"), Act.AGAIN),
        (Call.SERVER, ServiceBusy("501"), Act.AGAIN),
        (Call.SERVER, NotFound("gone"), Act.FAIL),
        (Call.PREFLIGHT, ServiceBusy("501"), Act.DEFER),
    ],
    ids=lambda v: getattr(v, "value", type(v).__name__),
)
def test_decide(call: Call, error: ApiError, act: Act) -> None:
    assert decide(call, error) is act
