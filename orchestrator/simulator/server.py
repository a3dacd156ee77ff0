"""Run the simulator in-process: start on a port (0 picks a free one), stop cleanly."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from orchestrator.simulator.app import SimulatorApp
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.http import LeanServer

# aiohttp's server (the default: what every test talks to), or the simulator's own
# lean HTTP/1.1 protocol, which needs about 40 % less CPU per request: the fleet-scale
# benchmarks use it so that a simulator on the same cores takes less from the client.
HttpServer = Literal["aiohttp", "lean"]

# In-flight handlers get this long to finish when the simulator stops; idle
# keep-alive connections are closed at once.
SHUTDOWN_TIMEOUT = 2.0


class Simulator:
    """The fake ECS API on `host:port`; use `async with` or `start()`/`stop()`."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        http: HttpServer = "aiohttp",
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.host = host
        self.port = port
        self.http = http
        self._server: LeanServer | web.AppRunner | None = None
        self._app: SimulatorApp | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """The same counters as `GET /_sim/stats`."""
        if self._app is None:
            raise RuntimeError("the simulator was never started")
        return self._app.stats()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._app = SimulatorApp(self.config)
        if self.http == "lean":
            server = LeanServer(self._app)
            self.port = await server.start(self.host, self.port)
            self._server = server
            return
        runner = web.AppRunner(
            self._app.build(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._server = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if isinstance(server, LeanServer):
            await server.close(SHUTDOWN_TIMEOUT)
        elif server is not None:
            await server.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
