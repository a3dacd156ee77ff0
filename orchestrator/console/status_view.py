"""The status of a state file as plain data, and its two renderings (pure).

The JSON document (`status_to_dict`) is versioned by `STATUS_SCHEMA`; its fields are
listed in the manual (docs/reference/report-files.md, "status --json"). `wave` and
`window` are null until the rollout control (`--waves`, `--window`) records them in
the state file.

The text shows every value from the state file through `visible`: error codes and
reasons are the service's words, and their control characters must not reach the
terminal (nor a newline in one forge a line of the status).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.console.progress import ORDER, format_seconds
from orchestrator.engine.outcome import exit_code
from orchestrator.model import FINAL_STATES, TargetState
from orchestrator.visible import visible as v

STATUS_SCHEMA = "orchestrator.status/1"
EXIT_MEANING = {
    0: "every target succeeded",
    1: "finished; some targets failed",
    3: "not finished",
}


@dataclass(frozen=True, slots=True)
class TargetRef:
    project_id: str
    server_id: str
    detail: str | None = None  # fail reason, or why it is in doubt / deferred


@dataclass(frozen=True, slots=True)
class FailureGroup:
    error_code: str
    count: int
    examples: tuple[TargetRef, ...]  # the first few, in inventory order


@dataclass(frozen=True, slots=True)
class DeferredTarget:
    project_id: str
    server_id: str
    reason: str  # the latest "deferred: ..." event


@dataclass(frozen=True, slots=True)
class InvocationView:
    """The latest `run`/`resume` of the state file."""

    number: int  # 1-based
    state: str  # "running" (its process is alive), "interrupted" (it died), "ended"
    pid: int | None
    started_at: str | None
    ended_at: str | None
    outcome: str | None  # complete, stopped, deferred, aborted, interrupted; None while running
    elapsed_s: float | None
    final_since_start: int  # targets that became final since it started
    targets_per_s: float | None
    eta_s: float | None  # while running: the rest at the rate so far


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    run_id: str
    state_path: str
    inventory_path: str | None
    created_at: str
    generated_at: str
    total: int
    counts: Mapping[str, int]  # every TargetState value, 0 when none
    failures: Sequence[FailureGroup]
    in_doubt: Sequence[TargetRef]
    deferred: Sequence[DeferredTarget]
    deferred_count: int
    invocations: int
    invocation: InvocationView | None
    first_started_at: str | None
    requests: Mapping[str, int]
    throttled: int
    wave: Mapping[str, Any] | None = None  # filled by the rollout control
    window: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    held: str | None = None  # why the rollout left targets pending (latest invocation)
    report: str | None = None  # the run's report folder, where it exists on this host

    @property
    def final(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in FINAL_STATES)

    @property
    def complete(self) -> bool:
        return self.final == self.total

    @property
    def exit_code(self) -> int:
        """As a run ending in these counts would exit: 0, 1 or 3."""
        return exit_code(self.counts)

    @property
    def outcome(self) -> str:
        """The latest invocation's end, or running, interrupted (its process is
        gone), not_started."""
        inv = self.invocation
        if inv is None:
            return "not_started"
        if inv.state in ("running", "interrupted"):
            return inv.state
        return inv.outcome or "ended"


def _ref(ref: TargetRef) -> dict[str, Any]:
    return {"project_id": ref.project_id, "server_id": ref.server_id, "detail": ref.detail}


def status_to_dict(snap: StatusSnapshot) -> dict[str, Any]:
    """The `status --json` document, in a fixed key order."""
    inv = snap.invocation
    return {
        "schema": STATUS_SCHEMA,
        "outcome": snap.outcome,
        "run_id": snap.run_id,
        "state_path": snap.state_path,
        "inventory_path": snap.inventory_path,
        "created_at": snap.created_at,
        "generated_at": snap.generated_at,
        "total": snap.total,
        "counts": dict(snap.counts),
        "final": snap.final,
        "complete": snap.complete,
        "exit_code": snap.exit_code,
        "invocations": snap.invocations,
        "first_started_at": snap.first_started_at,
        "invocation": None
        if inv is None
        else {
            "number": inv.number,
            "state": inv.state,
            "pid": inv.pid,
            "started_at": inv.started_at,
            "ended_at": inv.ended_at,
            "outcome": inv.outcome,
            "elapsed_s": inv.elapsed_s,
            "final_since_start": inv.final_since_start,
            "targets_per_s": inv.targets_per_s,
            "eta_s": inv.eta_s,
        },
        "failures_by_error_code": {g.error_code: g.count for g in snap.failures},
        "failures": [
            {
                "error_code": g.error_code,
                "count": g.count,
                "examples": [_ref(r) for r in g.examples],
            }
            for g in snap.failures
        ],
        "in_doubt": {
            "count": snap.counts.get(TargetState.IN_DOUBT.value, 0),
            "targets": [_ref(r) for r in snap.in_doubt],
        },
        "deferred": {
            "count": snap.deferred_count,
            "targets": [
                {"project_id": d.project_id, "server_id": d.server_id, "reason": d.reason}
                for d in snap.deferred
            ],
        },
        "requests": dict(snap.requests),
        "throttled": snap.throttled,
        "wave": None if snap.wave is None else dict(snap.wave),
        "window": None if snap.window is None else dict(snap.window),
        "held": snap.held,
        "report": snap.report,
        "error": None,
    }


def status_error_dict(message: str) -> dict[str, Any]:
    """The document of a `status` that could not read a state (exit 2): the same keys,
    `outcome` "error" and the message in `error`, everything else null."""
    return {
        "schema": STATUS_SCHEMA,
        "outcome": "error",
        "run_id": None,
        "state_path": None,
        "inventory_path": None,
        "created_at": None,
        "generated_at": None,
        "total": None,
        "counts": None,
        "final": None,
        "complete": None,
        "exit_code": 2,
        "invocations": None,
        "first_started_at": None,
        "invocation": None,
        "failures_by_error_code": None,
        "failures": None,
        "in_doubt": None,
        "deferred": None,
        "requests": None,
        "throttled": None,
        "wave": None,
        "window": None,
        "held": None,
        "report": None,
        "error": message,
    }


def _invocation_line(inv: InvocationView, of: int) -> str:
    head = f"invocation {inv.number} of {of}: "
    if inv.state == "running":
        head += f"running since {v(inv.started_at)} (pid {inv.pid})"
    elif inv.state == "interrupted":
        head += f"started {v(inv.started_at)}, its process is gone (killed?): resume to continue"
    else:
        head += f"{v(inv.outcome or 'ended')}, {v(inv.started_at)} to {v(inv.ended_at)}"
    head += f"\n  elapsed {format_seconds(inv.elapsed_s)}"
    if inv.state == "running":
        rate = f"{inv.targets_per_s:.1f} targets/s" if inv.targets_per_s else "no rate yet"
        head += f"; {inv.final_since_start} final since start, {rate}"
        head += f"; ETA {format_seconds(inv.eta_s)}"
    return head


def render_text(snap: StatusSnapshot) -> str:
    """The human-readable status (what `status` prints without --json)."""
    out = [f"run {v(snap.run_id)} ({v(snap.state_path)}): {snap.total} targets"]
    if snap.invocation is not None:
        out.append("  " + _invocation_line(snap.invocation, snap.invocations))
    else:
        out.append("  never started")
    share = f"{snap.final / snap.total:.0%}" if snap.total else "100%"
    out.append(f"  {snap.final}/{snap.total} final ({share})")
    for state in ORDER:
        out.append(f"  {state.value:<11} {snap.counts.get(state.value, 0)}")
    if snap.wave is not None:
        out.append("  wave: " + ", ".join(f"{v(k)} {v(x)}" for k, x in snap.wave.items()))
    if snap.window is not None:
        out.append("  window: " + ", ".join(f"{v(k)} {v(x)}" for k, x in snap.window.items()))
    sent = ", ".join(f"{n} {v(kind)}" for kind, n in sorted(snap.requests.items()))
    out.append(f"  requests: {sent or 'none'}; throttled answers: {snap.throttled}")
    if snap.failures:
        out.append("failures by error code:")
        for group in snap.failures:
            out.append(f"  {v(group.error_code)}: {group.count}")
            out += [f"    {v(r.project_id)}/{v(r.server_id)}" for r in group.examples]
            more = group.count - len(group.examples)
            if more > 0:
                out.append(f"    ... and {more} more")
    if snap.in_doubt:
        n = snap.counts.get(TargetState.IN_DOUBT.value, 0)
        out.append(f"in doubt ({n}), settled from the server on the next run:")
        out += [
            f"  {v(r.project_id)}/{v(r.server_id)}: {v(r.detail or '')}".rstrip()
            for r in snap.in_doubt
        ]
    if snap.deferred_count:
        out.append(f"deferred ({snap.deferred_count}), pending for a later run:")
        out += [f"  {v(d.project_id)}/{v(d.server_id)}: {v(d.reason)}" for d in snap.deferred]
        if snap.deferred_count > len(snap.deferred):
            out.append(f"  ... and {snap.deferred_count - len(snap.deferred)} more")
    out.append(f"exit {snap.exit_code}: {EXIT_MEANING[snap.exit_code]}")
    return "\n".join(out)
