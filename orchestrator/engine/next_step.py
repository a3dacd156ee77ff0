"""What to do after a run that did not finish: one table from the reason it stopped to the
command that continues it (pure).

A plain `resume` keeps every rollout option of the state file, so after a passed
deadline or a tripped budget it would only hold again. Each reason gets the
hint that, followed, does not stop for the same reason:

    stop           why                                           do, then the options added
    -------------  --------------------------------------------  ------------------------------
    credentials    the API refused the credentials               fix them (by kind)
    misconfigured  the configuration cannot work                 fix what the error names
    unreachable    the service stopped answering                 wait until it answers
    signal         stopped by a signal                           -
    halted         stopped at once by a second signal            -
    deadline       the deadline has passed                       --deadline (rollout.reopen)
    window         this opening of the window has closed         --keep-going (rollout.reopen)
    short_window   the window is shorter than one reinstall      --window (rollout.reopen)
    budget         a failure budget or the breaker tripped       look first; --ack-failures
    canary         the canary failed                             look first; --ack-failures
    not_confirmed  a wave was not confirmed (--confirm-waves)    answer in a terminal
    wave_stuck     an earlier wave's targets were deferred       later
    deferred       targets were deferred                         later
    unfinished     anything else                                 -

`next_step` picks the reasons of one outcome (the configuration's first, then a
signal, then what held the rollout, then deferrals) and joins their hints into one
command; `hint_text` gives the table's words for a reason alone (the report of a
state file, written later without the outcome).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from orchestrator.durations import seconds_text
from orchestrator.rollout.decide import Reason
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.reopen import TimeStop, reopen
from orchestrator.timetext import spoken

__all__ = [
    "HINTS",
    "Hint",
    "NextStep",
    "Stop",
    "continue_from_summary",
    "hint_text",
    "next_step",
    "stops_of_holds",
]


class Stop(StrEnum):
    CREDENTIALS = "credentials"
    MISCONFIGURED = "misconfigured"
    UNREACHABLE = "unreachable"
    SIGNAL = "signal"
    HALTED = "halted"
    DEADLINE = "deadline"
    WINDOW = "window"
    SHORT_WINDOW = "short_window"
    BUDGET = "budget"
    CANARY = "canary"
    NOT_CONFIRMED = "not_confirmed"
    WAVE_STUCK = "wave_stuck"
    DEFERRED = "deferred"
    UNFINISHED = "unfinished"


@dataclass(frozen=True, slots=True)
class Hint:
    why: str  # why the run stopped, as its end says it
    do: str = ""  # what to do before continuing ({...}: filled in by next_step)
    adds: tuple[str, ...] = ()  # options the continuing command adds (time stops: computed)
    gist: str = ""  # the advice without a run's figures: for a report written later


HINTS: Mapping[Stop, Hint] = MappingProxyType(
    {
        Stop.CREDENTIALS: Hint(
            "the API refused the credentials",
            "{credentials}",
            gist="fix the credentials, then resume",
        ),
        Stop.MISCONFIGURED: Hint(
            "the run could not go on: {aborted}",
            "fix what this names (the endpoint, or this host's clock)",
            gist="fix the configuration the run's error names, then resume",
        ),
        Stop.UNREACHABLE: Hint(
            "the run could not go on: {aborted}",
            "wait until the service answers again",
            gist="resume once the service answers again",
        ),
        Stop.SIGNAL: Hint(
            "stopped by a signal; accepted jobs were followed for up to --drain-timeout;"
            " any still running are followed by a resume",
            gist="resume",
        ),
        Stop.HALTED: Hint(
            # A second signal ends the loop at once: nothing is polled any more.
            "stopped at once by a second signal; accepted jobs were not followed further:"
            " the state file has them (and any request whose answer was not in yet), and"
            " a resume follows and settles them; no report was written",
            gist="resume",
        ),
        Stop.DEADLINE: Hint(
            "the deadline has passed, and a resume keeps it: it would send nothing",
            "give it a new deadline (the first reinstall may then start {opens}; add"
            " --not-before TIME to start later)",
            gist="the deadline has passed: resume with a new --deadline",
        ),
        Stop.WINDOW: Hint(
            "no reinstall fits in what is left of this opening of the window",
            "--keep-going waits for the next opening, {opens}, and goes on each night until"
            " done (or resume then, without it)",
            ("--keep-going",),
            gist="resume in the next opening of the window (or now with --keep-going);"
            " after a passed deadline, with a new --deadline",
        ),
        Stop.SHORT_WINDOW: Hint(
            "the window is shorter than one reinstall (expected {expected})",
            "widen the window (or, if jobs are shorter, give --expected-job-seconds)",
            gist="the window is shorter than one reinstall: resume with a wider --window",
        ),
        Stop.BUDGET: Hint(
            "a failure budget or the breaker tripped",
            "look at the failures first (report.html, or orchestrator status); the failures"
            " so far then stop counting",
            ("--ack-failures",),
            gist="after looking at the failures, resume with --ack-failures",
        ),
        Stop.CANARY: Hint(
            "the canary failed",
            "look at the canary's failures first; it stays failed (send it again later with"
            " orchestrator retry), the next waves go",
            ("--ack-failures",),
            gist="after looking at the canary's failures, resume with --ack-failures",
        ),
        Stop.NOT_CONFIRMED: Hint(
            "a wave was not confirmed (--confirm-waves)",
            "run it in a terminal and answer yes to the wave",
            gist="resume in a terminal and confirm the wave",
        ),
        Stop.WAVE_STUCK: Hint(
            "an earlier wave's targets were deferred, so the next wave could not start",
            "continue later, when their servers are free",
            gist="resume later, when their servers are free",
        ),
        Stop.DEFERRED: Hint(
            "{deferred} target(s) deferred (refused for now by the service, or the server was"
            " busy); they stay pending",
            "continue later, when their servers are free",
            gist="resume later, when their servers are free",
        ),
        Stop.UNFINISHED: Hint("some targets could not be finished in this run", gist="resume"),
    }
)

# A hold of the rollout (decide.Reason), as a stop of the table.
_BY_REASON: Mapping[str, Stop] = MappingProxyType(
    {
        Reason.RUN_BUDGET: Stop.BUDGET,
        Reason.PROJECT_BUDGET: Stop.BUDGET,
        Reason.PROJECT_PAUSED: Stop.BUDGET,
        Reason.CANARY_FAILED: Stop.CANARY,
        Reason.WINDOW_CLOSED: Stop.WINDOW,  # or DEADLINE / SHORT_WINDOW: see rollout.reopen
        Reason.CUTOFF: Stop.WINDOW,
        Reason.WAVE_NOT_CONFIRMED: Stop.NOT_CONFIRMED,
        Reason.WAVE_NOT_READY: Stop.WAVE_STUCK,
    }
)
_TIME: Mapping[TimeStop, Stop] = MappingProxyType(
    {
        TimeStop.DEADLINE: Stop.DEADLINE,
        TimeStop.WINDOW: Stop.WINDOW,
        TimeStop.SHORT_WINDOW: Stop.SHORT_WINDOW,
    }
)

# The fix of refused credentials, by where they came from and their kind.
_CREDENTIAL_FIXES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("environment", "password"): "check OS_USERNAME, OS_PASSWORD and OS_USER_DOMAIN_NAME"
        " (and OS_AUTH_URL, OS_PROJECT_ID)",
        ("clouds.yaml", "password"): "check the user name, password and domain of {cloud} in"
        " clouds.yaml and secure.yaml",
        ("environment", "token"): "OS_AUTH_TOKEN was refused: get a new token (tokens expire)"
        " scoped to the targets' project",
        ("clouds.yaml", "token"): "the token of {cloud} was refused: get a new one (tokens"
        " expire) scoped to the targets' project",
        ("aksk-environment", "aksk"): "check HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (and"
        " HUAWEICLOUD_SDK_SECURITY_TOKEN for temporary keys)",
        ("clouds.yaml", "aksk"): "check the access key and secret key of {cloud} in"
        " clouds.yaml and secure.yaml",
    }
)
_ANY_CREDENTIALS = (
    "check the credentials (OS_AUTH_TOKEN, the OS_* variables, clouds.yaml, or"
    " HUAWEICLOUD_SDK_AK/SK) and their project"
)


@dataclass(frozen=True, slots=True)
class NextStep:
    stops: tuple[Stop, ...]
    why: tuple[str, ...]  # one per stop
    do: tuple[str, ...]  # what to do first, where anything
    command: str  # the exact command that continues
    opens_at: datetime | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stops": [s.value for s in self.stops],
            "why": list(self.why),
            "do": list(self.do),
            "command": self.command,
        }


def stops_of_holds(holds: Iterable[str]) -> tuple[Stop, ...]:
    """The table's stops for rollout holds (decide.Reason values), once each."""
    found = (_BY_REASON.get(h) for h in holds)
    return tuple(dict.fromkeys(s for s in found if s is not None))


