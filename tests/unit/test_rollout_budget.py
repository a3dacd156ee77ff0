"""Failure budgets, the same-code breaker and --ack-failures, fed outcome by outcome."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from orchestrator.errors import UsageError
from orchestrator.rollout.budget import (
    FailureLedger,
    Limit,
    Outcome,
    TripKind,
    parse_limit,
)


@pytest.mark.parametrize(
    ("text", "limit", "allowed_of_1000"),
    [
        ("0", Limit(count=0), 0),
        ("25", Limit(count=25), 25),
        ("2%", Limit(percent=2.0), 20),
        ("0.5%", Limit(percent=0.5), 5),
        ("0%", Limit(percent=0.0), 0),
        ("100%", Limit(percent=100.0), 1000),
    ],
)
def test_parse_limit(text: str, limit: Limit, allowed_of_1000: int) -> None:
    parsed = parse_limit(text, "--max-failures")
    assert parsed == limit
    assert parsed.allowed(1000) == allowed_of_1000


@pytest.mark.parametrize("text", ["", "-1", "x", "101%", "-1%", "1.5"])
def test_parse_limit_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--max-failures-per-project: "):
        parse_limit(text, "--max-failures-per-project")


def test_max_consecutive_must_be_positive() -> None:
    with pytest.raises(UsageError, match="--max-consecutive-failures"):
        FailureLedger(10, {"p": 10}, max_consecutive=0)


def feed(ledger: FailureLedger, outcomes: Iterable[tuple[str, bool, str | None]]) -> list[str]:
    """Record (project, succeeded, code) in order; returns the trips as 'kind:project'."""
    tripped: list[str] = []
    for seq, (project, ok, code) in enumerate(outcomes, start=1):
        for trip in ledger.record(Outcome(seq, seq, project, ok, code)):
            tripped.append(f"{trip.kind}:{trip.project_id}")
    return tripped


FAIL = ("a", False, "Ecs.0605")
OK = ("a", True, None)
THROTTLED = ("a", False, "Common.1503")


@pytest.mark.parametrize(
    ("max_failures", "fleet", "outcomes", "trips"),
    [
        # Exceeding trips: 2 allowed, the 3rd failure trips.
        (Limit(count=2), 100, [FAIL, OK, FAIL], []),
        (Limit(count=2), 100, [FAIL, OK, FAIL, FAIL], ["run_budget:None"]),
        (Limit(count=0), 100, [OK, FAIL], ["run_budget:None"]),
        # 2% of 100 is 2.
        (Limit(percent=2.0), 100, [FAIL, FAIL], []),
        (Limit(percent=2.0), 100, [FAIL, FAIL, FAIL], ["run_budget:None"]),
        # Flow control never counts, successes neither.
        (Limit(count=0), 100, [THROTTLED, THROTTLED, OK], []),
        # Trips once, not at every failure after.
        (Limit(count=0), 100, [FAIL, FAIL, FAIL], ["run_budget:None"]),
        (None, 100, [FAIL] * 5, []),
    ],
)
def test_run_budget(
    max_failures: Limit | None,
    fleet: int,
    outcomes: list[tuple[str, bool, str | None]],
    trips: list[str],
) -> None:
    ledger = FailureLedger(fleet, {"a": fleet}, max_failures=max_failures, max_consecutive=None)
    assert feed(ledger, outcomes) == trips
    if trips:
        assert ledger.run_trip is not None
        assert (
            ledger.run_trip.failures
            == tuple(i for i, o in enumerate(outcomes, start=1) if o[2] == "Ecs.0605")[
                : len(ledger.run_trip.failures)
            ]
        )
        assert "--max-failures" in ledger.run_trip.message
    else:
        assert ledger.run_trip is None


def test_project_budget_trips_one_project_only() -> None:
    ledger = FailureLedger(
        30,
        {"a": 10, "b": 20},
        max_failures_per_project=Limit(percent=10.0),
        max_consecutive=None,
    )
    # a: 10% of 10 = 1 allowed; b: 2 allowed.
    trips = feed(
        ledger,
        [
            ("a", False, "Ecs.0605"),
            ("b", False, "Ecs.0605"),
            ("b", False, "Ecs.0605"),
            ("a", False, "Ecs.0105"),
        ],
    )
    assert trips == ["project_budget:a"]
    trip = ledger.project_trip("a")
    assert trip is not None and trip.failures == (1, 4)
    assert "project a" in trip.message
    assert ledger.project_trip("b") is None
    assert ledger.run_trip is None
    assert ledger.failures == 4
    assert ledger.codes == {"Ecs.0605": 3, "Ecs.0105": 1}


def test_breaker_pauses_a_project_with_the_hint() -> None:
    ledger = FailureLedger(100, {"a": 50, "b": 50}, max_consecutive=3)
    trips = feed(
        ledger,
        [
            ("a", False, "Ecs.0100"),
            ("a", False, "Ecs.0100"),
            ("b", False, "Ecs.0100"),  # another project does not extend a's run
            ("a", True, None),  # a success breaks the run
            ("a", False, "Ecs.0100"),
            ("a", False, "Ecs.0605"),  # another code starts a new run
            ("a", False, "Ecs.0100"),
            ("a", False, "Common.1503"),  # flow control neither breaks nor extends
            ("a", False, "Ecs.0100"),
            ("a", False, "Ecs.0100"),
        ],
    )
    assert trips == ["consecutive:a"]
    trip = ledger.project_trip("a")
    assert trip is not None
    assert trip.kind is TripKind.CONSECUTIVE
    assert trip.code == "Ecs.0100"
    assert trip.failures == (7, 9, 10)
    assert "--stop-server" in trip.message
    assert "3 failures in a row with Ecs.0100" in trip.message
    assert ledger.project_trip("b") is None


def test_breaker_latches() -> None:
    ledger = FailureLedger(100, {"a": 100}, max_consecutive=2)
    feed(ledger, [("a", False, "Ecs.0114")] * 2 + [("a", True, None)])
    trip = ledger.project_trip("a")
    assert trip is not None and "is the project ID right?" in trip.message


def test_the_default_breaker_stops_a_wrong_project_id_within_ten() -> None:
    ledger = FailureLedger(1000, {"a": 1000})
    trips = feed(ledger, [("a", False, "Ecs.0114")] * 12)
    assert trips == ["consecutive:a"]
    trip = ledger.project_trip("a")
    assert trip is not None and len(trip.failures) == 10


def test_ack_failures_stops_counting_what_came_before() -> None:
    outcomes = [FAIL, FAIL, FAIL, OK, FAIL]
    # Before the ack: tripped at the 2nd failure.
    before = FailureLedger(100, {"a": 100}, max_failures=Limit(count=1), max_consecutive=3)
    assert feed(before, outcomes) == ["run_budget:None", "consecutive:a"]
    # Replayed with the ack at seq 3: only seq 5 counts; nothing trips.
    after = FailureLedger(
        100, {"a": 100}, max_failures=Limit(count=1), max_consecutive=3, acked_through=3
    )
    assert feed(after, outcomes) == []
    assert after.failures == 1
    assert after.trips() == []
    assert after.last_seq == 5
    # ... until a new failure exceeds the budget again.
    assert [t.kind for t in after.record(Outcome(6, 6, "a", False, "Ecs.0605"))] == [
        TripKind.RUN_BUDGET
    ]


def test_replay_rebuilds_the_same_trips() -> None:
    outcomes = [("a", False, "Ecs.0314")] * 4 + [("b", False, "Ecs.0605")] * 2
    first = FailureLedger(
        10, {"a": 5, "b": 5}, max_failures_per_project=Limit(count=1), max_consecutive=3
    )
    second = FailureLedger(
        10, {"a": 5, "b": 5}, max_failures_per_project=Limit(count=1), max_consecutive=3
    )
    feed(first, outcomes)
    feed(second, outcomes)
    assert first.trips() == second.trips()
    assert [t.kind for t in first.trips()] == [
        TripKind.PROJECT_BUDGET,
        TripKind.PROJECT_BUDGET,
        TripKind.CONSECUTIVE,
    ]
    # The budget is named first when both hold a project.
    trip = first.project_trip("a")
    assert trip is not None and trip.kind is TripKind.PROJECT_BUDGET
