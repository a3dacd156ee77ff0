"""What `run`/`resume` print when they end: what was done, what is left, and why (pure).

One sentence per fact, never "finished" for a run that did not finish, and a
refused credential says that nothing was sent (when nothing was).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
) -> list[Line]:
    """The closing lines of a run, from its outcome and the requests it sent."""
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in FINAL_STATES)
    left = total - done
    sent = requests.get("reinstall", 0)
    resume = f"orchestrator resume --state {state_path}"

    if credentials_refused:
        lines = [Line(f"credentials refused by the API: {aborted or 'refused'}", err=True)]
        if sent == 0:
            lines.append(
                Line(
                    "nothing was sent: no reinstall request left this run; "
                    f"{left} of {total} targets are still to do. "
                    "Check OS_AUTH_TOKEN (or HUAWEICLOUD_SDK_AK/SK) and its project, "
                    "then run again.",
                    err=True,
                )
            )
        else:
            lines.append(
                Line(
                    f"{sent} reinstall request(s) were sent before the refusal; "
                    f"done: {done} of {total} ({_listing(counts, DONE_ORDER)}); "
                    f"left: {left} ({_listing(counts, LEFT_ORDER)}). "
                    f"Fix the credentials, then continue with: {resume}",
                    err=True,
                )
            )
        return lines

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
    if aborted:
        why = f"the run could not go on: {aborted}"
    elif halted:
        # A second signal ends the loop at once: nothing is polled any more.
        why = (
            "stopped at once by a second signal; accepted jobs were not followed further:"
            " the state file has them (and any request whose answer was not in yet), and"
            " a resume follows and settles them; no report was written"
        )
    elif stopped:
        why = (
            "stopped by a signal; accepted jobs were followed for up to --drain-timeout;"
            " any still running are followed by a resume"
        )
    elif deferred:
        why = (
            f"{deferred} target(s) deferred (refused for now by the service, or the server was "
            "busy); they stay pending"
        )
    else:
        why = "some targets could not be finished in this run"
    lines.append(Line(f"why: {why}", err=True))
    lines.append(Line(f"not finished; continue with: {resume}", err=True))
    return lines
