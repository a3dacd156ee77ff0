"""The command line's rollout part: options of run/resume, the terminal prompt, plan and status.

`rollout_options` and `plan_options` add the flags (resolved against the state's
latest invocation with the other options, in `resolve.rollout_from`),
`confirm_on_terminal` asks before a wave, and `plan_lines` and `status_lines` say
what `plan` and `status` print.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from orchestrator.cli.types import POSITIVE_SECONDS, SECONDS
from orchestrator.durations import seconds_text
from orchestrator.rollout.budget import DEFAULT_MAX_CONSECUTIVE
from orchestrator.rollout.duration import DEFAULT_EXPECTED_JOB_SECONDS
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.waves import wave_sizes

__all__ = [
    "confirm_on_terminal",
    "plan_lines",
    "plan_options",
    "rollout_options",
    "status_lines",
]


def _common(fn: Callable[..., Any], *, with_run_only: bool) -> Callable[..., Any]:
    options = [
        click.option(
            "--not-before",
            metavar="TIME",
            help="Send nothing before TIME (ISO 8601 with an offset or Z, "
            "e.g. 2026-12-01T02:00+01:00).",
        ),
        click.option(
            "--deadline",
            metavar="TIME",
            help="Send no reinstall that cannot be expected to end by TIME (ISO 8601 with an "
            "offset or Z); accepted jobs are still followed to their end.",
        ),
        click.option(
            "--window",
            metavar="HH:MM-HH:MM",
            help="Daily maintenance window, e.g. 02:00-05:00 (may cross midnight).",
        ),
        click.option(
            "--tz",
            metavar="ZONE",
            help="IANA zone of --window, e.g. Europe/Berlin.  [default: this machine's zone]",
        ),
        click.option(
            "--waves",
            metavar="SIZES",
            help="Wave sizes in inventory order, counts or % of the fleet, e.g. 1,5,10%,100%; "
            "the last repeats. A wave starts when the previous one is final.",
        ),
        click.option(
            "--canary",
            type=click.IntRange(min=1),
            metavar="N",
            help="A first wave of N servers that must all succeed, else nothing else is sent.",
        ),
        click.option(
            "--project-max-in-flight",
            type=click.IntRange(min=1),
            metavar="N",
            help="Most servers of one project being reinstalled at once.",
        ),
    ]
    if with_run_only:
        options += [
            click.option(
                "--keep-going",
                is_flag=True,
                help="With --window: when the window closes, sleep until it opens again "
                "and go on (several nights), until done or a signal.",
            ),
            click.option(
                "--expected-job-seconds",
                type=POSITIVE_SECONDS,
                metavar="S",
                help="Expected duration of one reinstall, for the --deadline/--window cutoff "
                f"until 20 jobs have finished (then their p90 is used).  "
                f"[default: {DEFAULT_EXPECTED_JOB_SECONDS:g}]",
            ),
            click.option(
                "--pause-between-waves",
                type=SECONDS,
                metavar="S",
                help="Seconds to wait after a wave is final before the next starts.",
            ),
            click.option(
                "--confirm-waves",
                is_flag=True,
                help="Ask on the terminal before each wave (refused without a terminal).",
            ),
            click.option(
                "--max-failures",
                metavar="N|N%",
                help="Failure budget of the run: past it nothing new is sent (exit 3).",
            ),
            click.option(
                "--max-failures-per-project",
                metavar="N|N%",
                help="Failure budget of each project: past it that project stops, others go on.",
            ),
            click.option(
                "--max-consecutive-failures",
                type=click.IntRange(min=0),
                metavar="N",
                help="Pause a project after N failures in a row with the same code, naming the "
                f"likely cause; 0 turns it off.  [default: {DEFAULT_MAX_CONSECUTIVE}]",
            ),
            click.option(
                "--ack-failures",
                is_flag=True,
                help="After a budget or breaker tripped: go on; the failures so far stop "
                "counting. Never taken from the state file.",
            ),
        ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def rollout_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The rollout flags of `run` and `resume`."""
    return _common(fn, with_run_only=True)


