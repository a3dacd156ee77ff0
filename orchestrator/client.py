"""The ECS API client: three calls, and the one place transport errors are translated.

    reinstall(spec) -> job_id          POST /v1/{project}/cloudservers/{server}/reinstallos
                                       (/v2/... for a Cloud-Init target, with its user data)
    job(project, job_id) -> JobView    GET  /v1/{project}/jobs/{job_id}
    server(project, server) -> ServerView  GET /v1/{project}/cloudservers/{server}

The calls go over `orchestrator.http1`'s lean keep-alive pool, or through aiohttp's
session where a proxy is configured for the endpoint (CONNECT, proxy credentials).
Both transports' failures come here as `http1.ConnectFailed` (nothing was sent) or
`http1.NoAnswer` (maybe sent); nothing above this module sees either, or an aiohttp
exception: every failure becomes one of the errors in `orchestrator.errors`, chosen
by what the caller may do next.
For a reinstall the key question is whether the request could have been acted
on: a refusal (429, 202 Common.0024, 501 Ecs.0603, a failed connect) may be sent
again; a timeout, a dropped connection or a 5xx after sending may not.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from orchestrator import http1
from orchestrator.auth import Credentials
from orchestrator.clocks import ServiceClock
from orchestrator.endpoints import Endpoints
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    BadResponse,
    NotFound,
    NotSent,
    OutcomeUnknown,
    ProjectRefused,
    Rejected,
    RetryLater,
    ServiceBusy,
    Throttled,
    Unreachable,
    WrongEndpoint,
)
from orchestrator.model import TargetSpec, plain_id
from orchestrator.network import proxy_for, tls_for
from orchestrator.pacing import AdaptivePacing, RateLimiter, Unlimited
from orchestrator.reachability import Reachability

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a job or server answer is a few KiB; more is hostile
JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8", "Accept": "application/json"}
JOB_STATUSES = frozenset({"INIT", "RUNNING", "SUCCESS", "FAIL"})
# The service's own error codes look like Ecs.0114 or Common.0011; a 404 without
# one comes from something else on the path (a wrong endpoint, a gateway).
SERVICE_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]*\.[0-9]{3,5}")
# A reinstall goes only on a connection idle at most this long (seconds), else on a new
# one: on a connection the service is just closing it would get no answer, a doubt
# to settle from the server. Reads, which can simply be sent again, take any.
REINSTALL_FRESH_WITHIN = 1.0


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    status: str  # INIT, RUNNING, SUCCESS or FAIL
    server_id: str | None
    error_code: str | None
    fail_reason: str | None
    begin_time: str | None = None  # the job's own times, as the service reports them
    end_time: str | None = None
    # When the work began (its first sub-job's begin_time): the job may have waited
    # in INIT since begin_time. None where the answer does not say.
    started_time: str | None = None


@dataclass(frozen=True, slots=True)
class ServerView:
    server_id: str
    status: str | None
    vm_state: str | None
    task_state: str | None
    launched_at: str | None
    updated: str | None = None  # moves with every change of the server
    # Preflight evidence: None where the answer did not say.
    locked: bool | None = None  # `locked`: the service refuses a reinstall (Ecs.0605)
    system_disk: bool | None = None  # a system disk attached (none: Ecs.0105)


@dataclass(frozen=True)
class Timeouts:
    """How long one request may take: to connect, and in all (connect, send, answer).

    No separate read timeout: an answer of a few hundred bytes either comes or not.
    """

    connect: float = 10.0
    total: float = 30.0


class EcsClient:
    """Sends the three ECS calls over one connection pool, paced by the limiters given.

    `session` is the run's aiohttp session: its connection limit and TLS context are
    the pool's too, and requests through a proxy use it. `aclose` (or `async with`)
    closes the pool's connections; the session is its owner's to close.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials | None,
        *,
        submit_limiter: RateLimiter | Unlimited | None = None,
        poll_limiter: RateLimiter | Unlimited | None = None,
        timeouts: Timeouts | None = None,
        reachability: Reachability | None = None,
        adaptive: AdaptivePacing | None = None,
        user_data: str | None = None,
        service_clock: ServiceClock | None = None,
    ) -> None:
        """`adaptive` adds a limiter per API and endpoint whose rate follows the
        service's throttling, under `submit_limiter`/`poll_limiter` as ceilings.
        `user_data` (base64, checked by `orchestrator.userdata`) goes with every
        Cloud-Init reinstall; it is never logged."""
        self._session = session
        self._endpoints = endpoints
        self._credentials = credentials
        self._submit_limiter = submit_limiter or Unlimited()
        self._poll_limiter = poll_limiter or Unlimited()
        t = timeouts or Timeouts()
        self._timeouts = t
        self._timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)
        connector = session.connector
        self._pool = http1.Pool(
            limit=connector.limit if connector is not None and connector.limit else 100,
            tls=tls_for(session),
            max_body=MAX_BODY_BYTES,
        )
        self._adaptive = adaptive
        self.requests: Counter[str] = Counter()  # sent, by kind
        self.throttled = 0
        self.reachability = reachability or Reachability()
        self._user_data = user_data
        self._bases: dict[str, _Base] = {}
        # The service's clock, learned from the Date header of every answer.
        self.service_clock = service_clock or ServiceClock()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> EcsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the three calls ---------------------------------------------------

    async def reinstall(
        self,
        spec: TargetSpec,
        before_send: Callable[[], Awaitable[None]] | None = None,
        last_check: Callable[[], None] | None = None,
    ) -> str:
        """Send one reinstall; `before_send` runs once the pacer allows it (the runner
        commits its intent there); then the request waits for its send slot (see
        `RateLimiter.space`) and `last_check` runs right before it goes out: whatever
        it raises stops the send (the runner's stop while it waited there)."""
        path = f"/{spec.api}/{spec.project_id}/cloudservers/{spec.server_id}/reinstallos"
        body = json.dumps(spec.reinstall_body(self._user_data), separators=(",", ":")).encode()
        await self._pace("reinstall", spec.region, self._submit_limiter)
        if before_send is not None:
            await before_send()
        await self._space("reinstall", spec.region, self._submit_limiter)
        if last_check is not None:
            last_check()
        status, headers, payload = await self._send(
            "reinstall", "POST", spec.region, spec.project_id, path, body, unsent_is_unknown=True
        )
        if status in (200, 202, 204) and isinstance(payload, dict):
            error = _error_of(payload)
            if status == 202 and error and error[0] == "Common.0024":
                self.throttled += 1
                raise Throttled("flow limit exceeded (202 Common.0024)", status=202, code=error[0])
            job_id = payload.get("job_id")
            if isinstance(job_id, str) and plain_id(job_id):
                return job_id
            # Delivered, maybe: a success status without a job id proves nothing.
            raise OutcomeUnknown(f"HTTP {status} without a usable job_id", status=status)
        raise self._failure(status, headers, payload, acted_unknown=True, path=path)

    async def job(self, project_id: str, job_id: str, region: str | None = None) -> JobView:
        await self._pace("job", region, self._poll_limiter)
        await self._space("job", region, self._poll_limiter)
        path = f"/v1/{project_id}/jobs/{job_id}"
        status, headers, payload = await self._send("job", "GET", region, project_id, path, b"")
        if status == 200 and isinstance(payload, dict) and _error_of(payload) is None:
            return _job_view(job_id, payload)
        if _error_code(payload) == "Common.0011":
            raise NotFound(
                "the service does not know this job (Common.0011)",
                status=status,
                code="Common.0011",
            )
        raise self._failure(status, headers, payload, acted_unknown=False, path=path)

    async def server(
        self, project_id: str, server_id: str, region: str | None = None
    ) -> ServerView:
        await self._pace("server", region, self._poll_limiter)
        await self._space("server", region, self._poll_limiter)
        path = f"/v1/{project_id}/cloudservers/{server_id}"
        status, headers, payload = await self._send("server", "GET", region, project_id, path, b"")
        if status == 200 and isinstance(payload, dict) and isinstance(payload.get("server"), dict):
            return _server_view(server_id, payload["server"])
        raise self._failure(status, headers, payload, acted_unknown=False, path=path)

    def set_rates(self, submit: float, poll: float) -> None:
        """The configured ceilings now: --rate and --poll-rate, or this runner's share of
        them where several share a campaign."""
        self._submit_limiter.set_rate(submit)
        self._poll_limiter.set_rate(poll)

    def stop_sending(self, error: Callable[[], BaseException]) -> int:
        """A stop: every reinstall waiting for its send slot raises `error()` now instead
        of going out when its slot comes (see `RateLimiter.interrupt_spacing`)."""
        interrupted = 0
        if self._adaptive is not None:
            interrupted += self._adaptive.interrupt_spacing("reinstall", error)
        return interrupted + self._submit_limiter.interrupt_spacing(error)

    def adaptive_rates(self) -> dict[str, dict[str, float]]:
        """The adapted rate per API and endpoint ("reinstall eu-de"), for the live view and
        the report: the rate in force, its ceiling, throttling answers and cuts."""
        if self._adaptive is None:
            return {}
        return {
            f"{kind} {endpoint}": {
                "rate": round(c.rate, 2),
                "ceiling": c.ceiling,
                "throttles": c.throttles,
                "cuts": c.cuts,
            }
            for (kind, endpoint), c in sorted(self._adaptive.controllers().items())
        }

    # -- one request, errors translated ---------------------------------------

    async def _pace(self, kind: str, region: str | None, limiter: RateLimiter | Unlimited) -> None:
        # The adapted rate first: a token of the shared limiter is not held
        # while waiting for this API's own.
        if self._adaptive is not None:
            await self._adaptive.acquire(kind, _pacing_key(region))
        await limiter.acquire()

    async def _space(self, kind: str, region: str | None, limiter: RateLimiter | Unlimited) -> None:
        # The send slots, after whatever ran since the grant (the intent's commit):
        # a stall there releases many requests at once, and these spread them again.
        if self._adaptive is not None:
            await self._adaptive.space(kind, _pacing_key(region))
        await limiter.space()

    async def _send(
        self,
        kind: str,
        method: str,
        region: str | None,
        project_id: str,
        path: str,
        body: bytes,
        *,
        unsent_is_unknown: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        creds = self._credentials
        for attempt in (1, 2):
            if creds is not None:
                # IAM errors here (no token for this project, IAM unreachable) come
                # before anything is sent to ECS, so each is safe to send again later.
                await creds.prepare(project_id)
            catalog_url = None
            if creds is not None and self._endpoints.uses_catalog:
                catalog_url = creds.catalog_endpoint(project_id, region or self._endpoints.region)
            base_url = self._endpoints.for_region(region, catalog_url)
            sent_at = time.monotonic()
            status, resp_headers, raw, headers, date = await self._request(
                kind, method, base_url, path, project_id, body, unsent_is_unknown
            )
            self.service_clock.observe(date, sent_at, time.monotonic())
            # A 401 acted on nothing: renew the token once and send again.
            renewable = status == 401 and attempt == 1 and creds is not None
            if renewable and creds is not None and await creds.renew(project_id, headers):
                log.info("%s: HTTP 401 in project %s; token renewed", kind, project_id)
                continue
            break
        if len(raw) > MAX_BODY_BYTES:
            raise BadResponse(
                f"{kind}: answer body larger than {MAX_BODY_BYTES} bytes", status=status
            )
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                payload = _NotJson()
        if self._adaptive is not None and status < 500:
            throttled = status == 429 or (status == 202 and _error_code(payload) == "Common.0024")
            self._adaptive.on_answer(kind, _pacing_key(region), throttled, sent_at)
        code = _error_code(payload)
        if status == 404 and not (code and SERVICE_CODE.fullmatch(code)):
            # Only the service's own 404 says the server is missing; a bare one means
            # the URL is wrong, for every target alike. Named in full: the operator
            # must see which endpoint (or template) produced it.
            raise WrongEndpoint(
                f"{base_url}{path} answered HTTP 404 without the ECS error body"
                f" ({_snippet(payload)}): is the endpoint (or --endpoint-template) right?",
                status=status,
                reached=True,
            )
        return status, resp_headers, payload

    async def _request(
        self,
        kind: str,
        method: str,
        base_url: str,
        path: str,
        project_id: str,
        body: bytes,
        unsent_is_unknown: bool,
    ) -> tuple[int, dict[str, str], bytes, dict[str, str], str | None]:
        """Send once; returns status, answer headers (of a refusal), raw body, the
        headers sent and the answer's Date header."""
        if self.reachability.tripped:
            raise Unreachable(
                self.reachability.describe(base_url), reached=self.reachability.reached
            )
        base = self._bases.get(base_url)
        if base is None:
            base = self._bases[base_url] = _Base.of(self._session, base_url)
        if self._credentials is not None:  # a new dict: JSON_HEADERS is not touched
            headers = self._credentials.headers(
                method, base.origin.authority, path, project_id, body, JSON_HEADERS
            )
        else:
            headers = dict(JSON_HEADERS)
        self.requests[kind] += 1
        try:
            if base.proxy:
                status, resp_headers, raw, date = await self._via_session(
                    method, base, path, body, headers
                )
            else:
                answer = await self._pool.request(
                    base.origin,
                    method,
                    base.prefix + path,
                    headers,
                    body,
                    connect_timeout=self._timeouts.connect,
                    total_timeout=self._timeouts.total,
                    fresh_within=REINSTALL_FRESH_WITHIN if unsent_is_unknown else None,
                )
                status, raw = answer.status, answer.body
                # Only a refusal's headers are read (Retry-After).
                resp_headers = answer.headers if status >= 300 else {}
                date = answer.headers.get("date")
        except http1.ConnectFailed as exc:
            # The connection was never made: nothing reached the service.
            self.requests[kind] -= 1
            if self.reachability.failed(str(exc)):
                raise Unreachable(
                    self.reachability.describe(base_url), reached=self.reachability.reached
                ) from None
            raise NotSent(f"{kind}: cannot connect ({str(exc).partition(':')[0]})") from None
        except http1.NoAnswer as exc:
            # Sent, or maybe sent: the service may have acted on it.
            message = f"{kind}: no answer ({exc})"
            if unsent_is_unknown:
                raise OutcomeUnknown(message) from None
            raise RetryLater(message) from None
        self.reachability.answered()
        return status, resp_headers, raw, headers, date

    async def _via_session(
        self, method: str, base: _Base, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, str | None]:
        """One request through aiohttp (a proxy is configured), failures as http1's."""
        try:
            async with self._session.request(
                method,
                base.url.with_path(base.prefix + path, encoded=True),
                data=body if body else None,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                **base.proxy,
            ) as resp:
                raw = await read_capped(resp.content, MAX_BODY_BYTES + 1)
                answered = dict(resp.headers.items()) if resp.status >= 300 else {}
                return resp.status, answered, raw, resp.headers.get("Date")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise http1.ConnectFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise http1.NoAnswer(type(exc).__name__) from None

    def _failure(
        self,
        status: int,
        headers: dict[str, str],
        payload: Any,
        *,
        acted_unknown: bool,
        path: str = "",
    ) -> ApiError:
        code, message = _error_of(payload) or (None, "")
        summary = (
            f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        )
        if status == 429 or (status == 202 and code == "Common.0024"):
            self.throttled += 1
            return Throttled(summary, status=status, code=code, retry_after=_retry_after(headers))
        if status == 501 and code == "Ecs.0603":
            return ServiceBusy(summary, status=status, code=code, retry_after=_retry_after(headers))
        if status == 401:
            return AuthFailed(summary, status=status, code=code)
        if status == 403:
            # A policy that denies ECS in one project (Pdp.0001), a frozen project:
            # that project's targets fail with the service's words, the others go on.
            return ProjectRefused(summary, status=status, code=code)
        if status == 404:
            if code and SERVICE_CODE.fullmatch(code):
                return NotFound(summary, status=status, code=code)
            # Only the service's own 404 says the server is missing; a bare one
            # means the URL is wrong, for every target alike.
            return WrongEndpoint(
                f"{path} answered HTTP 404 without the ECS error body ({_snippet(payload)}): "
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
            if isinstance(payload, _NotJson) or status < 500:
                return BadResponse(f"HTTP {status}: answer is not the expected JSON", status=status)
            return RetryLater(summary, status=status, code=code)
        if acted_unknown:
            return OutcomeUnknown(summary, status=status, code=code)
        return BadResponse(summary, status=status, code=code)


async def read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` bytes: read(n) returns only what has arrived."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class _Base:
    """What every request to one base URL shares, worked out once: the parsed URL
    (our paths need no encoding: IDs are checked before anything is sent), the Host
    the signature names and the proxy the environment gives it."""

    url: URL
    origin: http1.Origin  # its `authority` is the Host the signature names
    prefix: str  # the base URL's own path, if any, before ours
    proxy: dict[str, Any]

    @classmethod
    def of(cls, session: aiohttp.ClientSession, base_url: str) -> _Base:
        url = URL(base_url)
        return cls(
            url, http1.Origin.of(base_url), url.raw_path.rstrip("/"), proxy_for(session, base_url)
        )


class _NotJson:
    """Marks an answer body that was not JSON."""


def _error_of(payload: Any) -> tuple[str, str] | None:
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (str(code)[:64] if code is not None else "", str(message or "")[:500])
    if isinstance(payload.get("code"), str) and "message" in payload:
        return (payload["code"][:64], str(payload.get("message") or "")[:500])
    return None


def _error_code(payload: Any) -> str | None:
    error = _error_of(payload)
    return error[0] if error else None


def _retry_after(headers: dict[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return min(max(seconds, 0.0), 300.0)
    return None


def _pacing_key(region: str | None) -> str:
    # One adaptive limiter per API and region: a region is one endpoint.
    return region or "-"


def _snippet(payload: Any) -> str:
    if payload is None:
        return "empty body"
    if isinstance(payload, _NotJson):
        return "not JSON"
    return json.dumps(payload)[:120]


def _str_or_none(value: Any, limit: int = 2000) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:limit]


def _job_view(job_id: str, payload: dict[str, Any]) -> JobView:
    status = payload.get("status")
    if status not in JOB_STATUSES:
        raise BadResponse(f"job answer has an unknown status {str(status)[:40]!r}")
    entities = payload.get("entities")
    server_id = started = None
    if isinstance(entities, dict):
        server_id = _str_or_none(entities.get("server_id"), 64)
        sub_jobs = entities.get("sub_jobs")
        first = sub_jobs[0] if isinstance(sub_jobs, list) and sub_jobs else None
        if isinstance(first, dict):
            started = _str_or_none(first.get("begin_time"), 64)
            if server_id is None and isinstance(first.get("entities"), dict):
                server_id = _str_or_none(first["entities"].get("server_id"), 64)
    return JobView(
        job_id=job_id,
        status=status,
        server_id=server_id,
        error_code=_str_or_none(payload.get("error_code"), 64),
        fail_reason=_str_or_none(payload.get("fail_reason")),
        begin_time=_str_or_none(payload.get("begin_time"), 64),
        end_time=_str_or_none(payload.get("end_time"), 64),
        started_time=started,
    )


def _server_view(server_id: str, server: dict[str, Any]) -> ServerView:
    if server.get("id") not in (None, server_id):
        raise BadResponse("server answer is about another server")
    return ServerView(
        server_id=server_id,
        status=_str_or_none(server.get("status"), 64),
        vm_state=_str_or_none(server.get("OS-EXT-STS:vm_state"), 64),
        task_state=_str_or_none(server.get("OS-EXT-STS:task_state"), 64),
        launched_at=_str_or_none(server.get("OS-SRV-USG:launched_at"), 64),
        updated=_str_or_none(server.get("updated"), 64),
        locked=server.get("locked") if isinstance(server.get("locked"), bool) else None,
        system_disk=_system_disk(server),
    )


def _system_disk(server: dict[str, Any]) -> bool | None:
    """Whether a system disk is attached: a root device name, or a volume with boot
    index 0. None when the answer does not allow telling (fields absent, volumes
    without a boot index): a preflight then does not claim a problem."""
    root = server.get("OS-EXT-SRV-ATTR:root_device_name")
    volumes = server.get("os-extended-volumes:volumes_attached")
    if isinstance(root, str) and root:
        return True
    if not isinstance(volumes, list):
        return None
    boot = [v.get("bootIndex") if isinstance(v, dict) else None for v in volumes]
    if any(str(b) == "0" for b in boot if b is not None):
        return True
    if any(b is None for b in boot):
        return None
    return False
