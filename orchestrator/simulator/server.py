"""Run the simulator in-process: start on a port (0 picks a free one), stop cleanly."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from orchestrator.simulator.app import SimulatorApp
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.http import LeanServer

# In-flight handlers get this long to finish when the simulator stops; idle
# keep-alive connections are closed at once.
SHUTDOWN_TIMEOUT = 2.0


class Simulator:
    """The fake ECS API on `host:port`; use `async with` or `start()`/`stop()`."""

    def __init__(
        self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.host = host
        self.port = port
        self._server: LeanServer | None = None
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
        server = LeanServer(self._app)
        self.port = await server.start(self.host, self.port)
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close(SHUTDOWN_TIMEOUT)

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
