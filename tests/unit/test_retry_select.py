"""Which targets `orchestrator retry` selects: a table over states, codes and projects."""

from __future__ import annotations

import pytest

from orchestrator.engine.retry_select import RetryRequest, select_for_retry
from orchestrator.errors import UsageError
from orchestrator.model import Target, TargetSpec, TargetState

S = TargetState
P1, P2 = "1" * 32, "2" * 32


def target(tid: int, state: TargetState, code: str | None = None, project: str = P1) -> Target:
    spec = TargetSpec(project, f"00000000-0000-4000-8000-{tid:012x}", "k", "u", tid)
    return Target(id=tid, spec=spec, state=state, error_code=code)


TARGETS = [
    target(1, S.FAILED, "Ecs.0605"),
    target(2, S.FAILED, "Ecs.0605", P2),
    target(3, S.FAILED, "Orchestrator.Unverified"),
    target(4, S.FAILED, "Orchestrator.JobTimeout", P2),
    target(5, S.PENDING),  # deferred (see DEFERRED)
    target(6, S.PENDING),  # never tried
    target(7, S.SUCCEEDED),
    target(8, S.IN_DOUBT),
    target(9, S.PENDING, "Common.0024", P2),  # deferred after throttling
]
DEFERRED = (5, 9)


@pytest.mark.parametrize(
    ("request_", "reopen", "again", "unverified_left"),
    [
        (RetryRequest(), (1, 2, 4), (), 1),
        (RetryRequest(checked_unverified=True), (1, 2, 3, 4), (), 0),
        (RetryRequest(error_codes=("Ecs.0605",)), (1, 2), (), 0),
        (RetryRequest(error_codes=("Ecs.0605", "Orchestrator.JobTimeout")), (1, 2, 4), (), 0),
        (RetryRequest(projects=(P2,)), (2, 4), (), 0),
        (RetryRequest(projects=(P1,), error_codes=("Ecs.0605",)), (1,), (), 0),
        (RetryRequest(error_codes=("Orchestrator.Unverified",)), (), (), 1),
        (RetryRequest("unverified", checked_unverified=True), (3,), (), 0),
        (RetryRequest("deferred"), (), (5, 9), 0),
        (RetryRequest("deferred", projects=(P2,)), (), (9,), 0),
        (RetryRequest("deferred", error_codes=("Common.0024",)), (), (9,), 0),
    ],
)
def test_selection(
    request_: RetryRequest, reopen: tuple[int, ...], again: tuple[int, ...], unverified_left: int
) -> None:
    plan = select_for_retry(TARGETS, DEFERRED, request_)

    assert (plan.reopen, plan.deferred, plan.unverified_left) == (reopen, again, unverified_left)
    assert plan.ids == reopen + again


def test_unverified_needs_the_explicit_flag() -> None:
    with pytest.raises(UsageError, match="--i-checked-unverified"):
        RetryRequest("unverified").check()
    RetryRequest("unverified", checked_unverified=True).check()


def test_describe_names_every_flag() -> None:
    request = RetryRequest("failed", ("Ecs.0605",), (P1,), True)
    assert request.describe() == (
        f"--state-is failed --error-code Ecs.0605 --only-project {P1} --i-checked-unverified"
    )
