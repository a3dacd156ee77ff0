"""The meter (rates, ETA) with an injected clock, the plain line, and the failure tap."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from orchestrator.console.livestats import FailureTap, LiveStats, in_flight
from orchestrator.console.progress import ProgressMeter, format_seconds
from orchestrator.model import TargetState as S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stats(
    counts: Mapping[S, int], *, reinstall: int = 0, queries: int = 0, throttled: int = 0
) -> LiveStats:
    return LiveStats(
        counts=dict(counts),
        total=sum(counts.values()),
        requests={"reinstall": reinstall, "job": queries, "server": 0},
        throttled=throttled,
        submit_limit=10.0,
        query_limit=50.0,
        in_flight=in_flight(counts),
        max_in_flight=200,
    )


def test_rates_and_eta_count_only_this_invocations_work() -> None:
    clock = Clock()
    meter = ProgressMeter(100, clock=clock)
    # Resumed: 40 were final before this invocation began.
    meter.begin(stats({S.SUCCEEDED: 40, S.PENDING: 60}))
    clock.now += 10
    reading = meter.read(
        stats(
            {S.SUCCEEDED: 55, S.FAILED: 5, S.RUNNING: 10, S.PENDING: 30}, reinstall=80, queries=400
        )
    )
    assert reading.final_here == 20
    assert reading.target_rate == pytest.approx(2.0)
    assert reading.eta == pytest.approx(40 / 2.0)
    assert reading.submit_rate == pytest.approx(8.0)
    assert reading.query_rate == pytest.approx(40.0)
    assert reading.stats.in_flight == 10


def test_current_request_rate_uses_the_recent_window_only() -> None:
    clock = Clock()
    meter = ProgressMeter(10, clock=clock)
    meter.begin(stats({S.PENDING: 10}))
    sent = 0
    for _ in range(30):  # 30 s at 10 requests/s
        clock.now += 1
        sent += 10
        meter.read(stats({S.PENDING: 10}, reinstall=sent))
    for _ in range(15):  # then 15 s at 2 requests/s
        clock.now += 1
        sent += 2
        reading = meter.read(stats({S.PENDING: 10}, reinstall=sent))
    assert reading.submit_rate == pytest.approx(2.0, abs=0.3)


def test_no_eta_before_anything_finished_and_zero_when_all_final() -> None:
    clock = Clock()
    meter = ProgressMeter(5, clock=clock)
    meter.begin(stats({S.PENDING: 5}))
    clock.now += 5
    assert meter.read(stats({S.PENDING: 4, S.SUBMITTED: 1})).eta is None
    assert meter.read(stats({S.SUCCEEDED: 5})).eta == 0.0


def test_plain_line_has_counts_rates_limits_throttling_and_in_flight() -> None:
    clock = Clock()
    meter = ProgressMeter(300, clock=clock)
    meter.begin(stats({S.PENDING: 300}))
    clock.now += 65
    line = meter.read(
        stats({S.SUCCEEDED: 100, S.FAILED: 20, S.RUNNING: 30, S.PENDING: 150}, throttled=7)
    ).line()
    assert line.startswith("120/300 final (100 succeeded, 20 failed, 30 running, 150 pending)")
    assert "submit 0.0/10 per s" in line and "query 0.0/50 per s" in line
    assert "throttled 7" in line and "in flight 30/200" in line
    assert "elapsed 00:01:05" in line


def test_summary_fields_name_every_state() -> None:
    meter = ProgressMeter(3, clock=Clock())
    meter.begin(stats({S.PENDING: 3}))
    fields = meter.read(stats({S.SUCCEEDED: 1, S.PENDING: 2})).fields()
    assert fields["event"] == "progress"
    assert set(fields["counts"]) == {s.value for s in S}
    assert (fields["final"], fields["total"]) == (1, 3)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "--:--:--"), (float("nan"), "--:--:--"), (0, "00:00:00"), (3725.9, "01:02:05")],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def _change(logger: logging.Logger, to: str, detail: str, **extra: str) -> None:
    logger.info(
        "%s/%s %s -> %s: %s",
        "p" * 32,
        "s-1",
        "running",
        to,
        detail,
        extra={
            "project_id": "p" * 32,
            "server_id": "s-1",
            "from_state": "running",
            "to_state": to,
            **extra,
        },
    )


def test_failure_tap_keeps_the_last_failures_with_their_codes() -> None:
    logger = logging.getLogger("test.failure_tap")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    tap = FailureTap(keep=2)
    logger.addHandler(tap)
    try:
        _change(logger, "succeeded", "job 1 SUCCESS")
        _change(logger, "failed", "job 2 FAIL", error_code="Ecs.0202")
        _change(logger, "failed", "rejected: Ecs.0100 the server is running")
        _change(logger, "failed", "job 4 FAIL")
    finally:
        logger.removeHandler(tap)
    recent = tap.recent()
    assert [n.error_code for n in recent] == ["Ecs.0100", None]
    assert recent[-1].detail == "job 4 FAIL"
    assert recent[0].server_id == "s-1"
