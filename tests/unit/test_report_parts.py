"""The report's pure parts: campaign history, timeline, histogram, job-time durations,
group-by, and the Markdown that uses them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.errors import UsageError
from orchestrator.model import InvocationInfo, RunInfo, Target, TargetSpec, TargetState, evolve
from orchestrator.report import build_summary, summary_to_dict, target_duration
from orchestrator.report.history import build_history
from orchestrator.report.html import json_for_script
from orchestrator.report.render import Listings, render_markdown
from orchestrator.report.summary import GROUP_CAP, OTHER_GROUP, histogram
from orchestrator.report.timeline import MAX_KEYS, Timeline, build_timeline, is_throttle

S = TargetState
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def inv(number: int, start: float, end: float | None, outcome: str | None) -> InvocationInfo:
    return InvocationInfo(
        number=number,
        started_at=iso(start),
        ended_at=iso(end) if end is not None else None,
        outcome=outcome,
        options={"rate": number, "sk": "s3cret"},
    )


def run_info(**fields: object) -> RunInfo:
    base: dict[str, object] = {
        "run_id": "r1",
        "state_path": "s.db",
        "inventory_path": "inv.csv",
        "inventory_sha256": "00",
        "created_at": iso(0),
        "started_at": iso(0),
        "ended_at": iso(10),
        "invocations": 1,
        "extra_columns": ("name", "owner"),
    }
    base.update(fields)
    return RunInfo(**base)  # type: ignore[arg-type]


def target(n: int, state: TargetState = S.SUCCEEDED, **fields: object) -> Target:
    spec = TargetSpec(
        project_id=f"p{n % 2}",
        server_id=f"s{n}",
        keyname="k",
        userid="u",
        line=n,
        extra={"name": f"web-{n}", "owner": f"team-{n % 3}"},
    )
    return Target(id=n, spec=spec, state=state, **fields)  # type: ignore[arg-type]


# -- history ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("invocations", "activity", "outcomes", "active", "span"),
    [
        # One clean run.
        ([inv(1, 0, 100, "complete")], {}, ["complete"], 100.0, 100.0),
        # Killed, resumed, then a re-run with nothing to do: the re-run adds, not replaces.
        (
            [inv(1, 0, None, None), inv(2, 500, 600, "complete"), inv(3, 7200, 7201, "complete")],
            {1: iso(40)},
            ["killed", "complete", "complete"],
            40.0 + 100.0 + 1.0,
            7201.0,
        ),
        # Killed with no event at all: no duration known, counted as 0.
        ([inv(1, 0, None, None), inv(2, 50, 60, "stopped")], {}, ["killed", "stopped"], 10.0, 60.0),
        # The latest has no end: still running, or killed; measured to its last event.
        ([inv(1, 0, None, None)], {1: iso(30)}, ["running or killed"], 30.0, 30.0),
    ],
)
def test_history_durations_and_outcomes(
    invocations: list[InvocationInfo],
    activity: dict[int, str],
    outcomes: list[str],
    active: float,
    span: float,
) -> None:
    history = build_history(invocations, activity)
    assert [i.outcome for i in history.invocations] == outcomes
    assert history.active_s == active
    assert history.span_s == span


def test_history_options_go_through_the_filter() -> None:
    history = build_history(
        [inv(1, 0, 1, "complete")], safe=lambda o: {k: v for k, v in o.items() if k != "sk"}
    )
    assert dict(history.invocations[0].options) == {"rate": 1}


# -- timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ev:
    at: str
    from_state: str | None
    to_state: str
    detail: str = ""
    invocation: int | None = 1


def test_timeline_counts_and_in_flight() -> None:
    events = [
        Ev(iso(0), "pending", "submitting"),
        Ev(iso(0.1), "submitting", "submitted"),
        Ev(iso(0.2), "pending", "submitting"),
        Ev(iso(0.3), "submitting", "pending", "deferred: HTTP 429 APIGW.0308"),
        Ev(iso(1), "submitted", "running"),
        Ev(iso(5), "running", "succeeded", invocation=2),
        Ev(iso(5.5), "pending", "pending", "deferred: flow limit exceeded (202 Common.0024)"),
        Ev("garbage", "pending", "failed"),
    ]
    timeline = build_timeline(events)
    assert timeline.events == 7  # the unreadable time is skipped
    assert timeline.last_activity == {1: iso(5.5), 2: iso(5)}
    bins = timeline.bins(6)
    assert sum(b.submitted for b in bins) == 1
    assert sum(b.succeeded for b in bins) == 1
    assert sum(b.throttled for b in bins) == 2
    assert bins[0].in_flight == 1  # one submitted; the deferred one left again
    assert bins[-1].in_flight == 0


@pytest.mark.parametrize(
    ("detail", "throttle"),
    [
        ("deferred: still refused after retries: HTTP 429 APIGW.0308", True),
        ("flow limit exceeded (202 Common.0024)", True),
        ("throttled: 12 answers", True),
        ("job job-1 FAIL", False),
        ("", False),
    ],
)
def test_throttle_markers(detail: str, throttle: bool) -> None:
    assert is_throttle(detail) is throttle


def test_timeline_coarsens_instead_of_growing() -> None:
    timeline = Timeline()
    for second in range(MAX_KEYS + 10):
        timeline.add(Ev(iso(second * 3), "pending", "submitting"))
    assert timeline.step > 1
    assert len(timeline.counts) <= MAX_KEYS
    assert sum(b.in_flight for b in timeline.bins(1)) == MAX_KEYS + 10


# -- durations ------------------------------------------------------------------------


def test_job_times_beat_observed_times() -> None:
    observed = {"submitted_at": iso(0), "finished_at": iso(5.7)}
    own = target(1, job_begin_at=iso(1), job_end_at=iso(3), **observed)
    assert target_duration(own) == 2.0
    assert target_duration(target(2, **observed)) == 5.7
    # An end before the begin is not believed: fall back to what we saw.
    assert target_duration(target(3, job_begin_at=iso(3), job_end_at=iso(1), **observed)) == 5.7
    stats = build_summary(run_info(), [own, target(2, **observed)]).duration_s
    assert (stats.count, stats.from_job_times) == (2, 1)


def test_a_duration_is_remembered_for_one_target_object_only() -> None:
    # The report asks three times per target in a row; a later target with the same
    # id (another read of the store, another state) must get its own answer.
    first = target(1, submitted_at=iso(0), finished_at=iso(4))
    assert target_duration(first) == target_duration(first) == 4.0
    later = evolve(first, finished_at=iso(9))
    assert later.id == first.id
    assert target_duration(later) == 9.0
    assert target_duration(evolve(later, state=TargetState.RUNNING)) is None
    assert target_duration(first) == 4.0


def test_histogram_keeps_stragglers_in_an_open_last_bar() -> None:
    values = sorted([1.0 + i / 100 for i in range(200)] + [3600.0])
    bars = histogram(values, bins=10)
    assert len(bars) == 10
    assert sum(n for _, _, n in bars) == 201
    assert bars[-1][1] < 10  # the scale ends near p99, not at the straggler
    assert histogram([2.0, 2.0]) == ((2.0, 2.0, 2),)
    assert histogram([]) == ()


# -- group-by and Markdown ------------------------------------------------------------


def test_group_by_extra_column_and_cap() -> None:
    targets = [target(n, S.FAILED if n in (0, 3) else S.SUCCEEDED) for n in range(12)]
    summary = build_summary(run_info(), targets, group_by="owner")
    assert dict(summary.groups["team-0"]) == {"succeeded": 2, "failed": 2}
    assert summary_to_dict(summary)["groups"]["team-1"] == {"succeeded": 4}
    many = (target(n) for n in range(GROUP_CAP + 5))
    capped = build_summary(run_info(), many, group_by="name")
    assert len(capped.groups) == GROUP_CAP + 1
    assert sum(capped.groups[OTHER_GROUP].values()) == 5


def test_group_by_unknown_column_names_the_choices() -> None:
    with pytest.raises(UsageError, match=r"--group-by 'colour'.*project_id.*owner"):
        build_summary(run_info(), [], group_by="colour")


def test_markdown_percentages_names_and_no_empty_states() -> None:
    targets = [
        target(1),
        target(2, S.FAILED, error_code="Ecs.0101", fail_reason="disk"),
        target(4, S.FAILED, error_code="Ecs.0101", fail_reason="disk"),
        target(3, S.PENDING),
    ]
    listings = Listings()
    for t in targets:
        listings.offer(t)
    history = build_history([inv(1, 0, None, None), inv(2, 100, 130, "complete")], {1: iso(20)})
    summary = build_summary(run_info(), targets, group_by="owner", history=history)
    text = render_markdown(summary, listings, extra_columns=("name", "owner"))
    assert "| failed | 2 | 50.0 % |" in text
    assert "| Ecs.0101 | 2 | 100.0 % |" in text
    assert "| p0 | 2 | 100.0 % |" in text  # failures by project
    assert "| p0 | s2 | web-2 | team-2 | Ecs.0101 | disk |" in text
    assert "| running |" not in text and "| submitting |" not in text
    assert "50.0s working (sum of 2 invocation(s))" in text
    assert "| 1 | " in text and "killed: no end recorded" in text


def test_json_for_script_cannot_close_the_element() -> None:
    text = json_for_script(["</script><!--", "a&b", "\u2028"])
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == ["</script><!--", "a&b", "\u2028"]
