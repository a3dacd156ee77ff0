"""Notifications posted to a webhook receiver on loopback: what arrives, when the
receiver fails, when it hangs, and what never goes out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from loopback import serve

from orchestrator import redact
from orchestrator.cloud.network import CaBundle, Network
from orchestrator.console import notify
from orchestrator.console.notify import Event, Notifier, RolloutEvents, check_webhook
from orchestrator.errors import UsageError

NETWORK = Network.of(CaBundle(None, "system"), proxies=False)


class Receiver:
    """A webhook on loopback: records each body; fails the first `failures` posts."""

    def __init__(self, failures: int = 0, hang: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.posts = 0
        self._failures = failures
        self._hang = hang

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        if self._hang:
            await asyncio.sleep(self._hang)
        if self.posts <= self._failures:
            return web.Response(status=503)
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=200, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    runner, port = await serve(hook.handle)
    yield hook, f"http://127.0.0.1:{port}/hooks/T000/B000/secretpath"
    await runner.cleanup()


async def test_an_event_arrives_with_a_text_for_people_and_fields_for_machines(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    async with Notifier([url], NETWORK) as notifier:
        notifier.send(Event("run_ended", "run finished: 20 succeeded", "run-1", {"exit_code": 0}))
    [body] = hook.bodies
    assert body["text"] == "run finished: 20 succeeded"  # Slack's and Teams' field
    assert (body["event"], body["run_id"], body["exit_code"]) == ("run_ended", "run-1", 0)
    assert body["at"].endswith("+00:00")


async def test_a_failing_receiver_is_tried_again_with_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = Receiver(failures=2)
    runner, port = await serve(hook.handle)
    try:
        async with Notifier([f"http://127.0.0.1:{port}/h"], NETWORK) as notifier:
            notifier.send(Event("breaker_tripped", "budget tripped", "run-1"))
        assert hook.posts == 3 and len(hook.bodies) == 1
        assert notifier.delivered == 1
    finally:
        await runner.cleanup()


async def test_a_hanging_receiver_never_blocks_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "TIMEOUT", 0.2)
    monkeypatch.setattr(notify, "ATTEMPTS", 1)
    hook = Receiver(hang=5.0)
    runner, port = await serve(hook.handle)
    try:
        notifier = Notifier([f"http://127.0.0.1:{port}/h"], NETWORK, drain=0.5)
        async with notifier:
            started = time.monotonic()
            for n in range(500):  # more than the queue holds: the oldest are dropped
                notifier.send(Event("wave_ended", f"wave {n}", "run-1"))
            assert time.monotonic() - started < 0.5  # sending never waits
        assert notifier.dropped >= 500 - notify.QUEUED
    finally:
        await runner.cleanup()


async def test_no_secret_goes_out_and_the_hooks_path_is_never_logged(
    receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    hook, url = receiver
    token = "tok-NOTIFY-SECRET-9b7e"
    redact.register(token)
    async with Notifier([url], NETWORK) as notifier:
        notifier.send(Event("canary_failed", f"refused: {token}", "run-1", {"why": token}))
    raw = json.dumps(hook.bodies)
    assert token not in raw and "***" in raw

    caplog.set_level(logging.WARNING, logger="orchestrator.notify")
    dead = url.replace(url.split("/")[2], "127.0.0.1:9")  # nothing listens on port 9
    async with Notifier([dead], NETWORK, drain=10) as notifier:
        notifier.send(Event("run_ended", "done", "run-1"))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not delivered" in messages and "secretpath" not in messages


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "http://hooks.example.com/x",  # plain http off this machine
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/\x1b[2J",
        "not a url",
    ],
)
def test_webhook_urls_are_checked(url: str) -> None:
    with pytest.raises(UsageError, match="--notify"):
        check_webhook(url)


def test_https_and_loopback_http_are_fine() -> None:
    assert check_webhook("https://example.webhook.office.com/x?sig=abc").host
    assert check_webhook("http://127.0.0.1:8080/x").port == 8080


async def test_rollout_decisions_become_events(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    log = logging.getLogger("orchestrator.rollout")
    async with Notifier([url], NETWORK) as notifier:
        tap = RolloutEvents(notifier, "run-1")
        log.addHandler(tap)
        try:
            for kind, detail in [
                ("wave_started", "wave 1 started (2 targets)"),
                ("wave_started", "wave 2 started (8 targets)"),
                ("hold:canary_failed", "the canary failed: nothing more is sent"),
                ("trip:run_budget", "--max-failures 2 tripped"),
                ("trip:run_budget", "--max-failures 2 tripped"),  # said once
                ("hold:window_closed", "the window closed at 05:00"),
                ("wait:wave_pause", "waiting between waves"),  # not an event
            ]:
                log.warning("rollout: %s", detail, extra={"rollout": kind})
        finally:
            log.removeHandler(tap)
    assert [(b["event"], b["text"]) for b in hook.bodies] == [
        ("wave_ended", "wave 1 is final; wave 2 started (8 targets)"),
        ("canary_failed", "the canary failed: nothing more is sent"),
        ("breaker_tripped", "--max-failures 2 tripped"),
        ("window_closed", "the window closed at 05:00"),
    ]
