"""Helpers of the EcsClient tests: IDs, a fake clock, a simulator with a client on it.

    async with sim_client(session, token=TOKEN, **config) as (sim, client): ...

starts an in-process Simulator on a free loopback port with the given config
fields, and an EcsClient pointed at it with token auth (or the credentials
given). Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from orchestrator.cloud.auth import Credentials, TokenAuth
from orchestrator.cloud.client import EcsClient, Timeouts
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.engine.pacing import RateLimiter, Unlimited
from orchestrator.model import TargetSpec
from orchestrator.simulator import Simulator, SimulatorConfig

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
TOKEN = "client-test-token-d41d8cd98f00"
AK = "HPUCLIENTTESTACCESSK"
SK = "client-test-secret-key-never-leaked-42"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
FAST = Timeouts(connect=2.0, total=10.0)

_DEFAULT = object()


def server_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


def spec(n: int = 1, *, project: str = PROJECT, **changes: Any) -> TargetSpec:
    """A target the simulator accepts: stop mode, so running servers are fine too."""
    fields: dict[str, Any] = {
        "project_id": project,
        "server_id": server_id(n),
        "keyname": "KeyPair-350b",
        "userid": "7e25b1da389f4697a79df3a0e5bd494e",
        "line": n + 1,
        "mode": "withStopServer",
    }
    fields.update(changes)
    return TargetSpec(**fields)


class FakeClock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingLimiter:
    """A real limiter that notes each grant in a shared log."""

    def __init__(self, log: list[str], inner: RateLimiter | Unlimited | None = None) -> None:
        self.log = log
        self.inner = inner or Unlimited()

    async def acquire(self) -> None:
        await self.inner.acquire()
        self.log.append("acquired")

    async def space(self) -> None:
        await self.inner.space()
        self.log.append("spaced")


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_client(
    session: aiohttp.ClientSession,
    url: str,
    credentials: Credentials | None = None,
    **kwargs: Any,
) -> EcsClient:
    kwargs.setdefault("timeouts", FAST)
    return EcsClient(session, Endpoints(endpoint=url), credentials, **kwargs)


@contextlib.asynccontextmanager
async def sim_client(
    session: aiohttp.ClientSession,
    *,
    credentials: Any = _DEFAULT,
    client_kwargs: dict[str, Any] | None = None,
    **config: Any,
) -> AsyncIterator[tuple[Simulator, EcsClient]]:
    """A simulator with `config` and a client on it (token auth unless told otherwise)."""
    config.setdefault("seed", 1)
    if credentials is _DEFAULT:
        config.setdefault("token", TOKEN)
        credentials = TokenAuth(TOKEN)
    sim = Simulator(SimulatorConfig(**config), host="127.0.0.1", port=0)
    await sim.start()
    try:
        async with make_client(session, sim.url, credentials, **(client_kwargs or {})) as client:
            yield sim, client
    finally:
        await sim.stop()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def loopback_app(handler: Handler) -> AsyncIterator[str]:
    """A one-handler HTTP server on 127.0.0.1, for answers the simulator never gives."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
