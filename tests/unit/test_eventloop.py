"""The event loop a run uses: the standard one unless uvloop is asked for and installed."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator import eventloop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize("asked", ["", "asyncio", "something"])
def test_the_standard_loop_unless_uvloop_is_asked_for(
    asked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(eventloop.LOOP_ENV, asked)
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_loop_type()).startswith("asyncio")


def test_uvloop_when_asked_for_and_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.setenv(eventloop.LOOP_ENV, "uvloop")
    assert eventloop.loop_name() == "uvloop"
    assert eventloop.run(_loop_type()).startswith("uvloop")
