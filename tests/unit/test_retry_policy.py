"""The retry table row by row, and the tenacity policy built from it."""

from __future__ import annotations

import random
import time

import pytest
from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from orchestrator.cloud.retry_policy import (
    Decision,
    RetrySettings,
    brief,
    call_retrying,
    decide,
    retrying,
    wait_retry_after,
)
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    NotFound,
    NotSent,
    OutcomeUnknown,
    Rejected,
    RetryLater,
    ServiceBusy,
    Throttled,
)

FAST = RetrySettings(attempts=4, max_delay=10.0, backoff_base=0.001, backoff_cap=0.002)


@pytest.mark.parametrize(
    ("exc", "decision"),
    [
        (Throttled("429", status=429, code="Common.1503", retry_after=1.0), Decision.RETRY),
        (Throttled("202", status=202, code="Common.0024"), Decision.RETRY),
        (ServiceBusy("501", status=501, code="Ecs.0603"), Decision.RETRY),
        (NotSent("connect refused"), Decision.RETRY),
        (RetryLater("HTTP 503", status=503), Decision.RETRY),
        (OutcomeUnknown("timeout after sending"), Decision.SETTLE),
        (BadResponse("not JSON", status=200), Decision.SETTLE),
        (AuthFailed("HTTP 401", status=401, code="Common.0013"), Decision.ABORT),
        (AuthFailed("HTTP 403", status=403), Decision.ABORT),
        (NotFound("HTTP 404", status=404, code="Ecs.0114"), Decision.FAIL),
        (NotFound("job", status=400, code="Common.0011"), Decision.FAIL),
        (Rejected("HTTP 400", status=400, code="Ecs.0605"), Decision.FAIL),
        # Anything not understood is never resent blindly: settle from the server.
        (ApiError("unclassified"), Decision.SETTLE),
        (RuntimeError("bug"), Decision.SETTLE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_decide(exc: BaseException, decision: Decision) -> None:
    assert decide(exc) is decision


def test_decide_covers_every_api_error_class() -> None:
    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    # Every class of the tree has exactly one decision and it is one of the four.
    for cls in subclasses(ApiError) | {ApiError}:
        assert decide(cls("x")) in set(Decision)
    # A refusal before acting is the only thing retried.
    retried = {cls for cls in subclasses(ApiError) if decide(cls("x")) is Decision.RETRY}
    assert retried == {cls for cls in subclasses(ApiError) if issubclass(cls, RetryLater)}


class Flaky:
    """An API call that fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def _run(policy: AsyncRetrying, call: Flaky) -> str:
    async for attempt in policy:
        with attempt:
            return await call()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "error_cls", [RetryLater, Throttled, ServiceBusy, NotSent], ids=lambda c: c.__name__
)
async def test_retry_later_is_retried_until_it_succeeds(error_cls: type[RetryLater]) -> None:
    call = Flaky(error_cls("first"), error_cls("second"))
    assert await _run(retrying(FAST), call) == "ok"
    assert call.calls == 3


@pytest.mark.parametrize("error_cls", [RetryLater, ServiceBusy, NotSent], ids=lambda c: c.__name__)
async def test_retry_later_gives_up_after_attempts_with_the_last_error(
    error_cls: type[RetryLater],
) -> None:
    errors = [error_cls(f"failure {n}") for n in range(1, 10)]
    call = Flaky(*errors)
    with pytest.raises(error_cls) as info:
        await _run(retrying(FAST), call)
    assert call.calls == FAST.attempts
    assert info.value is errors[FAST.attempts - 1]


@pytest.mark.parametrize(
    "error",
    [
        Rejected("HTTP 400", status=400, code="Ecs.0605"),
        NotFound("HTTP 404", status=404, code="Ecs.0114"),
        AuthFailed("HTTP 401", status=401),
        OutcomeUnknown("timeout after sending"),
        BadResponse("not JSON"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_other_errors_are_raised_at_once(error: BaseException) -> None:
    # Above all OutcomeUnknown: resending a reinstall that may have been accepted
    # would wipe the server twice.
    call = Flaky(error)
    with pytest.raises(type(error)) as info:
        await _run(retrying(FAST), call)
    assert info.value is error
    assert call.calls == 1


async def test_a_non_retryable_error_after_retries_stops_at_once() -> None:
    unknown = OutcomeUnknown("sent")
    call = Flaky(Throttled("t", retry_after=0.0), unknown, Throttled("again"))
    with pytest.raises(OutcomeUnknown) as info:
        await _run(retrying(FAST), call)
    assert info.value is unknown
    assert call.calls == 2


async def test_throttling_is_retried_past_the_attempt_count_until_max_delay() -> None:
    # Throttling means "slower", not "no": it does not use up the attempts.
    settings = RetrySettings(attempts=3, max_delay=0.3, backoff_base=0.01, backoff_cap=0.02)
    call = Flaky(*[Throttled(str(n), status=202, code="Common.0024") for n in range(1000)])
    start = time.monotonic()
    with pytest.raises(Throttled):
        await _run(retrying(settings), call)
    assert call.calls > settings.attempts
    assert time.monotonic() - start < 2.0


async def test_after_throttling_another_refusal_stops_once_attempts_are_spent() -> None:
    settings = RetrySettings(attempts=3, max_delay=10.0, backoff_base=0.001, backoff_cap=0.002)
    throttled = [Throttled(str(n)) for n in range(5)]
    busy = [ServiceBusy(str(n)) for n in range(5)]
    call = Flaky(*throttled, *busy)
    with pytest.raises(ServiceBusy):
        await _run(retrying(settings), call)
    # Five throttled tries did not count; the first busy one is already try six.
    assert call.calls == 6


async def test_max_delay_stops_retrying_before_attempts_run_out() -> None:
    settings = RetrySettings(attempts=100, max_delay=0.15, backoff_base=0.05, backoff_cap=0.05)
    call = Flaky(*[NotSent(str(n)) for n in range(100)])
    start = time.monotonic()
    with pytest.raises(NotSent):
        await _run(retrying(settings), call)
    elapsed = time.monotonic() - start
    assert 2 <= call.calls < 100
    assert elapsed < 2.0


def _state_after(exc: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    try:
        raise exc
    except BaseException as raised:
        state.set_exception((type(raised), raised, raised.__traceback__))
    return state


def _wait(cap: float = 0.002, base: float = 0.001) -> wait_retry_after:
    return wait_retry_after(wait_random_exponential(multiplier=base, max=cap), cap)


@pytest.mark.parametrize("asked", [0.5, 7.0, 120.0])
def test_wait_honours_retry_after_even_above_the_cap(asked: float) -> None:
    wait = _wait()
    for attempt in (1, 3, 8):
        assert wait(_state_after(Throttled("t", retry_after=asked), attempt)) == asked


@pytest.mark.parametrize(
    "error",
    [Throttled("t", retry_after=0.0), Throttled("t", retry_after=None), NotSent("x")],
    ids=["retry-after-0", "throttled-no-header", "not-sent"],
)
def test_without_a_longer_retry_after_the_wait_is_the_jittered_backoff(
    error: RetryLater,
) -> None:
    # Retry-After 0 must not turn into a hot loop: the backoff still applies.
    fallback = wait_random_exponential(multiplier=1.0, max=5.0)
    wait = wait_retry_after(fallback, 5.0)
    for attempt in range(1, 8):
        state = _state_after(error, attempt)
        random.seed(attempt)
        expected = fallback(state)
        random.seed(attempt)
        assert wait(state) == expected
        assert 0.0 <= expected <= min(5.0, 2.0**attempt)


def test_backoff_is_jittered_within_the_cap() -> None:
    wait = _wait(cap=0.5, base=0.1)
    waits = [wait(_state_after(NotSent("x"), 10)) for _ in range(100)]
    assert all(0.0 <= w <= 0.5 for w in waits)
    assert len(set(waits)) > 1  # full jitter, not a fixed delay


async def test_retrying_sleeps_what_the_service_asked() -> None:
    call = Flaky(Throttled("t", status=429, retry_after=0.25))
    start = time.monotonic()
    assert await _run(retrying(FAST), call) == "ok"
    elapsed = time.monotonic() - start
    assert call.calls == 2
    assert 0.24 <= elapsed < 2.0


def _scenarios() -> list[tuple[str, list[BaseException]]]:
    return [
        ("first try succeeds", []),
        ("retried then ok", [RetryLater("1"), NotSent("2")]),
        ("gives up after attempts", [ServiceBusy(str(n)) for n in range(10)]),
        ("outcome unknown at once", [OutcomeUnknown("sent")]),
        ("rejected at once", [Rejected("HTTP 400", status=400, code="Ecs.0605")]),
        ("unknown after a refusal", [Throttled("t", retry_after=0.0), OutcomeUnknown("sent")]),
        ("throttling does not count", [Throttled(str(n)) for n in range(5)] + [ServiceBusy("b")]),
        ("a bug", [ValueError("bug")]),
    ]


@pytest.mark.parametrize(("name", "errors"), _scenarios(), ids=[n for n, _ in _scenarios()])
async def test_call_retrying_decides_as_the_policy_does(
    name: str, errors: list[BaseException]
) -> None:
    # What the runner calls (`call_retrying`) makes the calls and ends with the outcome
    # of the policy itself (`retrying`).
    outcomes = []
    for runner in ("policy", "fast"):
        call = Flaky(*errors)
        try:
            if runner == "policy":
                result: object = await _run(retrying(FAST), call)
            else:
                result = await call_retrying(FAST, call)
        except Exception as exc:
            result = exc
        outcomes.append((call.calls, result))
    (policy_calls, policy_result), (fast_calls, fast_result) = outcomes
    assert fast_calls == policy_calls
    assert fast_result is policy_result or fast_result == policy_result == "ok"


def test_brief_settings_keep_everything_but_the_attempts() -> None:
    settings = RetrySettings(attempts=6, max_delay=7.0)
    short = brief(settings)
    assert (short.attempts, short.max_delay) == (3, 7.0)
    assert brief(settings) is short  # made once, not per query
    assert brief(RetrySettings(attempts=2)).attempts == 2