def hint_text(stop: Stop) -> str:
    """The table's advice for `stop` alone, without the figures of a particular run."""
    return HINTS[stop].gist


def continue_from_summary(rollout: Mapping[str, Any] | None, resume: str) -> tuple[str, str]:
    """The command and the advice a report shows: the run's own `next_step` where the
    report was written at its end, else the table's gist for what held its latest
    invocation (a report written later by `orchestrator report`)."""
    rollout = rollout or {}
    step = rollout.get("next_step")
    if isinstance(step, Mapping) and step.get("command"):
        return str(step["command"]), "; ".join(str(d) for d in step.get("do") or ())
    decisions = rollout.get("decisions") or []
    latest = max((d.get("invocation") or 0 for d in decisions), default=0)
    holds = [
        str(d.get("kind", "")).removeprefix("hold:")
        for d in decisions
        if str(d.get("kind", "")).startswith("hold:") and (d.get("invocation") or 0) == latest
    ]
    if rollout.get("trips"):
        holds.append(Reason.RUN_BUDGET.value)
    return resume, "; ".join(hint_text(s) for s in stops_of_holds(holds) if hint_text(s))


def next_step(
    *,
    complete: bool,
    resume: str,
    stopped: bool = False,
    halted: bool = False,
    aborted: str | None = None,
    credentials_refused: bool = False,
    misconfigured: bool = False,
    deferred: int = 0,
    holds: Iterable[str] = (),
    rollout: RolloutOptions | None = None,
    expected_seconds: float | None = None,
    credentials: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> NextStep | None:
    """The hint of one run's end; None when it finished. `resume` is the command that
    continues the state as it is (`orchestrator resume --state S`)."""
    if complete and not (credentials_refused or misconfigured or aborted):
        return None
    now = now or datetime.now(UTC)
    rollout = rollout or RolloutOptions()
    expected = expected_seconds or rollout.expected_job_seconds
    stops: list[Stop] = []
    if credentials_refused:
        stops.append(Stop.CREDENTIALS)
    elif misconfigured:
        stops.append(Stop.MISCONFIGURED)
    elif aborted:
        stops.append(Stop.UNREACHABLE)
    if halted:
        stops.append(Stop.HALTED)
    elif stopped:
        stops.append(Stop.SIGNAL)
    args: list[str] = []
    opens_at = None
    fill: dict[str, Any] = {
        "aborted": aborted or "",
        "deferred": deferred,
        "expected": seconds_text(expected),
        "credentials": _credential_fix(credentials),
        "opens": "",
    }
    for stop in stops_of_holds(holds):
        if stop is Stop.WINDOW:
            found = reopen(rollout, now, expected)
            if found is None:
                continue  # the schedule lets a resume send now: a plain resume
            stop = _TIME[found.stop]
            args += found.args
            opens_at = found.opens_at
            if opens_at is not None:
                zone = rollout.schedule().zone
                fill["opens"] = "at once" if opens_at <= now else f"at {spoken(opens_at, zone)}"
        stops.append(stop)
    if deferred and Stop.WAVE_STUCK not in stops:
        stops.append(Stop.DEFERRED)
    if not stops:
        stops.append(Stop.UNFINISHED)
    stops = list(dict.fromkeys(stops))
    for stop in stops:
        args += HINTS[stop].adds
    command = " ".join([resume, *dict.fromkeys(_pairs(args))])
    return NextStep(
        stops=tuple(stops),
        why=tuple(HINTS[s].why.format(**fill) for s in stops),
        do=tuple(HINTS[s].do.format(**fill) for s in stops if HINTS[s].do),
        command=command,
        opens_at=opens_at,
    )


def _pairs(args: list[str]) -> list[str]:
    """Options with their values as one word each, so that duplicates fold."""
    words: list[str] = []
    for arg in args:
        if words and not arg.startswith("--"):
            words[-1] += f" {arg}"
        else:
            words.append(arg)
    return words


def _credential_fix(described: Mapping[str, Any] | None) -> str:
    if not described:
        return _ANY_CREDENTIALS
    source = str(described.get("source") or "")
    kind = str(described.get("auth_type") or "")
    text = _CREDENTIAL_FIXES.get((source, kind))
    if text is None:
        return _ANY_CREDENTIALS
    cloud = described.get("cloud")
    return text.format(cloud=f"cloud {cloud!r}" if cloud else "the cloud")
