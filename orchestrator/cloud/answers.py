"""Reading the ECS API's answers: status, headers and raw body in; a result or an ApiError out.

    answer_of(kind, status, headers, raw)  the body parsed once (or NOT_JSON), size checked
    reinstall_outcome(answer, where)       -> job_id
    job_outcome(answer, job_id, where)     -> JobView
    server_outcome(answer, server_id, where) -> ServerView
    classify(kind, status, headers, raw, subject, where)   the three above in one call
    server_page_outcome(answer, page, limit, where)  -> ServerPage   (the v1 list)
    server_changes_outcome(answer, limit, where)     -> ServerChanges (Nova's list)
    no_answer(kind, why)                   the error of a request sent and never answered
    error_of(payload)                      (code, message) of an error body, in any of
                                           the three shapes the service, its gateway
                                           and Nova write (see there)
    stated_limit(message)                  the gateway's "limit:N,time:1 minute"

The views these return, and `service_text`, the one cleaning of every string taken
from an answer, are in `orchestrator.cloud.views`.

Pure functions: nothing here sends, counts or sleeps (the client does), so every
answer the service can give is classified the same way whoever asks, and a fuzz
test can throw any bytes at it. Whatever an answer holds, the only exceptions
raised are `orchestrator.errors`' ApiErrors: an answer that cannot be used is a
bad answer for one target, never an internal error of the run.

What a hostile or broken service can put in an answer, and what becomes of it:

    a body that is not JSON, is nested deeper   NOT_JSON: classified as any unreadable
    than MAX_DEPTH, or has a number Python      answer (OutcomeUnknown after a reinstall,
    will not convert                            BadResponse or RetryLater for a read)
    a body over MAX_BODY_BYTES (a list's:       BadResponse
    MAX_LIST_BODY_BYTES)
    a field of the wrong type                   as a missing field
    text with unpaired surrogates, NUL and      `service_text`: surrogates and control
    other control characters, a quoted secret   characters replaced, secrets blanked, cut
                                                to the field's length, before anything
                                                stores, logs or shows it
    a Retry-After of nan, inf or junk           ignored (nan) or bounded
    a stated limit of 0, huge, over a day       ignored (`stated_limit`)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qs, urlsplit

from orchestrator.cloud.views import (
    JobView,
    ServerChanges,
    ServerPage,
    ServerView,
    TraceView,
    job_view,
    optional_text,
    plain_id,
    server_view,
    service_text,
)
from orchestrator.errors import (
    AccountRefused,
    ApiError,
    AuthFailed,
    BadResponse,
    CommandUnderWay,
    NotFound,
    OutcomeUnknown,
    ProjectRefused,
    Rejected,
    RetryLater,
    ServiceBusy,
    Throttled,
    WrongEndpoint,
)

MAX_BODY_BYTES: Final = 1 << 20  # a job or server answer is a few KiB; more is hostile
# A list page holds up to 1,000 servers of a few KiB each (the reference's example
# shows about 3 KiB per server).
MAX_LIST_BODY_BYTES: Final = 32 << 20
# ECS answers are at most six levels deep; deeper is hostile, and a few hundred
# levels would exhaust Python's recursion limit in whatever walks the value next.
MAX_DEPTH: Final = 32
# The job statuses the engine knows: the reference's four, and PENDING_PAYMENT (a
# yearly/monthly server's order awaiting payment). Any other status is passed on as
# the service wrote it (cleaned), for the engine to report: never guessed at here.
JOB_STATUSES: Final = frozenset({"INIT", "RUNNING", "SUCCESS", "FAIL", "PENDING_PAYMENT"})
ENDED_JOB_STATUSES: Final = frozenset({"SUCCESS", "FAIL"})
# The service's own error codes look like Ecs.0114 or Common.0011; a 404 without
# one comes from something else on the path (a wrong endpoint, a gateway).
SERVICE_CODE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*\.[0-9]{3,5}")
MAX_RETRY_AFTER: Final = 300.0
# Codes that mean "slower" whatever the HTTP status says: the API gateway's
# throttling (it answers before the service, so nothing was acted on).
THROTTLE_CODES: Final = frozenset({"APIGW.0308"})
# "limit:N,time:1 minute" in the gateway's throttling message: how many calls it lets
# through in which window. Bounded repeats and no nesting, so any text is scanned in
# linear time. ASCII only: int() would read other scripts' digits, and a Unicode
# case-insensitive match would take "ſecond" (long s) for "second".
_STATED_LIMIT = re.compile(
    r"\blimit *: *([0-9]{1,9}) *, *time *: *([0-9]{1,4}) *(second|minute|hour|day)s?\b",
    re.IGNORECASE | re.ASCII,
)
_UNIT_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_STATED_CALLS: Final = 1_000_000  # a gateway's limit per window is far below this
MAX_STATED_WINDOW: Final = 86400  # seconds: the gateway's longest window is a day
# The API gateway refused the credentials (failed authentication, expired token):
# nothing was acted on, and every request with them will be refused alike.
AUTH_CODES: Final = frozenset({"APIGW.0301", "APIGW.0307"})
# The API gateway has no such API at this endpoint (a 404 with a code: not a missing
# server).
API_NOT_FOUND: Final = "APIGW.0101"
# The account is refused (frozen, no permission, no balance): answered 400 or 403, and
# the same for every server, project and credential of it. No renewal cures it.
ACCOUNT_CODES: Final = frozenset({"Ecs.0003"})


class _NotJson:
    """Marks an answer body that is not usable JSON."""

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJson()


def parse_body(raw: bytes) -> Any:
    """The JSON value of a body: None when empty, NOT_JSON when it is not usable JSON."""
    if not raw:
        return None
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return NOT_JSON
    return NOT_JSON if too_deep(raw, payload) else payload


def too_deep(raw: bytes, payload: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `payload` (parsed from `raw`) nests lists and objects deeper than `limit`."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot be deeper than it has brackets: most answers stop here
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer as read: its status, the headers of a refusal, the parsed body."""

    status: int
    headers: Mapping[str, str]
    payload: Any  # a JSON value, None for an empty body, or NOT_JSON

    @property
    def code(self) -> str | None:
        """The service's error code, if the body carries an error."""
        error = error_of(self.payload)
        return error[0] if error else None

    @property
    def throttled(self) -> bool:
        """429, the gateway's APIGW.0308, or the 202 Common.0024 the reinstall API
        answers when flow-limited."""
        if self.status == 429:
            return True
        code = self.code
        return code in THROTTLE_CODES or (self.status == 202 and code == "Common.0024")

    @property
    def stated_limit(self) -> StatedLimit | None:
        """The limit a throttling answer names (the gateway's APIGW.0308 does), if any."""
        if not self.throttled:
            return None
        error = error_of(self.payload)
        return stated_limit(error[1]) if error else None

    @property
    def auth_refused(self) -> bool:
        """401, or the gateway's refusal of the credentials (APIGW.0301, APIGW.0307)."""
        return self.status == 401 or self.code in AUTH_CODES


