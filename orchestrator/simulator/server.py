"""Run the simulator in-process: start on a port (0 picks a free one), stop cleanly."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any

from aiohttp import web

from orchestrator.simulator.app import SimulatorApp
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.faults import Faults

# In-flight handlers get this long to finish when the simulator stops; idle
# keep-alive connections are closed at once.
SHUTDOWN_TIMEOUT = 2.0


class Simulator:
    """The fake ECS API on `host:port`, over HTTPS when given a server-side `tls`
    context; use `async with` or `start()`/`stop()`."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        faults: Faults | None = None,
    ) -> None:
        """`faults`: where injected faults come from (default: the config's rates; a
        test scripts them with `ScriptedFaults`)."""
        self.config = config if config is not None else SimulatorConfig()
        self._faults = faults
        self.host = host
        self.port = port
        self.tls = tls
        self._runner: web.AppRunner | None = None
        self._app: SimulatorApp | None = None

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the simulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """The same counters as `GET /_sim/stats`."""
        if self._app is None:
            raise RuntimeError("the simulator was never started")
        return self._app.stats()

    def start_server(self, project_id: str, server_id: str) -> None:
        """Someone else starts a stopped server now (a start, not a reinstall)."""
        if self._app is None:
            raise RuntimeError("the simulator was never started")
        self._app.world.start_server(project_id, server_id, self._app.now())

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._app = SimulatorApp(self.config, faults=self._faults)
        runner = web.AppRunner(
            self._app.build(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=self.tls).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
