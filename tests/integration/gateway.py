"""A fault-injecting front of the simulator on 127.0.0.1, for the integration tests.

The simulator's faults are drawn per request for the whole service; some
regression tests need one fault for one API or one server only (the job API
down for a while, the reinstalls of two servers refused). `Gateway` forwards
every request to the simulator unchanged and hands it back its answer, except
where the test's `rule` answers instead, as a gateway or load balancer in front
of the real service may:

    LOSE               the request is lost on the way: the connection is closed
                       and the simulator never sees it (nothing is acted on)
    an ApiFault        answered with the simulator's own error shape, the
                       simulator never sees it (refused before acting)
    None               forwarded

Every request is recorded (`calls`) with what became of it and, for forwarded
server and job reads, the status the simulator answered.

    async with Gateway(sim.url, rule) as gw:
        ... gw.url, gw.calls, gw.count("reinstall", server_id)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeAlias

import aiohttp
from aiohttp import web
from loopback import serve

from orchestrator.simulator.errors import ApiFault

_REINSTALL = re.compile(r"/v[12]/[^/]+/cloudservers/([^/]+)/reinstallos")
_JOB = re.compile(r"/v1/[^/]+/jobs/([^/]+)")
_SERVER = re.compile(r"/v1/[^/]+/cloudservers/([^/]+)")
# Hop-by-hop and length headers aiohttp sets itself on either side.
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class _Lose:
    def __repr__(self) -> str:
        return "LOSE"


LOSE: Final = _Lose()
Action: TypeAlias = ApiFault | _Lose | None


@dataclass(frozen=True)
class Request:
    """What the rule is asked about: the API called and the server or job it names."""

    method: str
    kind: str  # reinstall, job, server, or other
    ident: str  # the server id (reinstall, server) or job id (job); "" for other


@dataclass
class Call:
    request: Request
    at: float  # wall clock (time.time()), the simulator's default clock
    fate: str  # forwarded, lost, or the code of the fault answered
    status: str | None = None  # forwarded server/job reads: the status the simulator gave
    answer: dict[str, Any] | None = None  # forwarded server/job reads: the JSON answer


def classify(method: str, path: str) -> Request:
    if method == "POST" and (m := _REINSTALL.fullmatch(path)):
        return Request(method, "reinstall", m.group(1))
    if method == "GET" and (m := _JOB.fullmatch(path)):
        return Request(method, "job", m.group(1))
    if method == "GET" and (m := _SERVER.fullmatch(path)):
        return Request(method, "server", m.group(1))
    return Request(method, "other", "")


def _read_status(kind: str, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    body = payload.get("server") if kind == "server" else payload
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


@dataclass
class Gateway:
    upstream: str  # the simulator's URL (loopback)
    rule: Callable[[Request], Action] = lambda request: None
    calls: list[Call] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, kind: str, ident: str | None = None, fate: str | None = None) -> int:
        """Requests of `kind` (for `ident`, with `fate`) that reached the gateway."""
        return sum(
            1
            for c in self.calls
            if c.request.kind == kind
            and (ident is None or c.request.ident == ident)
            and (fate is None or c.fate == fate)
        )

    async def start(self) -> Gateway:
        assert self.upstream.startswith("http://127.0.0.1:")  # loopback only
        self._session = aiohttp.ClientSession()
        self._runner, self.port = await serve(self._handle)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        what = classify(request.method, request.path)
        action = self.rule(what)
        if isinstance(action, _Lose):
            self.calls.append(Call(what, time.time(), "lost"))
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=200)  # never written: the connection is gone
        if isinstance(action, ApiFault):
            self.calls.append(Call(what, time.time(), action.code))
            return web.Response(
                body=action.body(), status=action.status, content_type="application/json"
            )
        return await self._forward(request, what, body)

    async def _forward(self, request: web.Request, what: Request, body: bytes) -> web.Response:
        assert self._session is not None
        call = Call(what, time.time(), "forwarded")
        self.calls.append(call)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as answer:
            raw = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in _NOT_FORWARDED and k.lower() != "content-type"
            }
            if what.kind in ("server", "job") and answer.status == 200:
                call.answer = json.loads(raw)
                call.status = _read_status(what.kind, call.answer)
            return web.Response(
                body=raw,
                status=answer.status,
                headers=kept,
                content_type=answer.content_type,
            )
