"""Adaptive pacing (AIMD) on a fake clock: cuts, the one-cut-per-round-trip rule, regain, caps.

The last test closes the loop against the simulator's own token bucket in
simulated time: the controller must settle under a service limit four times
below its configured rate, throttled rarely and using most of the limit.
"""

from __future__ import annotations

import heapq
import logging
import math

import pytest

from orchestrator.engine.adaptive import (
    MIN_STATED_RATE,
    AdaptivePacing,
    AdaptiveRate,
    AimdSettings,
    stated_ceiling,
)
from orchestrator.engine.pacing import RateLimiter
from orchestrator.simulator.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(ceiling: float = 200.0, **settings: float) -> tuple[AdaptiveRate, RateLimiter, Clock]:
    clock = Clock()
    limiter = RateLimiter(ceiling, clock=clock)
    return AdaptiveRate(limiter, settings=AimdSettings(**settings), clock=clock), limiter, clock


def test_starts_at_the_configured_rate() -> None:
    adaptive, limiter, _ = make(200.0)
    assert adaptive.rate == adaptive.ceiling == limiter.rate == 200.0


def test_a_throttle_cuts_and_the_limiter_follows() -> None:
    adaptive, limiter, clock = make(200.0)
    assert adaptive.on_throttle(sent_at=clock.now - 0.01)
    assert adaptive.rate == pytest.approx(140.0)
    assert limiter.rate == pytest.approx(140.0)


def test_one_cut_per_round_trip() -> None:
    adaptive, _, clock = make(200.0)
    sent_before = clock.now - 0.05
    adaptive.on_throttle(sent_at=sent_before)
    # A burst of 429s for requests already on the wire when the cut was made.
    clock.now += 0.01
    for _ in range(50):
        assert not adaptive.on_throttle(sent_at=sent_before + 0.001)
    assert adaptive.rate == pytest.approx(140.0)
    assert (adaptive.throttles, adaptive.cuts) == (51, 1)
    # A request sent after the cut and still throttled: the new rate is too high too.
    assert adaptive.on_throttle(sent_at=clock.now - 0.001)
    assert adaptive.rate == pytest.approx(98.0)


def test_without_send_times_cuts_are_held_apart() -> None:
    adaptive, _, clock = make(200.0, hold=0.2)
    assert adaptive.on_throttle()
    clock.now += 0.1
    assert not adaptive.on_throttle()
    clock.now += 0.15
    assert adaptive.on_throttle()
    assert adaptive.rate == pytest.approx(98.0)


def test_never_below_the_floor() -> None:
    adaptive, limiter, clock = make(10.0, floor=2.0)
    for _ in range(20):
        clock.now += 1.0
        adaptive.on_throttle(sent_at=clock.now)
    assert adaptive.rate == limiter.rate == 2.0


def test_good_answers_regain_additively_up_to_the_ceiling() -> None:
    adaptive, limiter, clock = make(200.0, recovery=0.1)
    adaptive.on_throttle(sent_at=clock.now)  # 140; regains 14 per second
    clock.now += 1.0
    adaptive.on_ok()
    assert adaptive.rate == pytest.approx(154.0)
    clock.now += 0.5
    adaptive.on_ok()
    assert adaptive.rate == pytest.approx(161.0)
    for _ in range(10):
        clock.now += 1.0
        adaptive.on_ok()
    assert adaptive.rate == limiter.rate == 200.0


def test_a_silence_regains_at_most_one_step() -> None:
    adaptive, _, clock = make(200.0, recovery=0.1, max_step_seconds=1.0)
    adaptive.on_throttle(sent_at=clock.now)
    clock.now += 3600.0  # an hour with no answers, then one good answer
    adaptive.on_ok()
    assert adaptive.rate == pytest.approx(154.0)


def test_a_good_answer_at_the_same_instant_changes_nothing() -> None:
    adaptive, _, clock = make(200.0)
    adaptive.on_throttle(sent_at=clock.now)
    adaptive.on_ok()
    assert adaptive.rate == pytest.approx(140.0)


@pytest.mark.parametrize(
    "settings",
    [{"decrease": 1.0}, {"decrease": 0.0}, {"recovery": 0.0}, {"floor": 0.0}, {"hold": -1.0}],
)
def test_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AimdSettings(**settings)


