"""The state store's retry path on real SQLite files: reopen, the fed selection, cloud_init."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.model import IllegalTransition, TargetSpec, TargetState, check_reopen
from orchestrator.store.records import Change
from orchestrator.store.sqlite import StateStore

S = TargetState
PROJECT = "0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.timeout(30)


def spec(n: int, **changes: object) -> TargetSpec:
    fields: dict[str, object] = {
        "project_id": PROJECT,
        "server_id": f"00000000-0000-4000-8000-{n:012x}",
        "keyname": "fleet-key",
        "userid": "c4647159c324c9859b810e766ec9d286",
        "line": n + 1,
    }
    fields.update(changes)
    return TargetSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    targets = [spec(n, cloud_init=n % 2 == 0) for n in range(1, 7)]
    with StateStore.create(
        tmp_path / "s.sqlite", targets, inventory_path="f.csv", inventory_sha256="ab" * 32
    ) as opened:
        opened.begin_invocation({}, None)
        yield opened


def fail(store: StateStore, target_id: int, code: str = "Ecs.0605") -> None:
    assert store.apply(
        [
            Change(target_id, S.PENDING, S.SUBMITTING, "intent", {"attempts": 1}),
            Change(target_id, S.SUBMITTING, S.SUBMITTED, "job", {"job_id": f"job-{target_id}"}),
            Change(
                target_id,
                S.SUBMITTED,
                S.FAILED,
                "job failed",
                {"error_code": code, "fail_reason": "locked", "not_accepted": 2},
            ),
        ]
    ) == [True, True, True]


def test_cloud_init_is_stored_per_target_and_read_back(store: StateStore) -> None:
    assert [t.spec.cloud_init for t in store.iter_targets()] == [False, True] * 3
    assert [t.spec.api for t in store.iter_targets()][:2] == ["v1", "v2"]
    assert store.has_cloud_init_targets()


def test_reopen_moves_failed_to_pending_with_an_event_and_keeps_the_attempts(
    store: StateStore,
) -> None:
    fail(store, 1)
    fail(store, 2)

    assert store.reopen([1, 3], "--state-is failed") == 1  # 3 is pending: left alone

    one = store.get(1)
    assert (one.state, one.attempts, one.not_accepted) == (S.PENDING, 1, 0)
    assert (one.error_code, one.fail_reason, one.job_id, one.finished_at) == (None,) * 4
    assert store.get(2).state is S.FAILED and store.get(3).state is S.PENDING
    last = store.events(1)[-1]
    assert (last.from_state, last.to_state, last.invocation) == ("failed", "pending", 1)
    assert last.detail == (
        "retry requested (--state-is failed); was failed after 1 attempt(s): Ecs.0605 locked"
        " (job job-1)"
    )
    assert len(store.events(3)) == 0


def test_no_run_can_reopen_a_failed_target_by_itself(store: StateStore) -> None:
    fail(store, 1)

    with pytest.raises(IllegalTransition):
        store.apply([Change(1, S.FAILED, S.PENDING, "sneaky")])
    with pytest.raises(IllegalTransition):
        check_reopen(S.SUCCEEDED)
    assert store.get(1).state is S.FAILED


def test_limit_feed_offers_only_the_selected_pending_targets(store: StateStore) -> None:
    assert [t.id for t in store.pending_after(0, 100)] == [1, 2, 3, 4, 5, 6]

    store.limit_feed([2, 5])

    assert [t.id for t in store.pending_after(0, 100)] == [2, 5]
    assert [t.id for t in store.pending_after(2, 100)] == [5]
    assert [t.id for t in store.pending_after(0, 1)] == [2]


def test_deferred_pending_are_those_with_a_deferral_event(store: StateStore) -> None:
    store.note(3, S.PENDING, "deferred: server is busy (status REBUILD), not by this run")
    store.note(4, S.PENDING, "request options changed")
    store.apply(
        [
            Change(5, S.PENDING, S.SUBMITTING, "intent"),
            Change(5, S.SUBMITTING, S.PENDING, "deferred: still refused after retries: 429"),
            Change(6, S.PENDING, S.SUBMITTING, "intent"),
        ]
    )

    assert store.deferred_pending() == [3, 5]
