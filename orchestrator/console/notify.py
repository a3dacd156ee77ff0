"""Notifications: a JSON event posted to each `--notify URL` (a webhook) when something
the operator on call must know happens:

    canary_failed     the canary wave failed: nothing more is sent
    breaker_tripped   a failure budget or the breaker tripped (run-wide or one project)
    wave_ended        a wave is final (the next one starts)
    window_closed     the window or the deadline closed: no new reinstall is sent
    run_ended         the run ended: outcome, exit code, counts, the report

Each body carries `text` (one line a person reads: Slack's and Teams' incoming
webhooks show it) and the same facts as fields for machines. Posting never blocks
the run: events wait in a bounded queue, each is tried a few times with backoff,
and what cannot be delivered is logged and dropped. Nothing secret goes out: every
text is blanked against the secrets registry, and a webhook's own URL (its path
is often its secret) is never logged, only its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from yarl import URL

from orchestrator import redact
from orchestrator.clocks import wall_now
from orchestrator.cloud.endpoints import is_loopback
from orchestrator.cloud.network import Network
from orchestrator.errors import UsageError

log = logging.getLogger("orchestrator.notify")

KINDS = ("canary_failed", "breaker_tripped", "wave_ended", "window_closed", "run_ended")
QUEUED = 200  # events waiting at most; older ones are dropped first
ATTEMPTS = 4  # tries of one post
TIMEOUT = 10.0  # seconds per try
DRAIN = 15.0  # seconds the end of a run waits for what is queued
HURRIED = 2.0  # the same after a second Ctrl-C


def check_webhook(url: str) -> URL:
    """A --notify URL: https (http only to this machine), with a host, no user name or
    password in it (a query, as Teams' and Power Automate's URLs carry, is fine)."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise UsageError(f"--notify: not a URL ({exc})") from None
    if not url.isprintable() or parsed.scheme not in ("https", "http") or not parsed.host:
        raise UsageError("--notify: expected an http(s) URL with a host")
    if parsed.user or parsed.password:
        raise UsageError("--notify: the URL must not carry a user name or password")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise UsageError(f"--notify: plain http to {parsed.host}: use https")
    return parsed


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    text: str  # one line a person reads
    run_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: wall_now().isoformat(timespec="seconds"))

    def body(self) -> bytes:
        document = {
            "text": redact.blank(self.text),
            "event": self.kind,
            "run_id": self.run_id,
            "at": self.at,
            **{k: v for k, v in self.details.items() if k not in ("text", "event")},
        }
        return redact.blank(json.dumps(document, default=str, sort_keys=True)).encode()


class Notifier:
    """Posts events to every webhook, in the background; `async with` delivers what is
    queued (for at most DRAIN seconds) when the run ends."""

    def __init__(self, urls: Sequence[str], network: Network, *, drain: float = DRAIN) -> None:
        self._urls = [check_webhook(u) for u in urls]
        self._network = network
        self._drain = drain
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUED)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    def send(self, event: Event) -> None:
        """Queue an event; never waits."""
        if not self._urls:
            return
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self._queue.task_done()
                self.dropped += 1
        self._queue.put_nowait(event)

    def hurry(self) -> None:
        """Wait at most a moment for what is queued: the operator asked to stop now."""
        self._drain = min(self._drain, HURRIED)

    async def __aenter__(self) -> Notifier:
        if self._urls:
            self._session = self._network.session(4)
            self._task = asyncio.create_task(self._deliver(), name="notify")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self._drain)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _deliver(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                for url in self._urls:
                    await self._post(url, event)
            finally:
                self._queue.task_done()

    async def _post(self, url: URL, event: Event) -> None:
        assert self._session is not None
        body = event.body()
        proxy = self._network.proxies.for_url(url)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError, _Refused)),
                stop=stop_after_attempt(ATTEMPTS),
                wait=wait_exponential(multiplier=0.5, max=8.0),
                reraise=True,
            ):
                with attempt:
                    async with self._session.post(
                        url,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        proxy=proxy,
                        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                        allow_redirects=False,
                    ) as answer:
                        if answer.status >= 300:
                            raise _Refused(answer.status)
            self.delivered += 1
        except (aiohttp.ClientError, TimeoutError, _Refused) as exc:
            self.dropped += 1
            log.warning(
                "notification %s to %s not delivered after %d tries: %s",
                event.kind,
                url.host,
                ATTEMPTS,
                type(exc).__name__ if not isinstance(exc, _Refused) else exc,
            )


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")


class RolloutEvents(logging.Handler):
    """Turns the rollout's decisions (its log records, `extra={"rollout": kind}`) into
    events: a canary that failed, a budget or breaker that tripped, a wave that ended,
    a window that closed."""

    def __init__(self, notifier: Notifier, run_id: str) -> None:
        super().__init__(logging.INFO)
        self._notifier = notifier
        self._run_id = run_id
        self._sent: set[tuple[str, str]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "rollout", None)
        if not isinstance(kind, str):
            return
        try:
            detail = record.getMessage().removeprefix("rollout: ")
        except (TypeError, ValueError):
            return
        project = getattr(record, "project_id", None)
        found = _event_of(kind, detail)
        if found is None or found in self._sent:
            return
        self._sent.add(found)
        event, text = found
        details = {"rollout": kind, "project_id": project} if project else {"rollout": kind}
        self._notifier.send(Event(event, text, self._run_id, details))


_WAVE = re.compile(r"wave (\d+) started")


def _event_of(kind: str, detail: str) -> tuple[str, str] | None:
    """The event (and its text) a rollout decision makes, if any."""
    if kind == "hold:canary_failed":
        return "canary_failed", detail
    if kind.startswith("trip:"):
        return "breaker_tripped", detail
    if kind in ("hold:window_closed", "hold:cutoff"):
        return "window_closed", detail
    started = _WAVE.match(detail) if kind == "wave_started" else None
    if started is not None and int(started.group(1)) > 1:
        return "wave_ended", f"wave {int(started.group(1)) - 1} is final; {detail}"
    return None
