"""The ECS API client: its calls, and the one place transport errors are translated.

    reinstall(spec) -> job_id          POST /v1/{project}/cloudservers/{server}/reinstallos
                                       (/v2/... for a Cloud-Init target, with its user data)
    job(project, job_id) -> JobView    GET  /v1/{project}/jobs/{job_id}
    server(project, server) -> ServerView  GET /v1/{project}/cloudservers/{server}
    servers_page(project, page, limit, status=) -> ServerPage
                                       GET /v1/{project}/cloudservers/detail?offset=&limit=
    servers_changed(project, since, limit, marker=, status=) -> ServerChanges
                                       GET /v2.1/{project}/servers/detail?changes-since=
                                       &limit=&marker= (Nova's list, on the ECS endpoint)

The reads (job, server, both lists) are paced by the poll limiter; the lists are
counted in `requests` as "list".

Every call goes through aiohttp. Reads share the run's session and its keep-alive
connections; each reinstall goes on a connection of its own, opened for it and
closed after (`Network.session(fresh_connections=True)`): a POST written on a
kept-alive connection that the service is just closing would get no answer, and
a reinstall without an answer is a doubt to settle from the server.

aiohttp's failures are split here, and only here (`NOTHING_SENT`, `MAYBE_SENT`),
into the errors of `orchestrator.errors`, chosen by what the caller may do next;
nothing above this module sees an aiohttp exception. For a reinstall the key
question is whether the request could have been acted on: a refusal (429, 202
Common.0024, 501 Ecs.0603, a connection never made) may be sent again; a timeout,
a dropped connection or a 5xx after sending may not.
What an answer means (status, headers and body in; a result or an error out) is
`orchestrator.answers`' pure functions; this module sends, and counts.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from orchestrator.clocks import ServiceClock
from orchestrator.cloud import answers
from orchestrator.cloud.answers import MAX_BODY_BYTES as MAX_BODY_BYTES  # the cap of one read
from orchestrator.cloud.answers import Answer, body_cap
from orchestrator.cloud.auth import Credentials
from orchestrator.cloud.credential_gate import CredentialGate
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.network import Network
from orchestrator.cloud.queries import Query, changes_query, cts_base, page_query, trace_query
from orchestrator.cloud.reachability import Reachability
from orchestrator.cloud.views import JobView as JobView  # the client's results, named here too
from orchestrator.cloud.views import ServerChanges as ServerChanges
from orchestrator.cloud.views import ServerPage as ServerPage
from orchestrator.cloud.views import ServerView as ServerView
from orchestrator.cloud.views import TraceView as TraceView
from orchestrator.engine.adaptive import AdaptivePacing
from orchestrator.engine.pacing import RateLimiter, Unlimited
from orchestrator.errors import NotSent, Throttled, Unreachable
from orchestrator.model import TargetSpec

if TYPE_CHECKING:
    from orchestrator.cloud.interface import Cloud

log = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8", "Accept": "application/json"}

# aiohttp's failures, by whether the request can have reached the service. The
# connection was never made (refused, no such name, TLS refused or not trusted,
# connect timed out, the proxy refused the tunnel): nothing was sent.
NOTHING_SENT: tuple[type[Exception], ...] = (
    aiohttp.ClientConnectorError,  # its TLS (certificate) and DNS subclasses too
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientHttpProxyError,  # the CONNECT was refused: the request never left
)
# Anything after the connection was made (dropped, reset, timed out, an answer that
# cannot be parsed or decoded): the request was sent, or may have been.
MAYBE_SENT: tuple[type[Exception], ...] = (TimeoutError, aiohttp.ClientError)


@dataclass(frozen=True)
class Timeouts:
    """How long one request may take: to get a connection (a free one of the pool, or
    a new one: TCP and TLS), and in all (connect, send, answer). Past `connect`
    nothing was sent; past `total` the request may have been.

    No separate read timeout: an answer of a few hundred bytes either comes or not.
    """

    connect: float = 10.0
    total: float = 30.0


class EcsClient:
    """Sends the three ECS calls, paced by the limiters given.

    `session` is the run's pooled session (made by `network.session`): reads go on
    its keep-alive connections. Reinstalls go on a session of the client's own, made
    at the first one with `network`'s TLS context and proxies and as many
    connections at most as `session`, each opened for one request and closed after.
    `aclose` (or `async with`) closes that one; `session` is its owner's to close.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials | None,
        *,
        submit_limiter: RateLimiter | Unlimited | None = None,
        poll_limiter: RateLimiter | Unlimited | None = None,
        list_limiter: RateLimiter | Unlimited | None = None,
        timeouts: Timeouts | None = None,
        reachability: Reachability | None = None,
        adaptive: AdaptivePacing | None = None,
        user_data: str | None = None,
        service_clock: ServiceClock | None = None,
        network: Network | None = None,
    ) -> None:
        """`network`: the TLS context and proxies of every request (default: the
        system's CAs, no proxy). `adaptive` adds a limiter per API and endpoint whose
        rate follows the service's throttling, under `submit_limiter`/`poll_limiter`
        as ceilings. `list_limiter` paces the list calls apart from the single reads
        (the gateway limits each API on its own): one list call per project per poll
        keeps every server in flight current, and must not queue behind the reads it
        spares.
        `user_data` (base64, checked by `orchestrator.userdata`) goes with every
        Cloud-Init reinstall; it is never logged."""
        self._session = session
        self._endpoints = endpoints
        self._credentials = credentials
        self._submit_limiter = submit_limiter or Unlimited()
        self._poll_limiter = poll_limiter or Unlimited()
        self._list_limiter = list_limiter or Unlimited()
        t = timeouts or Timeouts()
        self._timeout = aiohttp.ClientTimeout(total=t.total, connect=t.connect)
        self._network = network
        self._fresh: aiohttp.ClientSession | None = None  # the reinstalls' session
        self._adaptive = adaptive
        self.requests: Counter[str] = Counter()  # sent, by kind
        self.throttled = 0
        self.reachability = reachability or Reachability()
        self._user_data = user_data
        self._bases: dict[str, _Base] = {}
        self._gate = CredentialGate(key_pair=credentials is not None and credentials.kind == "aksk")
        # The service's clock, learned from the Date header of every answer.
        self.service_clock = service_clock or ServiceClock()

    async def aclose(self) -> None:
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            await fresh.close()

    async def __aenter__(self) -> EcsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the three calls ---------------------------------------------------

    async def reinstall_slot(self, region: str | None) -> None:
        """Wait until a reinstall to `region` may be sent: the grant. The engine commits
        its intent after this and before `reinstall_spacing`."""
        await self._pace("reinstall", region, self._submit_limiter)

    async def reinstall_spacing(self, region: str | None) -> None:
        """The send slot of a granted reinstall, after whatever ran since the grant (the
        intent's commit): a stall there releases many requests at once, and this
        spreads them again. A stop interrupts it (`stop_sending`)."""
        await self._space("reinstall", region, self._submit_limiter)

    async def reinstall(self, spec: TargetSpec) -> str:
        """Send one reinstall now (paced by the engine: `reinstall_slot`, its intent,
        `reinstall_spacing`) and return the job id the service answered."""
        path = f"/{spec.api}/{spec.project_id}/cloudservers/{spec.server_id}/reinstallos"
        body = json.dumps(spec.reinstall_body(self._user_data), separators=(",", ":")).encode()
        answer, where = await self._send(
            "reinstall", "POST", spec.region, spec.project_id, path, body, unsent_is_unknown=True
        )
        try:
            return answers.reinstall_outcome(answer, where)
        except Throttled:
            self.throttled += 1
            raise

    async def job(self, project_id: str, job_id: str, region: str | None = None) -> JobView:
        await self._pace("job", region, self._poll_limiter)
        await self._space("job", region, self._poll_limiter)
        path = f"/v1/{project_id}/jobs/{job_id}"
        answer, where = await self._send("job", "GET", region, project_id, path, b"")
        try:
            return answers.job_outcome(answer, job_id, where)
        except Throttled:
            self.throttled += 1
            raise

    async def server(
        self, project_id: str, server_id: str, region: str | None = None
    ) -> ServerView:
        await self._pace("server", region, self._poll_limiter)
        await self._space("server", region, self._poll_limiter)
        path = f"/v1/{project_id}/cloudservers/{server_id}"
        answer, where = await self._send("server", "GET", region, project_id, path, b"")
        try:
            return answers.server_outcome(answer, server_id, where)
        except Throttled:
            self.throttled += 1
            raise

    async def servers_page(
        self,
        project_id: str,
        page: int,
        limit: int,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerPage:
        """Page `page` (1 first) of the project's servers, `limit` (1 to 1,000) a page,
        those with `status` only if given (the service's filter: `SHUTOFF` also keeps a
        stopped server being rebuilt, shown as REBUILD). `ServerPage.next_page` says
        which page comes next; `count`, how many matched at this read."""
        query = page_query(page, limit, status)
        path = f"/v1/{project_id}/cloudservers/detail"
        answer, where = await self._read_list(region, project_id, path, query)
        return answers.server_page_outcome(answer, page, limit, where)

    async def traces(
        self, project_id: str, server_id: str, since: datetime, region: str | None = None
    ) -> list[TraceView]:
        """The audit trail's (CTS v3) management traces of the server's ECS operations
        from `since` to now, newest first, at most 200."""
        query = trace_query(server_id, since)
        path = f"/v3/{project_id}/traces"
        answer, where = await self._send(
            "trace", "GET", region, project_id, path, b"", query=query, service="cts"
        )
        return answers.traces_outcome(answer, where)

    async def servers_changed(
        self,
        project_id: str,
        since: datetime,
        limit: int,
        marker: str | None = None,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerChanges:
        """The project's servers whose `updated` is at or after `since`, `limit` (1 to
        1,000) a page after the server `marker` (None: the first page), with `status`
        only if given. `since` must be timezone-aware; it is sent in whole seconds of
        UTC, rounded down, so that no change in its second is left out.
        `ServerChanges.next_marker` is the next call's `marker`, None after the last."""
        query = changes_query(since, limit, marker, status)
        path = f"/v2.1/{project_id}/servers/detail"
        answer, where = await self._read_list(region, project_id, path, query)
        return answers.server_changes_outcome(answer, limit, where)

    async def _read_list(
        self, region: str | None, project_id: str, path: str, query: Query
    ) -> tuple[Answer, str]:
        await self._pace("list", region, self._list_limiter)
        await self._space("list", region, self._list_limiter)
        answer, where = await self._send("list", "GET", region, project_id, path, b"", query=query)
        if answer.throttled:
            self.throttled += 1
        return answer, where

    def set_rates(self, submit: float, poll: float) -> None:
        """The configured ceilings now: --rate and --poll-rate, or this runner's share of
        them where several share a campaign."""
        self._submit_limiter.set_rate(submit)
        self._poll_limiter.set_rate(poll)
        self._list_limiter.set_rate(poll)

    def stop_sending(self, error: Callable[[], BaseException]) -> int:
        """A stop: every reinstall waiting for its token or its send slot raises
        `error()` now instead of going out when its turn comes (see
        `RateLimiter.interrupt_waiting` and `interrupt_spacing`)."""
        interrupted = 0
        if self._adaptive is not None:
            interrupted += self._adaptive.interrupt_waiting("reinstall", error)
            interrupted += self._adaptive.interrupt_spacing("reinstall", error)
        interrupted += self._submit_limiter.interrupt_waiting(error)
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
        query: Query = (),
        service: str = "ecs",
    ) -> tuple[Answer, str]:
        """Send once (twice after a 401 a renewed token may cure); the answer, read
        (see `orchestrator.answers`), and the URL it came from. A key pair's requests
        pass its gate (`orchestrator.cloud.credential_gate`): never sent after a refusal."""
        async with self._gate.turn():
            return await self._send_once(
                kind, method, region, project_id, path, body, unsent_is_unknown, query, service
            )

    async def _send_once(
        self,
        kind: str,
        method: str,
        region: str | None,
        project_id: str,
        path: str,
        body: bytes,
        unsent_is_unknown: bool,
        query: Query,
        service: str = "ecs",
    ) -> tuple[Answer, str]:
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
            if service == "cts":
                base_url = cts_base(base_url)
            sent_at = time.monotonic()
            status, resp_headers, raw, headers, date = await self._request(
                kind, method, base_url, path, project_id, body, unsent_is_unknown, query
            )
            self.service_clock.observe(date, sent_at, time.monotonic())
            answer = answers.answer_of(kind, status, resp_headers, raw)
            self._gate.answered(answer, f"HTTP {status} {answer.code or ''}".rstrip())
            # A refusal of the credentials (401, the gateway's APIGW.0301/0307) acted on
            # nothing: renew the token once and send again.
            renewable = answer.auth_refused and attempt == 1 and creds is not None
            if renewable and creds is not None and await creds.renew(project_id, headers):
                log.info("%s: HTTP %d in project %s; token renewed", kind, status, project_id)
                continue
            break
        if self._adaptive is not None and status < 500:
            key = _pacing_key(region)
            self._adaptive.on_answer(kind, key, answer.throttled, sent_at, answer.stated_limit)
        return answer, f"{base_url}{path}"

    async def _request(
        self,
        kind: str,
        method: str,
        base_url: str,
        path: str,
        project_id: str,
        body: bytes,
        unsent_is_unknown: bool,
        query: Query = (),
    ) -> tuple[int, dict[str, str], bytes, dict[str, str], str | None]:
        """Send once; returns status, answer headers (of a refusal), raw body, the
        headers sent and the answer's Date header. A reinstall (`unsent_is_unknown`)
        goes on a new connection of its own."""
        if self.reachability.tripped:
            raise Unreachable(
                self.reachability.describe(base_url), reached=self.reachability.reached
            )
        base = self._bases.get(base_url)
        if base is None:
            base = self._bases[base_url] = _Base.of(base_url, self._get_network())
        if self._credentials is not None:  # a new dict: JSON_HEADERS is not touched
            headers = self._credentials.headers(
                method, base.authority, path, project_id, body, JSON_HEADERS, query
            )
        else:
            headers = dict(JSON_HEADERS)
        session = self._fresh_session() if unsent_is_unknown else self._session
        self.requests[kind] += 1
        try:
            status, resp_headers, raw, date = await self._via_session(
                session, method, base, path, body, headers, query, body_cap(kind)
            )
        except NOTHING_SENT as exc:
            # The connection was never made: nothing reached the service.
            self.requests[kind] -= 1
            # An untrusted certificate is configuration, the same for every target.
            lasting = isinstance(exc, aiohttp.ClientConnectorCertificateError)
            if self.reachability.failed(_not_connected(exc), lasting=lasting):
                raise Unreachable(
                    self.reachability.describe(base_url), reached=self.reachability.reached
                ) from None
            what = _not_connected(exc, brief=True)
            raise NotSent(f"{kind}: cannot connect ({what})") from None
        except MAYBE_SENT as exc:
            # Sent, or maybe sent: the service may have acted on it.
            raise answers.no_answer(kind, type(exc).__name__) from None
        self.reachability.answered()
        return status, resp_headers, raw, headers, date

    async def _via_session(
        self,
        session: aiohttp.ClientSession,
        method: str,
        base: _Base,
        path: str,
        body: bytes,
        headers: dict[str, str],
        query: Query,
        cap: int,
    ) -> tuple[int, dict[str, str], bytes, str | None]:
        """One request and its answer: status, headers (of a refusal), up to `cap` + 1
        bytes of its body, and its Date header.

        aiohttp retries a request whose kept-alive connection turns out closed, but
        only an idempotent one (GET, never POST): a reinstall is sent at most once.
        """
        url = base.url.with_path(base.prefix + path, encoded=True)
        async with session.request(
            method,
            url.with_query(query) if query else url,
            data=body if body else None,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=False,
            proxy=base.proxy,
        ) as resp:
            raw = await read_capped(resp.content, cap + 1)
            # Only a refusal's headers are read (Retry-After).
            answered = dict(resp.headers.items()) if resp.status >= 300 else {}
            return resp.status, answered, raw, resp.headers.get("Date")

    def _get_network(self) -> Network:
        if self._network is None:  # once: loading the system's CAs takes milliseconds
            self._network = Network(ssl.create_default_context())
        return self._network

    def _fresh_session(self) -> aiohttp.ClientSession:
        """The reinstalls' session: a new connection per request (made at the first)."""
        if self._fresh is None:
            limit = self._session.connector.limit if self._session.connector else 0
            self._fresh = self._get_network().session(limit or 100, fresh_connections=True)
        return self._fresh


async def read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` bytes: read(n) returns only what has arrived.

    aiohttp decodes a gzip or deflate body as it reads, in bounded steps (3.13.3 and
    later), so `limit` caps the decoded size: a small compressed answer that would
    inflate to gigabytes stops here at `limit` bytes, and the caller refuses it."""
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
    authority: str  # the Host header: the URL's host[:port]
    prefix: str  # the base URL's own path, if any, before ours
    proxy: URL | None

    @classmethod
    def of(cls, base_url: str, network: Network) -> _Base:
        url = URL(base_url)
        authority = urlsplit(base_url).netloc.rpartition("@")[2]
        return cls(url, authority, url.raw_path.rstrip("/"), network.proxies.for_url(url))


if TYPE_CHECKING:
    # mypy checks here that the client is what the engine needs.
    _IS_A_CLOUD: type[Cloud] = EcsClient


def _not_connected(exc: Exception, *, brief: bool = False) -> str:
    """Why a connection was not made, for the operator (the error's own words only)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        if brief:
            return "TLS certificate not trusted"
        return (
            f"the TLS certificate of {exc.host}:{exc.port} is not trusted"
            f" ({str(exc.certificate_error)[:200]})"
        )
    if brief:
        return type(exc).__name__
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _pacing_key(region: str | None) -> str:
    # One adaptive limiter per API and region: a region is one endpoint.
    return region or "-"
