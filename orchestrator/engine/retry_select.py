"""`orchestrator retry`: which targets of a state file to send again, and reopening them.

Selection (`select_for_retry`, a function of the targets and the request):

    --state-is failed      failed targets (the default), except
                           Orchestrator.Unverified ones unless --i-checked-unverified
    --state-is deferred    pending targets an invocation deferred (throttled,
                           busy, server busy): they have a "deferred: ..." event
    --state-is unverified  failed as Orchestrator.Unverified; needs --i-checked-unverified,
                           since their reinstall may have happened after all

narrowed by --error-code and --only-project (each repeatable, any of them matches).

`reopen_selected` then moves the failed ones back to pending through the
store's operator-only path (an event "retry requested: ..." each), notes the
deferred ones, and limits the run's feed to exactly the selection, so that no
other pending target is sent by this invocation. A reopened target keeps its
attempt count and its first `launched_at`, so the preflight still refuses to
send on top of a reinstall that shows on the server (it is settled instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import UsageError
from orchestrator.model import Target, TargetState
from orchestrator.store.sqlite import StateStore

UNVERIFIED = "Orchestrator.Unverified"
STATES_IS = ("failed", "deferred", "unverified")


@dataclass(frozen=True)
class RetryRequest:
    state_is: str = "failed"
    error_codes: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    checked_unverified: bool = False  # --i-checked-unverified

    def check(self) -> None:
        if self.state_is not in STATES_IS:
            raise UsageError(f"--state-is {self.state_is!r}: choose one of {', '.join(STATES_IS)}")
        if self.state_is == "unverified" and not self.checked_unverified:
            raise UsageError(
                f"--state-is unverified: these targets ({UNVERIFIED}) may have been reinstalled"
                " already; check the servers by hand, then add --i-checked-unverified"
            )

    def describe(self) -> str:
        parts = [f"--state-is {self.state_is}"]
        parts += [f"--error-code {c}" for c in self.error_codes]
        parts += [f"--only-project {p}" for p in self.projects]
        if self.checked_unverified:
            parts.append("--i-checked-unverified")
        return " ".join(parts)


@dataclass(frozen=True)
class RetryPlan:
    reopen: tuple[int, ...]  # failed targets to move back to pending
    deferred: tuple[int, ...]  # pending targets to send again as they are
    unverified_left: int  # failed as Unverified, not selected for want of the flag

    @property
    def ids(self) -> tuple[int, ...]:
        return self.reopen + self.deferred


def select_for_retry(
    targets: Iterable[Target], deferred_ids: Iterable[int], request: RetryRequest
) -> RetryPlan:
    """Which targets `request` selects; pure, given the targets and the deferred ids."""
    deferred = set(deferred_ids)
    codes = set(request.error_codes)
    projects = set(request.projects)
    reopen: list[int] = []
    again: list[int] = []
    unverified_left = 0
    for target in targets:
        if projects and target.project_id not in projects:
            continue
        if codes and (target.error_code or "") not in codes:
            continue
        if request.state_is == "deferred":
            if target.state is TargetState.PENDING and target.id in deferred:
                again.append(target.id)
            continue
        if target.state is not TargetState.FAILED:
            continue
        unverified = target.error_code == UNVERIFIED
        if request.state_is == "unverified" and not unverified:
            continue
        if unverified and not request.checked_unverified:
            unverified_left += 1
            continue
        reopen.append(target.id)
    return RetryPlan(tuple(reopen), tuple(again), unverified_left)


def plan_retry(store: StateStore, request: RetryRequest) -> RetryPlan:
    """The selection from a state file; UsageError when it selects nothing."""
    request.check()
    plan = select_for_retry(store.iter_targets(), store.deferred_pending(), request)
    if not plan.ids:
        hint = (
            f"; {plan.unverified_left} failed as {UNVERIFIED} need --i-checked-unverified"
            if plan.unverified_left
            else ""
        )
        raise UsageError(f"nothing to retry: no target matches {request.describe()}{hint}")
    return plan


def reopen_selected(store: StateStore, plan: RetryPlan, request: RetryRequest) -> int:
    """Reopen the plan's failed targets, note its deferred ones, and feed only the plan."""
    why = request.describe()
    reopened = store.reopen(plan.reopen, why)
    for target_id in plan.deferred:
        store.note(target_id, TargetState.PENDING, f"retry requested ({why})")
    store.limit_feed(plan.ids)
    return reopened
