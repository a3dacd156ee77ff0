"""One exit code for a state: a run's outcome, `status` and `report` all ask `exit_code`."""

from __future__ import annotations

import pytest

from orchestrator.console.status_view import StatusSnapshot
from orchestrator.engine.outcome import Outcome, exit_code
from orchestrator.model import TargetState as S

CASES = [
    # (counts, credentials refused, misconfigured, exit code)
    ({S.SUCCEEDED: 3}, False, False, 0),
    ({S.SUCCEEDED: 2, S.SKIPPED: 1}, False, False, 0),
    ({S.SUCCEEDED: 2, S.FAILED: 1}, False, False, 1),
    ({S.SUCCEEDED: 2, S.PENDING: 1}, False, False, 3),
    ({S.FAILED: 1, S.IN_DOUBT: 1}, False, False, 3),
    ({S.SUBMITTING: 1}, False, False, 3),
    ({S.SUCCEEDED: 3, S.PENDING: 0}, False, False, 0),
    ({}, False, False, 0),
    # A run stopped for its configuration says so, whatever is left.
    ({S.PENDING: 5}, True, False, 2),
    ({S.SUCCEEDED: 5}, False, True, 2),
]


@pytest.mark.parametrize(("counts", "refused", "misconfigured", "code"), CASES)
def test_a_run_exits_as_the_table_says(
    counts: dict[S, int], refused: bool, misconfigured: bool, code: int
) -> None:
    outcome = Outcome(counts, credentials_refused=refused, misconfigured=misconfigured)
    assert outcome.exit_code == code
    assert exit_code(counts, credentials_refused=refused, misconfigured=misconfigured) == code


@pytest.mark.parametrize(("counts", "refused", "misconfigured", "code"), CASES)
def test_status_of_the_same_counts_exits_as_the_run_ended(
    counts: dict[S, int], refused: bool, misconfigured: bool, code: int
) -> None:
    # A status reads the counts back by their values, and knows nothing of why a run
    # stopped: it gives the run's code wherever that came from the counts alone.
    by_value = {state.value: n for state, n in counts.items()}
    snap = StatusSnapshot(
        run_id="r",
        state_path="s.sqlite",
        inventory_path=None,
        created_at="2026-01-01T00:00:00Z",
        generated_at="2026-01-01T00:00:00Z",
        total=sum(by_value.values()),
        counts=by_value,
        failures=[],
        in_doubt=[],
        deferred=[],
        deferred_count=0,
        invocations=0,
        invocation=None,
        first_started_at=None,
        requests={},
        throttled=0,
    )
    assert snap.exit_code == exit_code(by_value) == exit_code(counts)
    if not (refused or misconfigured):
        assert snap.exit_code == code
