"""The completion report: the pure summary, the renderers and the file writers."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ReportError
from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import (
    ReportPaths,
    build_summary,
    summary_to_dict,
    target_duration,
    write_report,
)
from orchestrator.report import write as report_write
from orchestrator.report.render import MARKDOWN_ROW_CAP, md_cell
from orchestrator.report.summary import nearest_rank

T0 = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
GENERATED = "2026-11-27T00:00:00.000000Z"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_target(
    n: int,
    state: TargetState = TargetState.SUCCEEDED,
    *,
    seconds: float | None = None,
    region: str | None = None,
    extra: dict[str, str] | None = None,
    **fields: object,
) -> Target:
    """Target number n; `seconds` sets submitted_at=T0 and finished_at=T0+seconds."""
    if seconds is not None:
        fields.setdefault("submitted_at", iso(T0))
        fields.setdefault("finished_at", iso(T0 + timedelta(seconds=seconds)))
    spec = TargetSpec(
        project_id=f"proj{n % 3}",
        server_id=f"srv-{n:05d}",
        keyname="kp",
        userid="u1",
        line=n + 1,
        region=region,
        extra=extra or {},
    )
    return Target(id=n, spec=spec, state=state, **fields)  # type: ignore[arg-type]


def make_run(**fields: object) -> RunInfo:
    base: dict[str, object] = {
        "run_id": "run-20261126",
        "state_path": "/var/lib/orch/state.db",
        "inventory_path": "/srv/inventory.csv",
        "inventory_sha256": "ab" * 32,
        "created_at": "2026-11-26T19:00:00Z",
        "started_at": "2026-11-26T19:40:00Z",
        "ended_at": "2026-11-26T21:42:03Z",
        "invocations": 2,
        "options": {"concurrency": 50, "dry_run": False},
        "requests": {"reinstall": 7, "job": 30, "server": 4},
        "throttled": 3,
    }
    base.update(fields)
    return RunInfo(**base)  # type: ignore[arg-type]


def mixed_targets() -> list[Target]:
    return [
        make_target(0, TargetState.SUCCEEDED, seconds=10, region="eu-de", job_id="job-0"),
        make_target(1, TargetState.SUCCEEDED, seconds=30, region="eu-nl"),
        make_target(2, TargetState.FAILED, error_code="Ecs.0015", fail_reason="quota | exceeded"),
        make_target(3, TargetState.FAILED, error_code=None, fail_reason="job FAIL"),
        make_target(4, TargetState.PENDING),
        make_target(5, TargetState.IN_DOUBT, job_id="job-5", attempts=1),
        make_target(6, TargetState.RUNNING, job_id="job-6", attempts=2),
    ]


# -- build_summary -----------------------------------------------------------


def test_counts_hold_every_state_with_zero_for_absent_ones() -> None:
    summary = build_summary(make_run(), mixed_targets(), generated_at=GENERATED)
    assert dict(summary.counts) == {
        "pending": 1,
        "submitting": 0,
        "submitted": 0,
        "running": 1,
        "in_doubt": 1,
        "succeeded": 2,
        "failed": 2,
        "skipped": 0,
    }
    assert summary.total == 7
    assert summary.complete is False


@pytest.mark.parametrize(
    ("states", "complete"),
    [
        ([TargetState.SUCCEEDED, TargetState.FAILED], True),
        ([TargetState.SUCCEEDED, TargetState.SUBMITTING], False),
        ([TargetState.IN_DOUBT], False),
        ([], True),  # nothing left to do
    ],
)
def test_complete_only_when_every_target_is_final(
    states: list[TargetState], complete: bool
) -> None:
    targets = [make_target(i, state) for i, state in enumerate(states)]
    assert build_summary(make_run(), targets).complete is complete


def test_failures_by_error_code_counts_failed_targets_only_and_none_as_unknown() -> None:
    targets = [
        make_target(0, TargetState.FAILED, error_code="Ecs.0015"),
        make_target(1, TargetState.FAILED, error_code=None),
        make_target(2, TargetState.FAILED, error_code="Ecs.0015"),
        make_target(3, TargetState.FAILED, error_code="Ecs.0114"),
        make_target(4, TargetState.FAILED, error_code=""),
        # An error code on a target that is not failed (say, a retried 429) is no failure.
        make_target(5, TargetState.SUCCEEDED, error_code="Common.1503"),
        make_target(6, TargetState.PENDING, error_code="Ecs.0603"),
    ]
    by_code = build_summary(make_run(), targets).failures_by_error_code
    assert dict(by_code) == {"Ecs.0015": 2, "unknown": 2, "Ecs.0114": 1}
    assert list(by_code) == ["Ecs.0015", "unknown", "Ecs.0114"]  # most frequent first


def test_duration_percentiles_are_nearest_rank_over_1_to_100() -> None:
    targets = [make_target(i, seconds=101 - i) for i in range(1, 101)]  # unsorted input
    stats = build_summary(make_run(), targets).duration_s
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (50, 90, 95, 99)
    assert (stats.max, stats.mean, stats.count) == (100, 50.5, 100)


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([10.0, 20.0, 30.0, 40.0], 50, 20.0),
        ([10.0, 20.0, 30.0, 40.0], 51, 30.0),
        ([10.0, 20.0, 30.0, 40.0], 99, 40.0),
        ([7.0], 50, 7.0),
        ([7.0], 99, 7.0),
    ],
)
def test_nearest_rank_table(values: list[float], percent: int, expected: float) -> None:
    assert nearest_rank(values, percent) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=100),
)
def test_nearest_rank_is_smallest_value_covering_the_percent(values: list[int], p: int) -> None:
    ordered = sorted(float(v) for v in values)
    result = nearest_rank(ordered, p)
    assert result in ordered
    at_or_below = sum(1 for v in ordered if v <= result)
    assert at_or_below * 100 >= p * len(ordered)
    assert all(
        sum(1 for v in ordered if v <= w) * 100 < p * len(ordered) for w in ordered if w < result
    )


def test_durations_of_unfinished_or_incomplete_targets_are_ignored() -> None:
    start, end = iso(T0), iso(T0 + timedelta(seconds=999))
    targets = [
        make_target(0, TargetState.SUCCEEDED, seconds=4),
        make_target(
            1, TargetState.FAILED, intent_at=iso(T0), finished_at=iso(T0 + timedelta(seconds=8))
        ),
        # Not final: timestamps present, but no duration counts.
        make_target(2, TargetState.RUNNING, submitted_at=start, finished_at=end),
        make_target(3, TargetState.IN_DOUBT, intent_at=start, finished_at=end),
        # Final, but an end is missing or unreadable.
        make_target(4, TargetState.SUCCEEDED, submitted_at=start),
        make_target(5, TargetState.FAILED, finished_at=end),
        make_target(6, TargetState.SUCCEEDED, submitted_at="yesterday", finished_at=end),
    ]
    stats = build_summary(make_run(), targets).duration_s
    assert (stats.count, stats.max, stats.mean, stats.p50) == (2, 8, 6, 4)


def test_no_durations_gives_nulls() -> None:
    stats = summary_to_dict(build_summary(make_run(), [make_target(0, TargetState.PENDING)]))
    assert stats["duration_s"] == {
        "p50": None, "p90": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        ("2026-11-26T19:45:00.123456Z", "2026-11-26T19:45:01.623456Z", 1.5),
        ("2026-11-26T19:45:00Z", "2026-11-26T19:46:00Z", 60.0),
        ("2026-11-26T19:45:00+00:00", "2026-11-26T19:45:02.5+00:00", 2.5),
        ("2026-11-26T21:45:00+02:00", "2026-11-26T19:45:03Z", 3.0),  # same instant, other zone
        ("2026-11-26T19:45:00", "2026-11-26T19:45:04Z", 4.0),  # naive taken as UTC
        ("2026-11-26T19:45:00Z", "not a time", None),
    ],
)
def test_target_duration_parses_iso_variants(start: str, end: str, seconds: float | None) -> None:
    target = make_target(0, submitted_at=start, finished_at=end)
    assert target_duration(target) == (pytest.approx(seconds) if seconds is not None else None)


def test_duration_prefers_submitted_at_over_intent_at() -> None:
    target = make_target(
        0,
        intent_at=iso(T0),
        submitted_at=iso(T0 + timedelta(seconds=5)),
        finished_at=iso(T0 + timedelta(seconds=12)),
    )
    assert target_duration(target) == 7.0


def test_run_fields_requests_and_throttled_pass_through() -> None:
    run = make_run()
    data = summary_to_dict(build_summary(run, mixed_targets(), generated_at=GENERATED))
    assert list(data) == [
        "run_id", "created_at", "started_at", "ended_at", "invocations", "state_path",
        "inventory_path", "inventory_sha256", "options", "total", "counts", "complete",
        "failures_by_error_code", "duration_s", "requests", "throttled", "generated_at",
        "failures_by_project", "duration_source", "group_by", "groups", "campaign",
        "selection", "rollout",
    ]  # fmt: skip
    assert data["requests"] == {"reinstall": 7, "job": 30, "server": 4}
    assert data["throttled"] == 3
    assert (data["run_id"], data["invocations"], data["generated_at"]) == (
        "run-20261126",
        2,
        GENERATED,
    )
    assert data["inventory_sha256"] == "ab" * 32
    json.dumps(data)  # plain data all the way down


def test_secret_looking_option_keys_are_dropped() -> None:
    options = {
        "concurrency": 50,
        "api_token": "t0k",
        "AUTH_TOKEN": "t0k",
        "client_secret": "s3c",
        "sk": "s3c",
        "HUAWEICLOUD_SDK_SK": "s3c",
        "db_password": "pw",
        "nested": {"rate": 5, "Password": "pw"},
    }
    data = summary_to_dict(build_summary(make_run(options=options), []))
    assert data["options"] == {"concurrency": 50, "nested": {"rate": 5}}


# -- write_report --------------------------------------------------------------


def write(tmp_path: Path, run: RunInfo, targets: list[Target]) -> ReportPaths:
    return write_report(tmp_path / "reports", run, lambda: iter(targets))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_write_report_writes_the_five_files_under_the_run_id(tmp_path: Path) -> None:
    paths = write(tmp_path, make_run(), mixed_targets())
    assert paths.directory == tmp_path / "reports" / "run-20261126"
    assert sorted(p.name for p in paths.directory.iterdir()) == [
        "report.html",
        "report.md",
        "retry.csv",
        "summary.json",
        "targets.csv",
    ]
    for path in (paths.summary_json, paths.targets_csv, paths.report_md, paths.report_html):
        assert path.parent == paths.directory and path.is_file()


def test_summary_json_matches_the_built_summary(tmp_path: Path) -> None:
    run, targets = make_run(), mixed_targets()
    paths = write(tmp_path, run, targets)
    written = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    expected = summary_to_dict(build_summary(run, targets, generated_at=written["generated_at"]))
    assert written == expected
    assert written["counts"]["failed"] == 2 and written["complete"] is False


def test_targets_csv_parses_back_with_region_and_extra_columns(tmp_path: Path) -> None:
    run = make_run(extra_columns=("owner", "rack"))
    targets = [
        make_target(0, seconds=12.34567, region="eu-de", extra={"owner": "team-a", "rack": "r1"}),
        make_target(1, TargetState.FAILED, attempts=3, error_code="Ecs.0015", fail_reason="nope"),
        make_target(2, TargetState.PENDING, extra={"owner": "team-b"}),
    ]
    paths = write(tmp_path, run, targets)
    rows = read_csv(paths.targets_csv)
    assert len(rows) == 3
    assert list(rows[0]) == [
        "project_id", "server_id", "state", "job_id", "error_code", "fail_reason", "attempts",
        "submitted_at", "finished_at", "duration_s", "region", "wave", "owner", "rack",
    ]  # fmt: skip
    assert rows[0]["server_id"] == "srv-00000"
    assert rows[0]["state"] == "succeeded"
    assert rows[0]["duration_s"] == "12.346"
    assert rows[0]["region"] == "eu-de"
    assert (rows[0]["owner"], rows[0]["rack"]) == ("team-a", "r1")
    assert rows[1]["attempts"] == "3"
    assert (rows[1]["error_code"], rows[1]["fail_reason"]) == ("Ecs.0015", "nope")
    assert (rows[1]["duration_s"], rows[1]["region"], rows[1]["owner"]) == ("", "", "")
    assert (rows[2]["owner"], rows[2]["rack"], rows[2]["job_id"]) == ("team-b", "", "")
    raw = paths.targets_csv.read_bytes()
    assert b"\r" not in raw
    assert b"\n" in raw
    # Numbers are written plain: attempts and duration unquoted, no neutralising.
    assert ",12.346,eu-de,,team-a,r1\n" in raw.decode()
    assert ",nope,3,,,,,,,\n" in raw.decode()


def test_extra_column_named_like_ours_is_renamed_not_lost(tmp_path: Path) -> None:
    run = make_run(extra_columns=("state", "owner", "owner"))
    target = make_target(0, extra={"state": "Bavaria", "owner": "x"})
    rows = read_csv(write(tmp_path, run, [target]).targets_csv)
    assert (rows[0]["state"], rows[0]["extra_state"], rows[0]["owner"]) == (
        "succeeded",
        "Bavaria",
        "x",
    )
    assert list(rows[0])[-2:] == ["extra_state", "owner"]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_like_cells_are_neutralised(tmp_path: Path, prefix: str) -> None:
    payload = prefix + 'HYPERLINK("http://evil")'
    run = make_run(extra_columns=("note",))
    targets = [
        make_target(0, TargetState.FAILED, fail_reason=payload, extra={"note": payload}),
        make_target(1, TargetState.FAILED, fail_reason="disk a=b", extra={"note": "plain"}),
    ]
    rows = read_csv(write(tmp_path, run, targets).targets_csv)
    assert rows[0]["fail_reason"] == "'" + payload
    assert rows[0]["note"] == "'" + payload
    assert rows[1]["fail_reason"] == "disk a=b"
    assert rows[1]["note"] == "plain"


def test_report_md_lists_failures_and_unfinished_targets(tmp_path: Path) -> None:
    text = write(tmp_path, make_run(), mixed_targets()).report_md.read_text(encoding="utf-8")
    assert text.startswith("# Reinstall report: run-20261126\n")
    assert "took 2h 02m 03s" in text
    assert "| Ecs.0015 | 1 |" in text
    assert "| unknown | 1 |" in text
    assert "| proj2 | srv-00002 | Ecs.0015 | quota \\| exceeded |" in text
    assert "| proj0 | srv-00003 |  | job FAIL |" in text
    assert "3 target(s) are not finished" in text
    assert "`orchestrator resume --state /var/lib/orch/state.db`" in text
    for line in ("| proj1 | srv-00004 | pending |", "| proj2 | srv-00005 | in_doubt | job-5 |"):
        assert line in text
    # Succeeded targets are in neither list.
    assert "srv-00000" not in text


def test_report_md_of_a_complete_run_has_no_resume_hint(tmp_path: Path) -> None:
    targets = [make_target(0, seconds=1), make_target(1, seconds=2)]
    text = write(tmp_path, make_run(), targets).report_md.read_text(encoding="utf-8")
    assert "orchestrator resume" not in text
    assert "None: every target is in a final state." in text
    assert "No target failed." in text


def test_markdown_cells_escape_pipes_newlines_and_html() -> None:
    assert md_cell("a|b") == "a\\|b"
    assert md_cell("line1\nline2\r\nline3") == "line1 line2 line3"
    assert md_cell("a\\|b") == "a\\\\\\|b"  # a literal backslash cannot unescape our pipe
    assert md_cell("<script>") == "\\<script\\>"
    assert md_cell(None) == ""


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_markdown_cell_never_contains_a_bare_pipe_or_line_break(text: str) -> None:
    cell = md_cell(text)
    assert not any(ch in cell for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    # Walk escapes: every pipe must be preceded by an escaping backslash.
    i = 0
    while i < len(cell):
        assert cell[i] != "|"
        i += 2 if cell[i] == "\\" else 1


def test_report_md_lists_are_capped(tmp_path: Path) -> None:
    targets = [
        make_target(i, TargetState.FAILED, error_code="E") for i in range(MARKDOWN_ROW_CAP + 7)
    ]
    paths = write(tmp_path, make_run(), targets)
    text = paths.report_md.read_text(encoding="utf-8")
    assert "… and 7 more, see targets.csv" in text
    assert f"srv-{MARKDOWN_ROW_CAP - 1:05d}" in text
    assert f"srv-{MARKDOWN_ROW_CAP:05d}" not in text
    assert len(read_csv(paths.targets_csv)) == MARKDOWN_ROW_CAP + 7


def test_targets_callable_is_called_once_and_generators_stream(tmp_path: Path) -> None:
    calls = 0

    def targets() -> Iterator[Target]:
        nonlocal calls
        calls += 1
        yield from mixed_targets()  # a fresh one-shot generator per call

    paths = write_report(tmp_path, make_run(), targets)
    assert calls == 1  # one pass over the state file feeds every file
    assert json.loads(paths.summary_json.read_text())["total"] == 7
    assert len(read_csv(paths.targets_csv)) == 7
    html = paths.report_html.read_text(encoding="utf-8")
    assert all(t.server_id in html for t in mixed_targets())


def test_secret_options_never_reach_the_files(tmp_path: Path) -> None:
    run = make_run(options={"rate": 2, "ak_sk": "SUPERSECRET", "token": "SUPERSECRET"})
    paths = write(tmp_path, run, mixed_targets())
    for path in (paths.summary_json, paths.targets_csv, paths.report_md, paths.report_html):
        assert "SUPERSECRET" not in path.read_text(encoding="utf-8")
    assert json.loads(paths.summary_json.read_text())["options"] == {"rate": 2}


# -- failures ------------------------------------------------------------------


def test_report_dir_under_a_regular_file_is_a_report_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ReportError) as caught:
        write_report(blocker, make_run(), lambda: iter(mixed_targets()))
    assert str(blocker / "run-20261126") in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_read_only_report_dir_is_a_report_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-20261126"
    run_dir.mkdir()
    run_dir.chmod(0o500)
    try:
        try:
            (run_dir / "probe").write_text("x")
        except PermissionError:
            pass
        else:
            pytest.skip("chmod does not stop this user (root?) from writing")
        with pytest.raises(ReportError) as caught:
            write_report(tmp_path, make_run(), lambda: iter(mixed_targets()))
        assert str(run_dir / "summary.json") in str(caught.value)
        assert "Permission denied" in str(caught.value)
        assert list(run_dir.iterdir()) == []
    finally:
        run_dir.chmod(0o700)


def test_full_disk_mid_report_keeps_the_previous_report_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = write_report(tmp_path, make_run(), lambda: iter(mixed_targets()[:1]))
    before = {p.name: p.read_bytes() for p in old.directory.iterdir()}
    real_fsync, calls = os.fsync, 0

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the CSV, the first file staged
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(report_write.os, "fsync", fsync)
    with pytest.raises(ReportError) as caught:
        write_report(tmp_path, make_run(), lambda: iter(mixed_targets()))
    assert str(old.targets_csv) in str(caught.value)
    assert os.strerror(errno.ENOSPC) in str(caught.value)
    assert {p.name: p.read_bytes() for p in old.directory.iterdir()} == before


def test_error_from_the_state_store_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    class StoreBroke(Exception):
        pass

    calls = 0

    def targets() -> Iterator[Target]:
        nonlocal calls
        calls += 1
        yield from mixed_targets()[:2]
        if calls == 1:
            raise StoreBroke

    with pytest.raises(StoreBroke):
        write_report(tmp_path / "reports", make_run(), targets)
    # The run folder this call created is gone again, temp files included.
    assert list((tmp_path / "reports").iterdir()) == []


@pytest.mark.parametrize("run_id", ["", ".", "..", "../escape", "a/b", "a\\b"])
def test_run_id_that_is_not_a_plain_name_is_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(ReportError, match="report folder"):
        write_report(tmp_path, make_run(run_id=run_id), lambda: iter([]))
    assert list(tmp_path.iterdir()) == []


def test_csv_writer_alone_streams_to_any_text_stream() -> None:
    out = io.StringIO(newline="")
    report_write.write_targets_csv(out, make_run(), iter(mixed_targets()))
    assert out.getvalue().count("\n") == 8