def body_cap(kind: str) -> int:
    """The largest body an answer to a `kind` request may have."""
    return MAX_LIST_BODY_BYTES if kind == "list" else MAX_BODY_BYTES


def answer_of(kind: str, status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
    """The answer to a `kind` request (reinstall, job, server, list), its body parsed."""
    cap = body_cap(kind)
    if len(raw) > cap:
        raise BadResponse(f"{kind}: answer body larger than {cap} bytes", status=status)
    return Answer(status, headers, parse_body(raw))


# -- the three calls ----------------------------------------------------------------------


def reinstall_outcome(answer: Answer, where: str) -> str:
    """The job id a reinstall was given, or the error that says what to do next."""
    _check_endpoint(answer, where)
    status, payload = answer.status, answer.payload
    if status in (200, 202, 204) and isinstance(payload, dict):
        # A job id first, whatever else the body says: it proves the service took the
        # request, and calling it throttling would send a second reinstall later.
        job_id = payload.get("job_id")
        if isinstance(job_id, str) and plain_id(job_id):
            return job_id
        error = error_of(payload)
        if status == 202 and error and error[0] == "Common.0024":
            raise Throttled("flow limit exceeded (202 Common.0024)", status=202, code=error[0])
        if answer.throttled:  # the gateway's code under a success status, and no job
            raise failure(answer, acted_unknown=True, where=where)
        # Delivered, maybe: a success status without a job id proves nothing.
        raise OutcomeUnknown(f"HTTP {status} without a usable job_id", status=status)
    refusal = failure(answer, acted_unknown=True, where=where)
    if isinstance(refusal, ServiceBusy):
        # "Other commands are being executed" on this server: the command may be an
        # earlier reinstall of ours, queued, and a retry landing after it ends would
        # be a second one. Settled from the server, never retried blindly.
        raise CommandUnderWay(
            f"{refusal}: a command is under way on this server, maybe an earlier reinstall"
            " of this run; settled from the server, not sent again blindly",
            status=refusal.status,
            code=refusal.code,
        )
    raise refusal


def job_outcome(answer: Answer, job_id: str, where: str) -> JobView:
    _check_endpoint(answer, where)
    status, payload = answer.status, answer.payload
    if status == 200 and isinstance(payload, dict) and error_of(payload) is None:
        return job_view(job_id, payload)
    if answer.code == "Common.0011":
        raise NotFound(
            "the service does not know this job (Common.0011)",
            status=status,
            code="Common.0011",
        )
    raise failure(answer, acted_unknown=False, where=where)


def server_outcome(answer: Answer, server_id: str, where: str) -> ServerView:
    _check_endpoint(answer, where)
    payload = answer.payload
    if answer.status == 200 and isinstance(payload, dict):
        server = payload.get("server")
        if isinstance(server, dict):
            return server_view(server_id, server)
    raise failure(answer, acted_unknown=False, where=where)


def server_page_outcome(answer: Answer, page: int, limit: int, where: str) -> ServerPage:
    """A page of the v1 list: its servers and `count`, or the error the answer stands for."""
    _check_endpoint(answer, where)
    payload = answer.payload
    if answer.status == 200 and isinstance(payload, dict) and error_of(payload) is None:
        count = payload.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise BadResponse("server list answer has no usable count", status=200)
        servers = _server_views(payload.get("servers"), limit)
        return ServerPage(servers, page, limit, count)
    raise failure(answer, acted_unknown=False, where=where)


def traces_outcome(answer: Answer, where: str) -> list[TraceView]:
    """The traces of a CTS trace query, or the error that says what to do next."""
    payload = answer.payload
    if answer.status != 200:
        raise failure(answer, acted_unknown=False, where=where)
    traces = payload.get("traces") if isinstance(payload, dict) else None
    if not isinstance(traces, list):
        raise BadResponse("trace query: no 'traces' list in the answer", status=answer.status)
    views = []
    for trace in traces:
        if not isinstance(trace, dict):
            continue
        name, at, code = trace.get("trace_name"), trace.get("time"), trace.get("code")
        views.append(
            TraceView(
                name=optional_text(name, 64) or "" if isinstance(name, str) else "",
                time_ms=at if isinstance(at, int) and not isinstance(at, bool) else None,
                code=optional_text(str(code), 8) if isinstance(code, str | int) else None,
            )
        )
    return views


def server_changes_outcome(answer: Answer, limit: int, where: str) -> ServerChanges:
    """A page of Nova's list: its servers and the marker of the next page, if any."""
    _check_endpoint(answer, where)
    payload = answer.payload
    if answer.status == 200 and isinstance(payload, dict) and error_of(payload) is None:
        servers = _server_views(payload.get("servers"), limit)
        next_marker = _next_marker(payload.get("servers_links"))
        if (
            next_marker is None
            and limit
            and len(servers) == limit
            and "servers_links" not in payload
        ):
            # A full page without links: a service that leaves them out. The last
            # server is where the next page starts (at worst, one more empty read).
            next_marker = servers[-1].server_id
        return ServerChanges(servers, next_marker)
    raise failure(answer, acted_unknown=False, where=where)


def _server_views(value: Any, limit: int) -> tuple[ServerView, ...]:
    """The `servers` of a list answer, each read as the single read's `server`."""
    if not isinstance(value, list):
        raise BadResponse("server list answer has no servers list", status=200)
    if len(value) > limit:
        raise BadResponse(
            f"server list answer has {len(value)} servers, more than the {limit} asked for",
            status=200,
        )
    views = []
    for server in value:
        server_id = server.get("id") if isinstance(server, dict) else None
        if not isinstance(server_id, str) or not plain_id(server_id):
            # Skipping it could hide a server from the caller: the page is unusable.
            raise BadResponse("server list answer has a server without a usable id", status=200)
        views.append(server_view(server_id, server))
    return tuple(views)


def _next_marker(links: Any) -> str | None:
    """The `marker` of the "next" link of `servers_links`; None when there is none.

    Only the marker is taken: the link's own address is never followed (it names
    whatever host the service says)."""
    if links is None:
        return None
    if not isinstance(links, list):
        raise BadResponse("server list answer has unusable servers_links", status=200)
    for link in links:
        if not isinstance(link, dict) or link.get("rel") != "next":
            continue
        href = link.get("href")
        try:
            markers = (
                parse_qs(urlsplit(href).query).get("marker") if isinstance(href, str) else None
            )
        except ValueError:  # not a URL (an unclosed IPv6 bracket, say)
            markers = None
        if not markers or not plain_id(markers[-1]):
            raise BadResponse("server list answer has a next link without a usable marker")
        return markers[-1]
    return None


def classify(
    kind: str,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    subject: str,
    where: str,
) -> str | JobView | ServerView:
    """One answer of `kind` (reinstall, job, server) about `subject` (the job or
    server id; unused for a reinstall), as the client reads it."""
    answer = answer_of(kind, status, headers, raw)
    if kind == "reinstall":
        return reinstall_outcome(answer, where)
    if kind == "job":
        return job_outcome(answer, subject, where)
    return server_outcome(answer, subject, where)


def no_answer(kind: str, why: str) -> ApiError:
    """The error of a `kind` request that was sent (or may have been) and got no answer:
    a reinstall may have been acted on (settle it from the server); a read is asked
    again later."""
    message = f"{kind}: no answer ({why})"
    if kind == "reinstall":
        return OutcomeUnknown(message)
    return RetryLater(message)


def _check_endpoint(answer: Answer, where: str) -> None:
    code = answer.code
    if answer.status == 404 and code == API_NOT_FOUND:
        # The gateway knows no such API here: the URL is right, the API is not offered
        # (OTC eu-de documents the Cloud-Init reinstall, v2, and not v1). The same for
        # every target: the run stops, with what to try.
        raise WrongEndpoint(
            f"{where} answered HTTP 404 {API_NOT_FOUND} (API not found): {_not_offered(where)}",
            status=404,
            code=code,
            reached=True,
        )
    if answer.status == 404 and not (code and SERVICE_CODE.fullmatch(code)):
        # Only the service's own 404 says the server is missing; a bare one means
        # the URL is wrong, for every target alike. Named in full: the operator
        # must see which endpoint (or template) produced it.
        raise WrongEndpoint(
            f"{where} answered HTTP 404 without the ECS error body"
            f" ({snippet(answer.payload)}): is the endpoint (or --endpoint-template) right?",
            status=answer.status,
            reached=True,
        )


def _not_offered(where: str) -> str:
    """What to try when the gateway does not offer the API at `where`."""
    path = urlsplit(where).path
    if path.endswith("/reinstallos") and "/v1/" in path:
        return (
            "this API is not offered here: the reinstall without Cloud-Init (v1) is not"
            " published in this region; try --cloud-init (the v2 reinstall, for images"
            " with Cloud-Init), or check the endpoint"
        )
    if path.endswith("/reinstallos"):
        return (
            "this API is not offered here: the Cloud-Init reinstall (v2) is not published"
            " in this region; try without --cloud-init, or check the endpoint"
        )
    return (
        "this API is not offered at this endpoint: is the endpoint (or --endpoint-template) right?"
    )


def failure(answer: Answer, *, acted_unknown: bool, where: str = "") -> ApiError:
    """The error an answer that is not the call's result stands for."""
    status, payload = answer.status, answer.payload
    code, message = error_of(payload) or (None, "")
    summary = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if answer.throttled:
        return Throttled(summary, status=status, code=code, retry_after=retry_after(answer.headers))
    if status == 501 and code == "Ecs.0603":
        return ServiceBusy(
            summary, status=status, code=code, retry_after=retry_after(answer.headers)
        )
    if code in ACCOUNT_CODES and 400 <= status < 500:
        return AccountRefused(
            f"{summary}: the account is refused (frozen, or without permission or balance"
            " for ECS); nothing was done. Check the account (billing, frozen state,"
            " permissions) in the console, then resume",
            status=status,
            code=code,
        )
    if answer.auth_refused:
        return AuthFailed(summary, status=status, code=code)
    if status == 403:
        # A policy that denies ECS in one project (Pdp.0001), a frozen project:
        # that project's targets fail with the service's words, the others go on.
        return ProjectRefused(summary, status=status, code=code)
    if status == 404:
        if code and SERVICE_CODE.fullmatch(code):
            return NotFound(summary, status=status, code=code)
        return WrongEndpoint(
            f"{where} answered HTTP 404 without the ECS error body ({snippet(payload)}): "
            "is the endpoint (or --endpoint-template) right?",
            status=status,
            reached=True,
        )
    if 400 <= status < 500:
        return Rejected(summary, status=status, code=code)
    if status >= 500 or status in (200, 202, 204):
        # The reference warns that HTTP codes may not be accurate: a 5xx on a
        # reinstall does not prove it was not acted on.
        if acted_unknown:
            return OutcomeUnknown(summary, status=status, code=code)
        if payload is NOT_JSON or status < 500:
            return BadResponse(f"HTTP {status}: answer is not the expected JSON", status=status)
        return RetryLater(summary, status=status, code=code)
    if acted_unknown:
        return OutcomeUnknown(summary, status=status, code=code)
    return BadResponse(summary, status=status, code=code)


# -- the fields ----------------------------------------------------------------------------


def error_of(payload: Any) -> tuple[str, str] | None:
    """(code, message) of an error body, cleaned; None when the body is no error.

    The shapes, in the order the official SDK tries them:

        {"error_code": "APIGW.0308", "error_msg": "..."}   the API gateway (flat)
        {"code": "Ecs.0114", "message": "..."}             flat
        {"error": {"code": "Ecs.0114", "message": "..."}}  the ECS service
        {"badRequest": {"code": 400, "message": "..."}}    Nova: the fault's name
                                                           holds it (any key does)

    A job's own answer carries `error_code` without `error_msg`: that is its
    outcome, not an error body.
    """
    if not isinstance(payload, dict):
        return None
    flat = _flat_error(payload, "error_code", "error_msg")
    if flat is not None:
        return flat
    flat = _flat_error(payload, "code", "message")
    if flat is not None:
        return flat
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (
            service_text(code, 64) if code is not None else "",
            service_text(message or "", 500),
        )
    for value in payload.values():
        if isinstance(value, dict):
            nested = _flat_error(value, "code", "message")
            if nested is not None:
                return nested
    return None


def _flat_error(
    payload: Mapping[str, Any], code_key: str, message_key: str
) -> tuple[str, str] | None:
    """(code, message) when `payload` has both keys and a code that is text or a number."""
    code = payload.get(code_key)
    if message_key not in payload or isinstance(code, bool) or not isinstance(code, str | int):
        return None
    if code == "":
        return None
    return service_text(code, 64), service_text(payload.get(message_key) or "", 500)


def retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            if math.isnan(seconds):
                return None
            return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    return None


class StatedLimit(NamedTuple):
    """At most `calls` calls in any window of `seconds`, as the gateway states it."""

    calls: int
    seconds: int


def stated_limit(message: str) -> StatedLimit | None:
    """The limit a throttling message names ("... limit:20,time:1 minute"), or None when
    it names none that makes sense: no calls, more than a million, or a window longer
    than a day. The first one named counts; only the first 1,000 characters are read."""
    match = _STATED_LIMIT.search(message[:1000])
    if match is None:
        return None
    calls, count, unit = int(match[1]), int(match[2]), match[3].lower()
    seconds = count * _UNIT_SECONDS[unit]
    if not (1 <= calls <= MAX_STATED_CALLS and 1 <= seconds <= MAX_STATED_WINDOW):
        return None
    return StatedLimit(calls, seconds)


def snippet(payload: Any) -> str:
    if payload is None:
        return "empty body"
    if payload is NOT_JSON:
        return "not JSON"
    try:
        text = json.dumps(payload)
    except (ValueError, RecursionError):
        text = f"<{type(payload).__name__}>"
    return service_text(text, 120)
