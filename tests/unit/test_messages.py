"""The closing lines of a run, and the exit code a status gives, as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.console.messages import end_of_run
from orchestrator.engine.outcome import exit_code
from orchestrator.model import TargetState as S

STATE = Path("reports/fleet.state.sqlite")


def text(**kwargs: Any) -> tuple[str, str]:
    counts = kwargs.pop("counts")
    lines = end_of_run(counts, state_path=STATE, requests=kwargs.pop("requests", {}), **kwargs)
    out = "\n".join(line.text for line in lines if not line.err)
    err = "\n".join(line.text for line in lines if line.err)
    return out, err


def test_a_finished_run_says_finished_and_nothing_else() -> None:
    out, err = text(counts={S.SUCCEEDED: 298, S.FAILED: 2, S.PENDING: 0})
    assert out == "finished: 298 succeeded, 2 failed (all 300 targets final)"
    assert err == ""


def test_a_stopped_run_says_what_was_done_and_what_is_left_never_finished() -> None:
    out, err = text(
        counts={S.SUCCEEDED: 300, S.PENDING: 1200, S.RUNNING: 0}, stopped=True, requests={}
    )
    assert "finished:" not in out
    assert out == (
        "stopped before finishing: 300 of 1500 done (300 succeeded); 1200 left (1200 pending)"
    )
    assert "stopped by a signal" in err
    assert f"continue with: orchestrator resume --state {STATE}" in err


def test_a_second_signal_says_jobs_were_left_to_the_resume_not_followed() -> None:
    out, err = text(
        counts={S.SUCCEEDED: 40, S.RUNNING: 25, S.SUBMITTING: 2, S.PENDING: 33},
        stopped=True,
        halted=True,
        requests={"reinstall": 67},
    )
    assert out.startswith("stopped before finishing: 40 of 100 done")
    assert "drain period" not in err
    assert "accepted jobs were not followed further" in err
    assert "a resume follows and settles them" in err
    assert "no report was written" in err
    assert f"continue with: orchestrator resume --state {STATE}" in err


def test_deferred_targets_are_the_reason_when_nothing_else_is() -> None:
    out, err = text(counts={S.SUCCEEDED: 8, S.PENDING: 2}, deferred=2)
    assert out.endswith("2 left (2 pending; 2 deferred)")
    assert "2 target(s) deferred" in err


def test_refused_credentials_with_nothing_sent_say_so() -> None:
    out, err = text(
        counts={S.PENDING: 2000},
        credentials_refused=True,
        aborted="credentials refused by the API: 401 APIGW.0301",
        requests={"server": 1},
    )
    assert out == ""
    assert "credentials refused" in err
    assert "nothing was sent" in err and "2000 of 2000 targets are still to do" in err
    assert "finished" not in err


def test_refused_credentials_after_some_reinstalls_count_them() -> None:
    out, err = text(
        counts={S.SUCCEEDED: 10, S.RUNNING: 5, S.PENDING: 85},
        credentials_refused=True,
        aborted="401",
        requests={"reinstall": 15, "server": 15, "job": 30},
    )
    assert out == ""
    assert "nothing was sent" not in err
    assert "15 reinstall request(s) were sent before the refusal" in err
    assert "left: 90 (85 pending, 5 running)" in err


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ({"succeeded": 3, "failed": 0, "pending": 0}, 0),
        ({"succeeded": 2, "failed": 1, "pending": 0}, 1),
        ({"succeeded": 2, "failed": 0, "pending": 1}, 3),
        ({"succeeded": 0, "failed": 1, "in_doubt": 1}, 3),
        ({"succeeded": 0, "running": 1}, 3),
        ({}, 0),
    ],
)
def test_exit_code_of_a_state(counts: dict[str, int], code: int) -> None:
    assert exit_code(counts) == code
