"""What `run`/`resume` print when they end: what was done, what is left, and why (pure).

One sentence per fact, never "finished" for a run that did not finish, and a
refused credential says that nothing was sent (when nothing was).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engine.next_step import NextStep, next_step
from orchestrator.model import FINAL_STATES, TargetState

# Order in which states are listed: outcomes first, then what is left.
DONE_ORDER = (TargetState.SUCCEEDED, TargetState.FAILED, TargetState.SKIPPED)
LEFT_ORDER = (
    TargetState.PENDING,
    TargetState.IN_DOUBT,
    TargetState.RUNNING,
    TargetState.SUBMITTED,
    TargetState.SUBMITTING,
)


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    err: bool = False  # stderr (problems and what to do) or stdout (the result)


def _listing(counts: Mapping[TargetState, int], states: tuple[TargetState, ...]) -> str:
    parts = [f"{counts.get(s, 0)} {s.value}" for s in states if counts.get(s, 0)]
    return ", ".join(parts) or "none"


def end_of_run(
    counts: Mapping[TargetState, int],
    *,
    state_path: Path | str,  # what follows `resume --state` (a PostgreSQL DSN and campaign)
    requests: Mapping[str, int],
    deferred: int = 0,
    stopped: bool = False,
    halted: bool = False,
    aborted: str | None = None,
    credentials_refused: bool = False,
    held: str | None = None,
    step: NextStep | None = None,
) -> list[Line]:
    """The closing lines of a run, from its outcome and the requests it sent.

    What to do next is `step` (engine.next_step, the one table of hints); without
    one it is worked out from the flags given here, with no rollout.
    """
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in FINAL_STATES)
    left = total - done
    sent = requests.get("reinstall", 0)
    if step is None:
        step = next_step(
            complete=left == 0,
            resume=f"orchestrator resume --state {state_path}",
            stopped=stopped,
            halted=halted,
            aborted=aborted,
            credentials_refused=credentials_refused,
            deferred=deferred,
        )

    if credentials_refused:
        refused = aborted or "refused"
        if not refused.startswith("credentials refused"):
            refused = f"credentials refused by the API: {refused}"
        lines = [Line(refused, err=True)]
        if sent == 0:
            lines.append(
                Line(
                    "nothing was sent: no reinstall request left this run; "
                    f"{left} of {total} targets are still to do.",
                    err=True,
                )
            )
        else:
            lines.append(
                Line(
                    f"{sent} reinstall request(s) were sent before the refusal; "
                    f"done: {done} of {total} ({_listing(counts, DONE_ORDER)}); "
                    f"left: {left} ({_listing(counts, LEFT_ORDER)}).",
                    err=True,
                )
            )
        return lines + _next(step, lead="then ")

    if left == 0:
        return [Line(f"finished: {_listing(counts, DONE_ORDER)} (all {total} targets final)")]

    left_detail = _listing(counts, LEFT_ORDER)
    if deferred:
        left_detail += f"; {deferred} deferred"
    lines = [
        Line(
            f"stopped before finishing: {done} of {total} done ({_listing(counts, DONE_ORDER)}); "
            f"{left} left ({left_detail})"
        )
    ]
    if held:
        lines.append(Line(f"held: {held}", err=True))
    return lines + _next(step)


def _next(step: NextStep | None, lead: str = "not finished; ") -> list[Line]:
    """Why it stopped, what to do first, and the one command that continues: last, so
    that nothing printed after it contradicts it."""
    if step is None:
        return []
    lines = [Line(f"why: {'; '.join(step.why)}", err=True)]
    if step.do:
        lines.append(Line(f"next: {'; '.join(step.do)}", err=True))
    lines.append(Line(f"{lead}continue with: {step.command}", err=True))
    return lines