async def test_pacing_adapts_each_api_on_each_endpoint_on_its_own() -> None:
    clock = Clock()
    pacing = AdaptivePacing({"reinstall": 200.0, "job": 1000.0, "server": None}, clock=clock)
    east, west = "http://127.0.0.1:1", "http://127.0.0.1:2"
    await pacing.acquire("job", east)  # created at the ceiling, and lets one through at once
    await pacing.acquire("server", east)  # no ceiling: not adapted, never waits
    pacing.on_answer("job", east, True, clock.now)
    pacing.on_answer("job", west, False, clock.now)
    pacing.on_answer("reinstall", east, False, clock.now)
    pacing.on_answer("server", east, True, clock.now)
    assert pacing.rates() == {
        ("job", east): pytest.approx(700.0),
        ("job", west): 1000.0,
        ("reinstall", east): 200.0,
    }
    clock.now += 1.0
    pacing.on_answer("job", east, False, clock.now)
    assert pacing.rates()[("job", east)] == pytest.approx(770.0)
    controller = pacing.controllers()[("job", east)]
    assert (controller.throttles, controller.cuts, controller.ceiling) == (1, 1, 1000.0)


# -- a limit the service stated ---------------------------------------------------------


def test_a_stated_limit_lowers_the_ceiling_for_good_and_holds_without_a_cut() -> None:
    adaptive, limiter, clock = make(20.0)
    assert adaptive.on_throttle(sent_at=clock.now, ceiling=5.0, until=clock.now + 60.0)
    assert (adaptive.rate, adaptive.ceiling, limiter.rate) == (5.0, 5.0, 5.0)
    assert (adaptive.throttles, adaptive.cuts) == (1, 0)
    # Nothing before the window ends, whatever the rate does meanwhile.
    assert limiter._next == clock.now + 60.0
    # Good answers regain up to the new ceiling, never above it.
    for _ in range(30):
        clock.now += 1.0
        adaptive.on_ok()
    assert adaptive.rate == limiter.rate == 5.0
    # The same limit stated again lowers nothing: a plain cut, below the ceiling.
    assert adaptive.on_throttle(sent_at=clock.now, ceiling=5.0, until=clock.now + 60.0)
    assert (adaptive.rate, adaptive.ceiling, adaptive.cuts) == (pytest.approx(3.5), 5.0, 1)
    # A higher limit stated later never raises it.
    assert not adaptive.limit(50.0)
    assert adaptive.ceiling == 5.0


def test_a_stated_limit_below_the_floor_is_kept() -> None:
    """30 a minute is below AIMD's floor (0.5/s): the ceiling wins over the floor."""
    adaptive, limiter, clock = make(20.0, floor=0.5)
    ceiling = stated_ceiling(30, 60.0)
    adaptive.on_throttle(sent_at=clock.now, ceiling=ceiling)
    for _ in range(5):
        clock.now += 1.0
        adaptive.on_throttle(sent_at=clock.now)
    assert adaptive.rate == limiter.rate == ceiling < 0.5


def test_stated_ceiling() -> None:
    # 29 intervals in 60.6 s: 30 sends in any minute, burst included, 0.6 s of jitter.
    assert stated_ceiling(30, 60.0) == pytest.approx(29 / 60.6)
    assert stated_ceiling(20, 1.0) == pytest.approx(19 / 1.01)
    assert stated_ceiling(20, 1.0, burst=5, guard=0.0) == pytest.approx(15.0)
    assert stated_ceiling(1, 1.0) == pytest.approx(0.5 / 1.01)  # no larger than the burst
    assert stated_ceiling(2, 86400.0) == MIN_STATED_RATE  # never slower than one a minute
    for calls, seconds in ((0, 60.0), (True, 60.0), (1.5, 60.0), (5, 0.0), (5, math.nan)):
        with pytest.raises(ValueError):
            stated_ceiling(calls, seconds)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        stated_ceiling(5, math.inf)


def learned_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "orchestrator.pacing"]


