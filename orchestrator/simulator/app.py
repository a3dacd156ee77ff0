"""HTTP routes of the fake ECS API, in the order the real service applies its checks.

Each API request passes the same gate: count it, wait the configured latency,
authenticate, rate-limit, then the injected error and busy faults, all before
anything is acted on. A reinstall that was acted on may still lose its answer:
dropped (connection closed), replaced by a 5xx, or held back (slow). Handlers
stay lean because one process must answer thousands of requests per second:
no logging per request, no middleware.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from orchestrator.simulator.auth import Authenticator
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault
from orchestrator.simulator.faults import Faults
from orchestrator.simulator.fleet import server_body
from orchestrator.simulator.iam import Iam, IamError
from orchestrator.simulator.jobs import job_body
from orchestrator.simulator.ratelimit import RateLimiter
from orchestrator.simulator.reinstall import ReinstallRequest, parse_reinstall, parse_reinstall_v2
from orchestrator.simulator.world import World

REINSTALL = "reinstall"
JOB = "job"
SERVER = "server"


class Throttled(ApiFault):
    """Refused by the rate limit; the answer's shape depends on the throttle style."""

    def __init__(self, style: str, wait: float) -> None:
        if style == "202":
            super().__init__("Common.0024")
        else:
            super().__init__("Common.1503")
        # Whole seconds, at least one: what a client may sleep before trying again.
        self.retry_after = None if style == "202" else max(1, math.ceil(wait))


# `json.dumps`'s output, without its per-call argument handling and the circular
# reference bookkeeping: answers are fresh trees of plain dicts and lists.
_encode = json.JSONEncoder(check_circular=False).encode


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=_encode(payload).encode(), status=status, content_type="application/json"
    )


