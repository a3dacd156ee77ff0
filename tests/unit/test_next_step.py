"""The table of hints: each reason a run stops, the command that continues it, and the
rollout options that let a resume send again after the window or the deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.engine.next_step import (
    HINTS,
    Stop,
    continue_from_summary,
    next_step,
    stops_of_holds,
)
from orchestrator.rollout.decide import Reason
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.reopen import TimeStop, reopen

RESUME = "orchestrator resume --state s.sqlite"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
NIGHT = RolloutOptions(window="02:00-05:00", tz="Europe/Berlin")


def step(**kwargs: Any) -> Any:
    kwargs.setdefault("complete", False)
    return next_step(resume=RESUME, now=NOW, **kwargs)


def test_every_reason_has_a_hint_and_every_hold_a_reason() -> None:
    assert set(HINTS) == set(Stop)
    held = {Reason(r) for r in Reason} - {
        Reason.NOT_YET_OPEN,  # a wait, never a hold
        Reason.WAVE_PAUSE,
        Reason.PROJECT_IN_FLIGHT,
    }
    for reason in held:
        assert stops_of_holds([reason.value]), reason


@pytest.mark.parametrize(
    ("kwargs", "stops", "command"),
    [
        ({"stopped": True}, (Stop.SIGNAL,), RESUME),
        ({"stopped": True, "halted": True}, (Stop.HALTED,), RESUME),
        ({"deferred": 3}, (Stop.DEFERRED,), RESUME),
        ({}, (Stop.UNFINISHED,), RESUME),
        ({"holds": ["run_budget"]}, (Stop.BUDGET,), f"{RESUME} --ack-failures"),
        (
            {"holds": ["project_paused", "project_budget"]},
            (Stop.BUDGET,),
            f"{RESUME} --ack-failures",
        ),
        ({"holds": ["canary_failed"]}, (Stop.CANARY,), f"{RESUME} --ack-failures"),
        ({"holds": ["wave_not_confirmed"]}, (Stop.NOT_CONFIRMED,), RESUME),
        (
            {"credentials_refused": True, "aborted": "credentials refused by the API: 401"},
            (Stop.CREDENTIALS,),
            RESUME,
        ),
        ({"misconfigured": True, "aborted": "wrong endpoint"}, (Stop.MISCONFIGURED,), RESUME),
        ({"aborted": "the endpoint stopped answering"}, (Stop.UNREACHABLE,), RESUME),
        # A window that closed with the run, and a budget too: both in one command.
        (
            {"holds": ["cutoff", "project_budget"], "rollout": NIGHT, "expected_seconds": 900},
            (Stop.WINDOW, Stop.BUDGET),
            f"{RESUME} --keep-going --ack-failures",
        ),
    ],
)
def test_the_command_fits_the_reason(kwargs: dict[str, Any], stops: Any, command: str) -> None:
    found = step(**kwargs)
    assert found.stops == stops
    assert found.command == command


def test_a_second_signal_says_the_jobs_were_not_followed() -> None:
    (why,) = step(stopped=True, halted=True).why
    assert "accepted jobs were not followed further" in why and "drain" not in why
    (why,) = step(stopped=True).why
    assert "followed for up to --drain-timeout" in why


def test_a_finished_run_needs_no_hint() -> None:
    assert step(complete=True) is None


def test_refused_credentials_get_the_fix_of_their_kind() -> None:
    def fix(described: dict[str, Any] | None) -> str:
        found = step(credentials_refused=True, aborted="x", credentials=described)
        return "; ".join(found.do)

    password = fix({"source": "environment", "auth_type": "password"})
    assert "OS_PASSWORD" in password and "OS_AUTH_TOKEN" not in password
    in_file = fix({"source": "clouds.yaml", "auth_type": "password", "cloud": "otc-prod"})
    assert "cloud 'otc-prod'" in in_file and "secure.yaml" in in_file
    assert "OS_AUTH_TOKEN" not in in_file
    assert "OS_AUTH_TOKEN was refused" in fix({"source": "environment", "auth_type": "token"})
    aksk = fix({"source": "aksk-environment", "auth_type": "aksk"})
    assert "HUAWEICLOUD_SDK_AK" in aksk and "OS_" not in aksk
    assert "OS_AUTH_TOKEN" in fix(None)  # unknown: every kind named


@pytest.mark.parametrize(
    ("options", "now", "expected", "stop", "args"),
    [
        # A deadline-only run after the deadline: the same deadline a day later.
        (
            RolloutOptions(deadline="2026-12-07T05:00+01:00"),
            NOW,
            900,
            TimeStop.DEADLINE,
            ("--deadline", "2026-12-08T05:00:00+01:00"),
        ),
        # With a not-before: the same slot a day later.
        (
            RolloutOptions(not_before="2026-12-07T02:00Z", deadline="2026-12-07T04:00Z"),
            NOW,
            900,
            TimeStop.DEADLINE,
            ("--not-before", "2026-12-08T02:00:00Z", "--deadline", "2026-12-08T04:00:00Z"),
        ),
        # A daily window: tomorrow's opening fits; --keep-going waits for it.
        (NIGHT, NOW, 900, TimeStop.WINDOW, ("--keep-going",)),
        # A window shorter than a job: from the same start, long enough.
        (
            RolloutOptions(window="02:00-02:10", tz="Europe/Berlin"),
            NOW,
            900,
            TimeStop.SHORT_WINDOW,
            ("--window", "02:00-02:30"),
        ),
        # A window and a deadline that ends it: the deadline moves.
        (
            RolloutOptions(window="02:00-05:00", tz="Europe/Berlin", deadline="2026-12-07T04:00Z"),
            NOW,
            900,
            TimeStop.DEADLINE,
            ("--deadline", "2026-12-08T04:00:00Z"),
        ),
    ],
)
def test_reopen(
    options: RolloutOptions, now: datetime, expected: float, stop: TimeStop, args: Any
) -> None:
    found = reopen(options, now, expected)
    assert found is not None and found.stop is stop and found.args == args
    # Followed, the schedule lets a job start (the same check the run's cutoff makes).
    applied = dict(zip(args[::2], args[1::2], strict=False))
    moved = RolloutOptions(
        not_before=applied.get("--not-before", options.not_before),
        deadline=applied.get("--deadline", options.deadline),
        window=applied.get("--window", options.window),
        tz=options.tz,
    )
    assert moved.schedule().first_fit(now, expected) is not None


def test_reopen_says_nothing_when_the_window_is_open_again_now() -> None:
    # The run held in last night's opening; this one is open now: a plain resume sends.
    all_day = RolloutOptions(window="00:00-23:59", tz="UTC")
    assert reopen(all_day, NOW, 900) is None
    found = step(holds=["window_closed"], rollout=all_day, expected_seconds=900)
    assert found.command == RESUME


def test_a_report_written_later_takes_the_tables_words() -> None:
    command, advice = continue_from_summary(
        {"decisions": [{"kind": "hold:canary_failed", "invocation": 2}], "trips": []}, RESUME
    )
    assert command == RESUME and "--ack-failures" in advice
    step_dict = step(holds=["run_budget"]).as_dict()
    assert continue_from_summary({"next_step": step_dict}, RESUME)[0].endswith("--ack-failures")
