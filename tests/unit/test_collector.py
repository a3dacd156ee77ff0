"""The collector's settings while a run's loop runs, and that they are undone after."""

from __future__ import annotations

import gc

import pytest

from orchestrator import collector, eventloop


async def _seen() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


@pytest.fixture(autouse=True)
def _python_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(collector.GC_ENV, raising=False)
    assert gc.get_freeze_count() == 0, "another test left objects frozen"


def test_a_run_collects_the_young_generation_less_often_and_freezes_its_start() -> None:
    before = gc.get_threshold()
    threshold, frozen = eventloop.run(_seen())
    assert threshold == (collector.YOUNG_THRESHOLD, *before[1:])
    assert frozen > 1000  # at least the modules imported so far
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_are_undone_when_the_run_fails() -> None:
    before = gc.get_threshold()

    async def fail() -> None:
        assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        eventloop.run(fail())
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_within_a_run() -> None:
    class Node:
        other: Node

    async def make_garbage() -> bool:
        a, b = Node(), Node()
        a.other, b.other = b, a
        probe = gc.get_count()[0]
        del a, b
        # Enough new containers to pass the raised threshold: a young collection runs.
        keep = [[] for _ in range(collector.YOUNG_THRESHOLD + 100)]
        assert gc.get_count()[0] < probe + len(keep)
        return not any(isinstance(o, Node) for o in gc.get_objects())

    assert eventloop.run(make_garbage())


def test_default_keeps_pythons_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(collector.GC_ENV, "default")
    before = gc.get_threshold()
    assert eventloop.run(_seen()) == (before, 0)