class SimulatorApp:
    """The handlers and what they share; `world` holds all simulated state."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.world = World(config)
        self._clock = config.clock
        self.iam = Iam(config)
        # The IAM's issued-token counter is the stats' one, so snapshots show it.
        self.iam.issued = self.world.stats.tokens_issued
        self._auth = Authenticator(config, self.iam)
        self._denied = frozenset(config.denied_projects)
        self._limiter = RateLimiter(config.rate_limit)
        self._faults = Faults(config)
        self._latency = config.latency_ms / 1000.0

    def stats(self) -> dict[str, Any]:
        return self.world.snapshot(self._clock())

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/{project_id}/cloudservers/{server_id}/reinstallos", self.reinstall)
        app.router.add_post(
            "/v2/{project_id}/cloudservers/{server_id}/reinstallos", self.reinstall_v2
        )
        app.router.add_get("/v1/{project_id}/jobs/{job_id}", self.get_job)
        app.router.add_get("/v1/{project_id}/cloudservers/{server_id}", self.get_server)
        app.router.add_get("/_sim/stats", self.get_stats)
        app.router.add_post("/v3/auth/tokens", self.issue_token)
        return app

    async def _gate(self, request: web.Request, kind: str, project_id: str) -> tuple[bytes, float]:
        """The checks every API request passes before acting; returns (body, now)."""
        if self._latency:
            await asyncio.sleep(self._latency)
        # A GET has no body: skip the payload stream's machinery (b"" either way).
        body = await request.read() if request.body_exists else b""
        now = self._clock()
        stats = self.world.stats
        if self._auth.enabled:
            try:
                self._auth.check(
                    request.method,
                    # The SDK unquotes the path before encoding it for the canonical URI.
                    request.path,
                    # No query string (every ECS call of ours): no query parsing.
                    list(request.query.items()) if request.query_string else (),
                    request.headers,
                    body,
                    project_id,
                    now,
                )
            except ApiFault:
                stats.unauthorized += 1
                raise
        if project_id in self._denied:
            stats.denied += 1
            raise ApiFault("Pdp.0001", f"Project {project_id} denies ecs:cloudServers:{kind}.")
        wait = self._limiter.take(kind, now)
        if wait:
            stats.throttled += 1
            raise Throttled(self.config.throttle_style, wait)
        fault = self._faults.server_error()
        if fault is not None:
            stats.errors_injected += 1
            raise fault
        fault = self._faults.busy()
        if fault is not None:
            stats.busy += 1
            raise fault
        return body, now

    def _error(self, fault: ApiFault) -> web.Response:
        self.world.stats.errors_by_code[fault.code] += 1
        response = web.Response(
            body=fault.body(), status=fault.status, content_type="application/json"
        )
        if isinstance(fault, Throttled) and fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    async def reinstall(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/.../reinstallos: an image without Cloud-Init."""
        return await self._reinstall(request, "v1", parse_reinstall)

    async def reinstall_v2(self, request: web.Request) -> web.StreamResponse:
        """POST /v2/.../reinstallos: an image with Cloud-Init (user data)."""
        return await self._reinstall(request, "v2", parse_reinstall_v2)

    async def _reinstall(
        self, request: web.Request, api: str, parse: Callable[[bytes], ReinstallRequest]
    ) -> web.StreamResponse:
        now = self._clock()
        self.world.stats.arrived(REINSTALL, now)
        project_id = request.match_info["project_id"]
        server_id = request.match_info["server_id"]
        self.world.reinstall_arrived(project_id, server_id, api, now)
        try:
            body, now = await self._gate(request, REINSTALL, project_id)
            job = self.world.reinstall(project_id, server_id, parse(body), now)
        except ApiFault as fault:
            return self._error(fault)
        # Acted on: from here on only the answer can go wrong.
        stats = self.world.stats
        if self._faults.drop():
            # Applied but unanswered: the client cannot tell whether it was accepted.
            stats.dropped += 1
            if request.transport is not None:
                request.transport.close()
            # Writing to the closing transport fails inside aiohttp, which then
            # drops the response quietly: the client sees a disconnect.
            return web.Response(status=200)
        after = self._faults.error_after_acting()
        if self._faults.slow():
            stats.slow_answers += 1
            # Real time, not the injected clock: it is the client's timeout that must fire.
            await asyncio.sleep(self.config.slow_answer_seconds)
        if after is not None:
            stats.errors_after_acting += 1
            return self._error(after)
        return _json({"job_id": job.job_id})

    async def get_job(self, request: web.Request) -> web.Response:
        self.world.stats.arrived(JOB, self._clock())
        project_id = request.match_info["project_id"]
        try:
            _, now = await self._gate(request, JOB, project_id)
            job = self.world.job(project_id, request.match_info["job_id"], now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(job_body(job, now))

    async def get_server(self, request: web.Request) -> web.Response:
        self.world.stats.arrived(SERVER, self._clock())
        project_id = request.match_info["project_id"]
        try:
            _, now = await self._gate(request, SERVER, project_id)
            server = self.world.server(project_id, request.match_info["server_id"], now)
        except ApiFault as fault:
            return self._error(fault)
        return _json(server_body(server, now))

    async def issue_token(self, request: web.Request) -> web.Response:
        """IAM: POST /v3/auth/tokens (password method), 201 with X-Subject-Token."""
        if not self.iam.enabled:
            return web.Response(status=404)
        body = await request.read()
        base_url = f"{request.scheme}://{request.host}"
        try:
            token, payload = self.iam.issue(body, base_url, self._clock())
        except IamError as error:
            self.world.stats.token_refusals += 1
            return web.Response(
                body=error.body(), status=error.status, content_type="application/json"
            )
        response = _json(payload, status=201)
        response.headers["X-Subject-Token"] = token
        return response

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats())


def build_app(config: SimulatorConfig) -> tuple[web.Application, SimulatorApp]:
    """The aiohttp application and the object holding its state."""
    sim = SimulatorApp(config)
    return sim.build(), sim
