"""The run's counters and rates in Prometheus' text exposition format (version 0.0.4):

    --metrics-file PATH   rewritten every few seconds (and at the end), for
                          node_exporter's textfile collector: written to a new file
                          beside it, then renamed over it (never half a file)
    --metrics-port PORT   served at http://127.0.0.1:PORT/metrics while the run lasts
                          (loopback unless --metrics-address says otherwise: the
                          numbers say what is being wiped)

Every metric is labelled with the run id (and the shard, where there is one), so
several campaigns can share one collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.console.livestats import LiveStats
from orchestrator.model import TargetState

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("orchestrator.metrics")
PREFIX = "orchestrator"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EVERY = 5.0  # seconds between rewrites of --metrics-file


@dataclass(frozen=True, slots=True)
class Labels:
    run_id: str
    shard: str | None = None

    def render(self, **more: str) -> str:
        pairs = {"run_id": self.run_id, **({"shard": self.shard} if self.shard else {}), **more}
        return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())


def render(stats: LiveStats, labels: Labels, *, elapsed: float) -> str:
    """One scrape: the targets by state, requests by API, throttled answers, what is in
    flight, the rates set and adapted, the elapsed time."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: Iterator[tuple[str, float]]) -> None:
        full = f"{PREFIX}_{name}"
        lines.append(f"# HELP {full} {help_}")
        lines.append(f"# TYPE {full} {kind}")
        lines.extend(f"{full}{{{label}}} {_number(value)}" for label, value in samples)

    metric(
        "targets",
        "gauge",
        "Targets of the campaign (this shard) by state.",
        ((labels.render(state=s.value), stats.counts.get(s, 0)) for s in TargetState),
    )
    metric(
        "requests_total",
        "counter",
        "Requests sent to the ECS API by this invocation, by API.",
        ((labels.render(api=k), v) for k, v in sorted(stats.requests.items())),
    )
    metric(
        "throttled_total",
        "counter",
        "Throttling answers received by this invocation.",
        iter([(labels.render(), stats.throttled)]),
    )
    metric(
        "in_flight",
        "gauge",
        "Servers a reinstall may be under way for.",
        iter([(labels.render(), stats.in_flight)]),
    )
    metric(
        "max_in_flight",
        "gauge",
        "The --max-in-flight limit.",
        iter([(labels.render(), stats.max_in_flight)]),
    )
    metric(
        "deferred",
        "gauge",
        "Targets left pending for a later run by this invocation.",
        iter([(labels.render(), stats.deferred or 0)]),
    )
    rates: dict[str, float | None] = {
        "reinstall": stats.submit_limit,
        "query": stats.query_limit,
    }
    metric(
        "rate_limit",
        "gauge",
        "Requests per second allowed (--rate, --poll-rate).",
        ((labels.render(api=k), v) for k, v in rates.items() if v is not None),
    )
    adapted = {"reinstall": stats.submit_rate_adaptive, "query": stats.query_rate_adaptive}
    metric(
        "rate_adapted",
        "gauge",
        "Requests per second the run settled at below the limit (adaptive pacing).",
        ((labels.render(api=k), v) for k, v in adapted.items() if v is not None),
    )
    metric(
        "elapsed_seconds",
        "gauge",
        "Seconds since this invocation started.",
        iter([(labels.render(), elapsed)]),
    )
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def write_file(path: Path, text: str) -> None:
    """Replace `path` with `text` whole: a new file beside it, renamed over it, so the
    collector never reads half of one; never written through a link."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class Exporter:
    """Keeps --metrics-file fresh and serves --metrics-port while a run lasts."""

    def __init__(
        self,
        snapshot: Callable[[], LiveStats],
        labels: Labels,
        *,
        file: Path | None = None,
        port: int | None = None,
        address: str = "127.0.0.1",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._labels = labels
        self._file = file
        self._port = port
        self._address = address
        self._clock = clock or time.monotonic
        self._started = self._clock()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def text(self) -> str:
        return render(self._snapshot(), self._labels, elapsed=self._clock() - self._started)

    async def __aenter__(self) -> Exporter:
        if self._file is not None:
            self._task = asyncio.create_task(self._keep_writing(), name="metrics-file")
        if self._port is not None:
            # Only with a port: aiohttp's server side is not loaded for every command.
            from aiohttp import web

            app = web.Application()
            app.router.add_get("/metrics", self._serve)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._address, self._port)
            await site.start()
            bound = self._runner.addresses[0][1] if self._runner.addresses else self._port
            self.url = f"http://{self._address}:{bound}/metrics"
            # On the console too: with --metrics-port 0 this is where the port is said.
            logging.getLogger("orchestrator.progress").info("metrics served at %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._write()  # the final figures
        if self._runner is not None:
            await self._runner.cleanup()

    async def _keep_writing(self) -> None:
        while True:
            self._write()
            await asyncio.sleep(EVERY)

    def _write(self) -> None:
        if self._file is None:
            return
        try:
            write_file(self._file, self.text())
        except OSError as exc:
            log.warning("could not write %s: %s", self._file, exc.strerror)

    async def _serve(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(body=self.text().encode(), headers={"Content-Type": CONTENT_TYPE})
