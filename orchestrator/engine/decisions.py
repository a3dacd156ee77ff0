"""What the run does about a failed call: one table, asked by every path.

Retries happen first, inside the call (`orchestrator.cloud.retry_policy`: what was
refused before the service acted is sent again after a backoff); what an error
still means afterwards is decided here, by the call it ended and its class (the
first row that matches; subclasses come before their parents):

    call        error                          act
    ----------  -----------------------------  ------------------------------------------
    any         AuthFailed (401)               CREDENTIALS  stop the run (exit 2)
    any         RunCannotGoOn (bare 404,       STOP         stop the run (exit 2 for a
                unreachable, clock skewed)                  wrong configuration, else 3)
    preflight   NotFound (server missing)      FAIL         nothing sent
    preflight   any other                      DEFER        pending, for a later run
    reinstall   CommandUnderWay (501 Ecs.0603) DOUBT        a command is under way on the
                                                            server, maybe an earlier
                                                            reinstall of ours: settle it
                                                            from the server, never retry
    reinstall   RetryLater (still refused)     DEFER        nothing acted on: pending
    reinstall   Rejected (4xx meant)           FAIL         with the service's code
    reinstall   OutcomeUnknown, BadResponse    DOUBT        settle from the server
    job         NotFound (Common.0011)         FORGOTTEN    settle from the server
    job         any other                      AGAIN        asked again at the next poll
    server      NotFound (server gone)         FAIL
    server      any other                      AGAIN        read again at the next poll

A stop of the run (CREDENTIALS, STOP) on a reinstall puts its intent back to
pending: the request was refused before the service acted on it.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    CommandUnderWay,
    NotFound,
    OutcomeUnknown,
    Rejected,
    RetryLater,
    RunCannotGoOn,
)


class Call(StrEnum):
    PREFLIGHT = "preflight"  # the server read before a reinstall
    REINSTALL = "reinstall"  # the reinstall request, after its retries
    JOB = "job"  # a job query
    SERVER = "server"  # a server read while following, settling or verifying


class Act(StrEnum):
    CREDENTIALS = "credentials"  # the credentials are refused: stop the run
    STOP = "stop"  # the configuration or the network: stop the run
    FAIL = "fail"  # the target failed, with the error's code and message
    DEFER = "defer"  # back to pending, for a later run
    DOUBT = "doubt"  # sent, outcome unknown: settle from the server
    FORGOTTEN = "forgotten"  # the service no longer knows the job: settle from the server
    AGAIN = "again"  # a read that comes round again at the next poll


_RUN_STOPS: tuple[tuple[type[ApiError], Act], ...] = (
    (AuthFailed, Act.CREDENTIALS),
    (RunCannotGoOn, Act.STOP),
)

TABLE: dict[Call, tuple[tuple[type[ApiError], Act], ...]] = {
    Call.PREFLIGHT: (*_RUN_STOPS, (NotFound, Act.FAIL), (ApiError, Act.DEFER)),
    Call.REINSTALL: (
        *_RUN_STOPS,
        (CommandUnderWay, Act.DOUBT),
        (RetryLater, Act.DEFER),
        (Rejected, Act.FAIL),
        (OutcomeUnknown, Act.DOUBT),
        (BadResponse, Act.DOUBT),
        # Any other answer after sending proves nothing: settle it, never resend.
        (ApiError, Act.DOUBT),
    ),
    Call.JOB: (*_RUN_STOPS, (NotFound, Act.FORGOTTEN), (ApiError, Act.AGAIN)),
    Call.SERVER: (*_RUN_STOPS, (NotFound, Act.FAIL), (ApiError, Act.AGAIN)),
}


def decide(call: Call, error: ApiError) -> Act:
    """The act for `error` ending `call`: the first row of its table that matches."""
    for kind, act in TABLE[call]:
        if isinstance(error, kind):
            return act
    raise AssertionError(f"no row for {type(error).__name__} in {call}")  # ApiError is last
