"""The Prometheus text the run exposes, read back by the prometheus_client parser."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.console.livestats import LiveStats
from orchestrator.console.metrics import Exporter, Labels, render, write_file
from orchestrator.model import TargetState

S = TargetState


def stats(**changes: object) -> LiveStats:
    base = {
        "counts": {S.SUCCEEDED: 7, S.FAILED: 1, S.RUNNING: 2, S.PENDING: 10},
        "total": 20,
        "requests": {"reinstall": 10, "job": 31, "server": 12},
        "throttled": 3,
        "submit_limit": 10.0,
        "query_limit": 50.0,
        "in_flight": 2,
        "max_in_flight": 200,
        "deferred": 1,
        "submit_rate_adaptive": 8.5,
    }
    return LiveStats(**{**base, **changes})  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_exposition_parses_and_says_what_the_run_says() -> None:
    text = render(stats(), Labels("20261206T020000Z-abc123", shard="1/2"), elapsed=61.5)
    got = samples(text)
    run = (("run_id", "20261206T020000Z-abc123"), ("shard", "1/2"))

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted((*run, *labels.items())))

    assert got[key("orchestrator_targets", state="succeeded")] == 7
    assert got[key("orchestrator_targets", state="skipped")] == 0  # every state, always
    assert got[key("orchestrator_requests_total", api="job")] == 31
    assert got[key("orchestrator_throttled_total")] == 3
    assert got[key("orchestrator_in_flight")] == 2
    assert got[key("orchestrator_rate_limit", api="reinstall")] == 10
    assert got[key("orchestrator_rate_adapted", api="reinstall")] == 8.5
    assert key("orchestrator_rate_adapted", api="query") not in got  # not adapted
    assert got[key("orchestrator_elapsed_seconds")] == 61.5
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["orchestrator_requests"] == "counter"
    assert families["orchestrator_targets"] == "gauge"


def test_a_hostile_run_id_cannot_break_the_format() -> None:
    hostile = 'x"} 1\norchestrator_fake{a="b'
    got = samples(render(stats(), Labels(hostile), elapsed=1.0))
    assert ("orchestrator_fake", (("a", "b"),)) not in got
    assert any(dict(labels).get("run_id") == hostile for _, labels in got)


def test_the_file_is_replaced_whole_and_never_through_a_link(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.prom"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path.symlink_to(victim)
    write_file(path, "a 1\n")
    # The link itself was replaced (os.replace renames over the name), its target kept.
    assert not path.is_symlink() and path.read_text() == "a 1\n"
    assert victim.read_text() == "precious"
    write_file(path, "b 2\n")
    assert path.read_text() == "b 2\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert os.stat(path).st_mode & 0o777 == 0o644  # node_exporter reads it


async def test_the_port_serves_the_same_text_on_loopback(tmp_path: Path) -> None:
    exporter = Exporter(stats, Labels("run-1"), port=0, file=tmp_path / "m.prom")
    async with exporter:
        assert exporter.url is not None and exporter.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(exporter.url) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            served = await answer.text()
    got = samples(served)
    assert got[("orchestrator_targets", (("run_id", "run-1"), ("state", "failed")))] == 1
    assert samples((tmp_path / "m.prom").read_text())  # written at the end too


@pytest.mark.parametrize("value", [0.0, 1.0, 1e9, 0.25])
def test_numbers_are_plain(value: float) -> None:
    text = render(stats(throttled=value), Labels("r"), elapsed=0.0)
    assert samples(text)[("orchestrator_throttled_total", (("run_id", "r"),))] == value
