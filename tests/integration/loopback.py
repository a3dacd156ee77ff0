"""A catch-all aiohttp server on a free loopback port, for the tests' own fake services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web


async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, int]:
    """Start an app on 127.0.0.1 that hands every request to `handler`; (runner, port)."""
    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