def plan_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The rollout flags `plan` uses for its estimate."""
    return _common(fn, with_run_only=False)


async def confirm_on_terminal(wave: int, size: int) -> bool:
    """--confirm-waves: ask before wave `wave`; anything but yes holds the run."""
    question = f"start wave {wave} ({size} server(s))?"
    return await asyncio.to_thread(click.confirm, question, default=False, err=True)


# -- plan ----------------------------------------------------------------------------------


def plan_lines(
    projects: Mapping[str, int],
    options: RolloutOptions,
    *,
    rate: float,
    max_in_flight: int,
    job_seconds: float,
    now: datetime | None = None,
) -> list[str]:
    """The waves, the window, and the shortest duration under the rate and in-flight limits."""
    fleet = sum(projects.values())
    waves, canary = options.wave_sizes()
    sizes = wave_sizes(fleet, waves, canary) if fleet else []
    cap = max_in_flight
    if options.project_max_in_flight is not None:
        cap = min(cap, options.project_max_in_flight * max(len(projects), 1))
    durations = [_shortest(n, rate, cap, job_seconds) for n in sizes]
    total = sum(durations) + options.pause_between_waves * max(len(sizes) - 1, 0)
    lines = []
    if len(sizes) > 1 or canary:
        shown = ", ".join(
            f"{i}{' (canary)' if canary and i == 1 else ''}: {n}"
            for i, n in enumerate(sizes[:12], start=1)
        )
        more = f", ... ({len(sizes)} waves)" if len(sizes) > 12 else ""
        lines.append(f"waves: {shown}{more}")
    lines.append(
        f"estimated duration: {total / 60:.1f} min ({len(sizes)} wave(s) at {rate:g}/s, "
        f"{cap} in flight"
        + (f" (--project-max-in-flight {options.project_max_in_flight})" if cap < max_in_flight
           else "")
        + f", jobs of ~{seconds_text(job_seconds)}"
        + (f", {seconds_text(options.pause_between_waves)} between waves"
           if options.pause_between_waves
           else "")
        + ")"
    )  # fmt: skip
    schedule = options.schedule()
    now = now or datetime.now(UTC)
    opening = schedule.opening(now)
    if options.window or options.not_before or options.deadline:
        if opening is None:
            lines.append("window: none left (the deadline has passed); nothing would be sent")
        else:
            start = max(opening.start, now)
            if opening.end is None:
                lines.append(f"window: opens {start.isoformat()}, no end")
            else:
                usable = (opening.end - start).total_seconds() - job_seconds
                span = (opening.end - start).total_seconds() / 3600
                lines.append(
                    f"window: {options.window or ''}{' ' + options.tz if options.tz else ''} "
                    f"next opening {start.isoformat()} to {opening.end.isoformat()} "
                    f"({span:.1f} h; no reinstall starts in its last "
                    f"{seconds_text(job_seconds)})".replace("window:  ", "window: ")
                )
                if total > max(usable, 0):
                    nights = math.ceil(total / usable) if usable > 0 else None
                    lines.append(
                        "  the plan does not fit in one opening: "
                        + (
                            f"about {nights} openings with --keep-going"
                            if nights and options.window
                            else "the rest would stay pending"
                        )
                    )
    return lines


def _shortest(n: int, rate: float, in_flight: int, job_seconds: float) -> float:
    """The last reinstall starts after all are sent (rate) and after every earlier round of
    `in_flight` has finished; then it takes one job's time."""
    if n == 0:
        return 0.0
    rounds_before_last = max(math.ceil(n / in_flight) - 1, 0)
    return max(n / rate, rounds_before_last * job_seconds) + job_seconds


# -- status --------------------------------------------------------------------------------


def status_lines(rollout: Mapping[str, Any] | None) -> list[str]:
    if not rollout:
        return []
    lines: list[str] = []
    waves: Sequence[Mapping[str, Any]] = rollout.get("waves") or []
    if len(waves) > 1 or (rollout.get("plan") or {}).get("canary"):
        lines.append("waves:")
        for w in waves:
            states = ", ".join(
                f"{w[s]} {s}" for s in ("succeeded", "failed", "skipped", "pending") if w.get(s)
            )
            others = w["total"] - sum(
                w.get(s, 0) for s in ("succeeded", "failed", "skipped", "pending")
            )
            busy = f", {others} under way" if others else ""
            lines.append(f"  wave {w['wave']:<3} {w['total']} targets: {states}{busy}")
    for trip in rollout.get("trips") or []:
        lines.append(f"tripped: {trip}")
    if rollout.get("left_pending"):
        lines.append(f"left: {rollout['left_pending']}")
    if rollout.get("overran"):
        lines.append(f"overran: {rollout['overran']}")
    return lines


def status_fields(
    rollout: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The `wave` and `window` of `status`: the first wave not yet final, and the plan's
    window, deadline and not-before (None where the run has none)."""
    if not rollout:
        return None, None
    waves: Sequence[Mapping[str, Any]] = rollout.get("waves") or []
    final = ("succeeded", "failed", "skipped")
    current = next(
        (w for w in waves if w["total"] > sum(w.get(s, 0) for s in final)),
        None,
    )
    wave = None
    if len(waves) > 1 and current is not None:
        done = sum(current.get(s, 0) for s in final)
        wave = {"number": current["wave"], "of": len(waves), "size": current["total"],
                "final": done}  # fmt: skip
    plan: Mapping[str, Any] = rollout.get("plan") or {}
    window = {k: plan[k] for k in ("not_before", "deadline", "window", "tz") if plan.get(k)} or None
    return wave, window
