"""HTTP routes of the fake ECS API, in the order the real service applies its checks.

Each API request passes the same gate: count it, wait the configured latency,
authenticate, the API gateway's limit (`api_limit`: 429 APIGW.0308), the
project's policy, the service's own rate limit (`rate_limit`), then the injected
error and busy faults, all before anything is acted on. A reinstall that was
acted on may still lose its answer: dropped (connection closed), replaced by a
5xx, or held back (slow).

The handlers see a `Call` and return an `Answer`, free of any HTTP library;
`SimulatorApp.build` serves them as an aiohttp application (the in-memory cloud,
`orchestrator.cloud.fake`, calls them directly, without HTTP), which also notes on
which connection each request came: a reinstall on a connection that had already
carried a request is counted (`reinstalls_on_reused_connections`), because the
orchestrator promises a connection of its own to every reinstall. No logging per
request, no middleware.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.simulator import draws, listing
from orchestrator.simulator.auth import Authenticator
from orchestrator.simulator.config import (
    JOB,
    LIST_NOVA,
    LIST_V1,
    REINSTALL,
    SERVER,
    SimulatorConfig,
)
from orchestrator.simulator.errors import ApiFault, GatewayFault
from orchestrator.simulator.faults import Faults
from orchestrator.simulator.fleet import server_body
from orchestrator.simulator.iam import Iam, IamError
from orchestrator.simulator.jobs import job_body
from orchestrator.simulator.ratelimit import GatewayLimiter, RateLimiter
from orchestrator.simulator.reinstall import ReinstallRequest, parse_reinstall, parse_reinstall_v2
from orchestrator.simulator.traces import trace_list
from orchestrator.simulator.world import World
from orchestrator.simulator.worldfile import keep_world

JSON_TYPE = "application/json"


class Throttled(ApiFault):
    """Refused by the rate limit; the answer's shape depends on the throttle style."""

    def __init__(self, style: str, wait: float) -> None:
        if style == "202":
            super().__init__("Common.0024")
        else:
            super().__init__("Common.1503")
        # Whole seconds, at least one: what a client may sleep before trying again.
        self.retry_after = None if style == "202" else max(1, math.ceil(wait))


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the handlers see it."""

    method: str
    path: str  # percent-decoded, as the SDK's canonical URI starts from
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    base_url: str  # scheme://host of this request, for the IAM's catalog
    # Requests its connection carried before this one (0: a new connection).
    earlier_on_connection: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send back; `drop`: close the connection instead of answering."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON_TYPE
    drop: bool = False


Handler = Callable[..., Awaitable[Answer]]

# Encoded once: `json.dumps`'s output without its per-call argument handling and
# circular-reference bookkeeping (answers are fresh trees of plain dicts and lists).
_encode = json.JSONEncoder(check_circular=False).encode


def _json(payload: Any, status: int = 200) -> Answer:
    return Answer(status, _encode(payload).encode())


class SimulatorApp:
    """The handlers and what they share; `world` holds all simulated state."""

    def __init__(self, config: SimulatorConfig, *, faults: Faults | None = None) -> None:
        """`faults`: where injected faults come from (default: `config`'s rates)."""
        self.config = config
        self.world = World(config)
        if config.world_file is not None:
            keep_world(self.world, Path(config.world_file))
        offset, clock = config.clock_offset, config.clock
        self._clock: Callable[[], float] = (lambda: clock() + offset) if offset else clock
        self.iam = Iam(config)
        # The IAM's issued-token counter is the stats' one, so snapshots show it.
        self.iam.issued = self.world.stats.tokens_issued
        self._auth = Authenticator(config, self.iam)
        self._denied = frozenset(config.denied_projects)
        self._limiter = RateLimiter(config.rate_limit)
        self._gateway = GatewayLimiter(config.api_limit_of, self._request_id)
        self._answers_written = 0  # by the gateway, numbering their request IDs
        self._faults = faults if faults is not None else Faults(config)
        self._latency = config.latency_ms / 1000.0
        # API requests carried so far, per open connection (gone with the connection).
        self._connections: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        # (method, template, handler): aiohttp's GET routes also answer HEAD.
        self.routes: tuple[tuple[str, str, Handler], ...] = (
            ("POST", "/v1/{project_id}/cloudservers/{server_id}/reinstallos", self.reinstall),
            ("POST", "/v2/{project_id}/cloudservers/{server_id}/reinstallos", self.reinstall_v2),
            ("GET", "/v1/{project_id}/jobs/{job_id}", self.get_job),
            # Before the single read, whose {server_id} would match "detail" too.
            ("GET", "/v1/{project_id}/cloudservers/detail", self.list_v1),
            ("GET", "/v1/{project_id}/cloudservers/{server_id}", self.get_server),
            ("GET", "/v2.1/{project_id}/servers/detail", self.list_nova),
            ("GET", "/v2/{project_id}/servers/detail", self.list_nova),
            ("GET", "/v3/{project_id}/traces", self.list_traces),
            ("GET", "/_sim/stats", self.get_stats),
            ("POST", "/v3/auth/tokens", self.issue_token),
        )

    def stats(self) -> dict[str, Any]:
        return self.world.snapshot(self._clock())

    def now(self) -> float:
        """The service's clock (`config.clock` plus `config.clock_offset`), epoch seconds."""
        return self._clock()

    def date(self) -> str:
        """The Date header of an answer sent now, on the service's clock."""
        return formatdate(self._clock(), usegmt=True)

    def _request_id(self) -> str:
        self._answers_written += 1
        return draws.hex_id(self.config.seed, "request", self._answers_written)

    def build(self) -> web.Application:
        """The routes as an aiohttp application."""
        app = web.Application()
        for route in self.routes:
            adapter = self._aiohttp_handler(route[2])
            if route[0] == "GET":
                app.router.add_get(route[1], adapter)
            else:
                app.router.add_post(route[1], adapter)
        return app

    def _connection_seen(self, transport: object) -> int:
        """Count a request on `transport`'s connection; how many came on it before."""
        earlier = self._connections.get(transport, 0)
        self._connections[transport] = earlier + 1
        if not earlier:
            self.world.stats.connections += 1
        return earlier

    def _aiohttp_handler(
        self, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        # The stats route is the observer's, not the client's: its connections are not counted.
        counted = handler != self.get_stats

        async def handle(request: web.Request) -> web.StreamResponse:
            transport = request.transport
            earlier = self._connection_seen(transport) if counted and transport else 0
            call = Call(
                request.method,
                request.path,
                list(request.query.items()) if request.query_string else (),
                request.headers,
                await request.read() if request.body_exists else b"",
                f"{request.scheme}://{request.host}",
                earlier,
            )
            answer = await handler(call, **request.match_info)
            if answer.drop:
                if request.transport is not None:
                    request.transport.close()
                # Writing to the closing transport fails inside aiohttp, which then
                # drops the response quietly: the client sees a disconnect.
                return web.Response(status=200)
            response = web.Response(
                body=answer.body or None, status=answer.status, content_type=answer.content_type
            )
            for name, value in answer.headers:
                response.headers[name] = value
            # The service's clock, not this machine's: aiohttp would write its own.
            response.headers["Date"] = self.date()
            return response

        return handle

    async def _gate(self, call: Call, kind: str, project_id: str) -> float:
        """The checks every API request passes before acting; returns the time after them."""
        if self._latency:
            await asyncio.sleep(self._latency)
        now = self._clock()
        stats = self.world.stats
        if kind in self.config.unoffered:
            # The gateway knows no such API here: nothing behind it is reached.
            raise GatewayFault("APIGW.0101", None, self._request_id())
        if self._auth.enabled:
            try:
                self._auth.check(
                    call.method, call.path, call.query, call.headers, call.body, project_id, now
                )
            except ApiFault:
                stats.unauthorized += 1
                raise
        # The gateway, in front of the service: it knows the caller, not the project's policy.
        refusal = self._gateway.take(kind, now)
        if refusal is not None:
            stats.refused_for_rate(kind, gateway=True)
            raise refusal
        if self.config.frozen_status is not None:
            frozen = ApiFault("Ecs.0003", "The account is frozen.")
            frozen.status = self.config.frozen_status
            raise frozen
        if project_id in self._denied:
            stats.denied += 1
            raise ApiFault("Pdp.0001", f"Project {project_id} denies ecs:cloudServers:{kind}.")
        wait = self._limiter.take(kind, now)
        if wait:
            stats.refused_for_rate(kind, gateway=False)
            raise Throttled(self.config.throttle_style, wait)
        fault = self._faults.server_error(kind)
        if fault is not None:
            stats.errors_injected += 1
            raise fault
        fault = self._faults.busy(kind)
        if fault is not None:
            stats.busy += 1
            raise fault
        return now

    def _error(self, fault: ApiFault) -> Answer:
        self.world.stats.errors_by_code[fault.code] += 1
        headers: tuple[tuple[str, str], ...] = ()
        if isinstance(fault, Throttled) and fault.retry_after is not None:
            headers = (("Retry-After", str(fault.retry_after)),)
        return Answer(fault.status, fault.body(), headers)

    async def reinstall(self, call: Call, project_id: str, server_id: str) -> Answer:
        """POST /v1/.../reinstallos: an image without Cloud-Init."""
        return await self._reinstall(call, project_id, server_id, "v1", parse_reinstall)

    async def reinstall_v2(self, call: Call, project_id: str, server_id: str) -> Answer:
        """POST /v2/.../reinstallos: an image with Cloud-Init (user data)."""
        return await self._reinstall(call, project_id, server_id, "v2", parse_reinstall_v2)

    async def _reinstall(
        self,
        call: Call,
        project_id: str,
        server_id: str,
        api: str,
        parse: Callable[[bytes], ReinstallRequest],
    ) -> Answer:
        now = self._clock()
        self.world.stats.arrived(REINSTALL, now)
        if api not in self.config.reinstall_apis:
            # Not published here: the gateway answers, the service never sees it.
            return self._error(GatewayFault("APIGW.0101", None, self._request_id()))
        if call.earlier_on_connection:
            self.world.stats.reinstalls_on_reused_connections += 1
        self.world.reinstall_arrived(project_id, server_id, api, now)
        try:
            now = await self._gate(call, REINSTALL, project_id)
        except ApiFault as fault:
            return self._error(fault)
        try:
            job = self.world.reinstall(project_id, server_id, parse(call.body), now)
        except ApiFault as fault:
            self.world.trace(project_id, server_id, api, now, fault.status)  # refused: traced
            return self._error(fault)
        self.world.trace(project_id, server_id, api, now, 200)
        # Acted on: from here on only the answer can go wrong.
        stats = self.world.stats
        if self._faults.drop():
            # Applied but unanswered: the client cannot tell whether it was accepted.
            stats.dropped += 1
            return Answer(200, drop=True)
        after = self._faults.error_after_acting()
        if self._faults.slow():
            stats.slow_answers += 1
            # Real time, not the injected clock: it is the client's timeout that must fire.
            await asyncio.sleep(self.config.slow_answer_seconds)
        if after is not None:
            stats.errors_after_acting += 1
            return self._error(after)
        return _json({"job_id": job.job_id})

    async def get_job(self, call: Call, project_id: str, job_id: str) -> Answer:
        self.world.stats.arrived(JOB, self._clock())
        try:
            now = await self._gate(call, JOB, project_id)
            job = self.world.job(project_id, job_id, now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(job_body(job, now))

    async def get_server(self, call: Call, project_id: str, server_id: str) -> Answer:
        self.world.stats.arrived(SERVER, self._clock())
        try:
            now = await self._gate(call, SERVER, project_id)
            server = self.world.server(project_id, server_id, now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(server_body(server, now))

    async def list_v1(self, call: Call, project_id: str) -> Answer:
        """GET /v1/{project_id}/cloudservers/detail: a page by number, and `count`."""
        self.world.stats.arrived(LIST_V1, self._clock())
        try:
            now = await self._gate(call, LIST_V1, project_id)
            answer = listing.page_v1(self.world.listing(project_id, now), call.query, now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(answer)

    async def list_nova(self, call: Call, project_id: str) -> Answer:
        """GET /v2.1/{project_id}/servers/detail (and /v2/): Nova's list, by marker."""
        self.world.stats.arrived(LIST_NOVA, self._clock())
        try:
            now = await self._gate(call, LIST_NOVA, project_id)
            servers = self.world.listing(project_id, now)
            answer = listing.page_nova(
                servers,
                call.query,
                now,
                call.base_url + call.path,
                self.world.positions(project_id),
            )
        except ApiFault as fault:
            return self._error(fault)
        return _json(answer)

    async def list_traces(self, call: Call, project_id: str) -> Answer:
        """GET /v3/{project_id}/traces: CTS's trace list (management traces of ECS)."""
        now = self._clock()
        self.world.stats.trace_queries += 1
        try:
            if self._auth.enabled:
                self._auth.check(
                    call.method, call.path, call.query, call.headers, call.body, project_id, now
                )
            answer = trace_list(self.world, project_id, call.query, now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(answer)

    async def issue_token(self, call: Call) -> Answer:
        """IAM: POST /v3/auth/tokens (password method), 201 with X-Subject-Token."""
        if not self.iam.enabled:
            return Answer(404, content_type="application/octet-stream")
        try:
            token, payload = self.iam.issue(call.body, call.base_url, self._clock())
        except IamError as error:
            self.world.stats.token_refusals += 1
            return Answer(error.status, error.body())
        answer = _json(payload, status=201)
        return Answer(answer.status, answer.body, (("X-Subject-Token", token),))

    async def get_stats(self, call: Call) -> Answer:
        return _json(self.stats())


def build_app(config: SimulatorConfig) -> tuple[web.Application, SimulatorApp]:
    """The aiohttp application and the object holding its state."""
    sim = SimulatorApp(config)
    return sim.build(), sim