def test_pacing_learns_a_stated_limit_per_api_and_endpoint_and_says_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator.pacing")
    clock = Clock()
    pacing = AdaptivePacing({"reinstall": 20.0, "job": 50.0}, clock=clock)
    for _ in range(3):  # the refusals of the calls in flight when the minute filled
        pacing.on_answer("reinstall", "eu-de", True, clock.now, (30, 60.0))
    pacing.on_answer("reinstall", "eu-nl", False, clock.now)
    pacing.on_answer("job", "eu-de", True, clock.now)  # no limit stated: AIMD
    rates = pacing.rates()
    assert rates[("reinstall", "eu-de")] == pytest.approx(29 / 60.6)
    assert rates[("reinstall", "eu-nl")] == 20.0
    assert rates[("job", "eu-de")] == pytest.approx(35.0)
    learned = pacing.controllers()[("reinstall", "eu-de")]
    assert (learned.throttles, learned.ceiling) == (3, pytest.approx(29 / 60.6))
    said = learned_lines(caplog)
    assert said == [
        "The gateway allows 30 reinstall calls a minute on eu-de: paced at 0.479/s from now"
        " on (was 20/s), after a pause of 60 s while its window is full"
    ]
    # A window longer than a minute holds the API a minute, not an hour.
    pacing.on_answer("job", "eu-nl", True, clock.now, (100, 3600.0))
    limiter, control = pacing._limiters[("job", "eu-nl")]
    assert limiter._next == clock.now + 60.0
    assert control.ceiling == pytest.approx(99 / 3636)
    said = learned_lines(caplog)
    assert len(said) == 2
    assert said[1].startswith("The gateway allows 100 job calls an hour on eu-nl: paced at")


def simulate(ceiling: float, limit: float, seconds: float, rtt: float) -> tuple[float, float]:
    """Send as fast as the controller allows to a token bucket of `limit`/s (the
    simulator's, capacity one second's worth); answers come back after `rtt`.
    Returns (share of requests throttled, accepted rate / limit) after a warm-up."""
    clock = Clock()
    start = clock.now
    adaptive = AdaptiveRate(RateLimiter(ceiling, clock=clock), clock=clock)
    bucket = TokenBucket(limit, limit, limit)
    answers: list[tuple[float, float, bool]] = []  # (answer time, sent_at, throttled)
    next_send = start
    sent = throttled = accepted = 0
    warmup = start + 10.0
    while next_send < start + seconds:
        while answers and answers[0][0] <= next_send:
            at, sent_at, was_throttled = heapq.heappop(answers)
            clock.now = at
            if was_throttled:
                adaptive.on_throttle(sent_at)
            else:
                adaptive.on_ok()
        clock.now = next_send
        refused = bucket.take(next_send) > 0
        heapq.heappush(answers, (next_send + rtt, next_send, refused))
        if next_send >= warmup:
            sent += 1
            throttled += refused
            accepted += not refused
        next_send += 1.0 / adaptive.rate
    return throttled / sent, accepted / (limit * (seconds - 10.0))


@pytest.mark.parametrize(
    ("ceiling", "limit", "rtt"),
    [(200.0, 50.0, 0.005), (1000.0, 50.0, 0.005), (200.0, 50.0, 0.2), (100.0, 80.0, 0.05)],
)
def test_settles_under_a_service_limit(ceiling: float, limit: float, rtt: float) -> None:
    throttled, used = simulate(ceiling, limit, seconds=300.0, rtt=rtt)
    assert throttled <= 0.05, f"{throttled:.1%} throttled"
    assert used >= 0.80, f"{used:.1%} of the limit used"


def test_without_a_limit_it_stays_at_the_ceiling() -> None:
    throttled, used = simulate(50.0, 1000.0, seconds=60.0, rtt=0.005)
    assert throttled == 0
    assert used == pytest.approx(50.0 / 1000.0, rel=0.01)


def test_a_cut_keeps_most_of_what_the_service_just_accepted() -> None:
    # On loopback, throttled answers sent after each cut come back within a millisecond:
    # "once per round trip" alone would cut 20 times in 20 ms, to the floor.
    adaptive, _, clock = make(1000.0)
    for _ in range(50):  # the service accepted 50 in the last second
        clock.now += 0.01
        adaptive.on_ok()
    for _ in range(20):
        clock.now += 0.001
        adaptive.on_throttle(sent_at=clock.now - 0.0005)
    assert adaptive.rate == pytest.approx(45.0)  # 90 % of 50/s, not 1000 * 0.7**20
    clock.now += 5.0  # a second later nothing was accepted: the rule no longer holds it
    adaptive.on_throttle(sent_at=clock.now)
    assert adaptive.rate == pytest.approx(45.0 * 0.7)


def test_a_collapse_burst_then_good_answers_settle_near_the_limit() -> None:
    # The shape that collapsed the rate in benchmarks/adaptive_pacing.py.
    throttled, used = simulate(1000.0, 50.0, seconds=120.0, rtt=0.0005)
    assert throttled <= 0.05 and used >= 0.80, (throttled, used)
