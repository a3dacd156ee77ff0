"""The whole report from a real state file: report.html, report.md and summary.json agree
with the campaign played into it (counts, every failure, every invocation, escaping)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_helpers import (
    HOSTILE_NAME,
    HOSTILE_REASON,
    OWNERS,
    REORDERING_NAME,
    Campaign,
    make_campaign,
    name_of,
    server_id,
)

from orchestrator.errors import UsageError
from orchestrator.report import ReportPaths, write_campaign_report
from orchestrator.store.sqlite import StateStore

COUNT = 120


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return make_campaign(tmp_path_factory.mktemp("campaign") / "fleet.state.sqlite", COUNT)


@pytest.fixture(scope="module")
def report(campaign: Campaign, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    with StateStore.open(campaign.path, readonly=True) as store:
        return write_campaign_report(tmp_path_factory.mktemp("reports"), store, group_by="owner")


def page_rows(html: str) -> tuple[list[str], list[list[object]]]:
    match = re.search(
        r'<script type="application/json" id="targets-data">(.*?)</script>', html, re.S
    )
    assert match is not None
    data = json.loads(match.group(1))
    return [c["key"] for c in data["columns"]], data["rows"]


def test_html_embeds_every_target_once_with_its_state(
    campaign: Campaign, report: ReportPaths
) -> None:
    keys, rows = page_rows(report.report_html.read_text(encoding="utf-8"))
    assert keys[:3] == ["server_id", "name", "project_id"]
    assert len(rows) == COUNT
    by_server = {row[keys.index("server_id")]: row for row in rows}
    assert len(by_server) == COUNT
    failed = {row[keys.index("server_id")] for row in rows if row[keys.index("state")] == "failed"}
    assert failed == {server_id(n) for n in campaign.failed}
    assert by_server[server_id(3)][keys.index("name")] == HOSTILE_NAME  # data intact
    assert by_server[server_id(7)][keys.index("fail_reason")] == HOSTILE_REASON


def test_html_glance_shows_the_counts(campaign: Campaign, report: ReportPaths) -> None:
    html = report.report_html.read_text(encoding="utf-8")
    n_failed = len(campaign.failed)
    assert f"<b>{COUNT:,}</b><span>targets</span>" in html
    assert f"<b>{campaign.succeeded:,}</b><span>succeeded · " in html
    assert f"<b>{n_failed:,}</b><span>failed · {100 * n_failed / COUNT:.1f} %</span>" in html
    assert "<b>3</b><span>throttled answers" in html


def test_hostile_strings_are_text_not_markup(report: ReportPaths) -> None:
    html = report.report_html.read_text(encoding="utf-8")
    assert HOSTILE_NAME not in html
    assert HOSTILE_REASON not in html
    assert "<img" not in html
    # Exactly three script elements: the error hook, the data, the page's own script.
    assert html.count("<script") == 3
    assert html.count("</script>") == 3
    markdown = report.report_md.read_text(encoding="utf-8")
    # Markdown escapes with a backslash: no "<" may stand unescaped.
    assert re.search(r"(?<!\\)<", markdown) is None
    assert "\\</script\\>\\<img src=x" in markdown


def test_control_and_bidi_characters_are_shown_not_obeyed(report: ReportPaths) -> None:
    html = report.report_html.read_text(encoding="utf-8")
    assert "\u202e" not in html and "\x1b" not in html
    keys, rows = page_rows(html)
    by_server = {row[keys.index("server_id")]: row for row in rows}
    # As the terminal and report.md show it: escapes that read as Python writes them.
    assert by_server[server_id(5)][keys.index("name")] == "web-\\u202eexe.txt\\x1b[31m"
    assert REORDERING_NAME not in report.report_md.read_text(encoding="utf-8")


def test_html_refers_to_nothing_outside_itself(report: ReportPaths) -> None:
    html = report.report_html.read_text(encoding="utf-8")
    for needle in ("http://", "https://", 'src="//', "src='//", "url(", "@import", "<link"):
        assert needle not in html, needle
    # The markup (the embedded data aside, which is text) loads nothing and links
    # only within the page.
    markup = re.sub(r'<script type="application/json".*?</script>', "", html, flags=re.S)
    assert re.search(r"\bsrc\s*=", markup) is None
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', markup))
    assert "default-src 'none'" in html


def test_secret_options_stay_out_of_every_file(report: ReportPaths) -> None:
    for path in (report.report_html, report.report_md, report.summary_json):
        assert "SECRET" not in path.read_text(encoding="utf-8")


def test_every_invocation_is_described_and_rerun_keeps_the_duration(
    campaign: Campaign, report: ReportPaths
) -> None:
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    history = summary["campaign"]
    outcomes = [(i["number"], i["outcome"], i["end_recorded"]) for i in history["invocations"]]
    assert outcomes == [(1, "killed", False), (2, "complete", True), (3, "complete", True)]
    first = history["invocations"][0]
    # The killed invocation is measured to its last event, not to nothing.
    assert first["duration_s"] > 0.6 * COUNT * 0.25
    # Invocation #3 had nothing to do: it adds its one second, it does not replace the rest.
    assert history["invocations"][2]["duration_s"] == 1.0
    assert history["active_s"] == pytest.approx(
        sum(i["duration_s"] for i in history["invocations"]), abs=0.01
    )
    assert history["active_s"] > 30
    # Wall-clock: from #1's start to #3's end, the pauses included.
    assert history["span_s"] > 3600
    markdown = report.report_md.read_text(encoding="utf-8")
    assert "killed: no end recorded" in markdown
    assert "(sum of 3 invocation(s))" in markdown
    assert "took 0.0s" not in markdown
    html = report.report_html.read_text(encoding="utf-8")
    for label in ("#1 start", "#1 killed", "#2 start", "#2 complete"):
        assert f">{label}</text>" in html  # marked on the timeline
    # #3 had no events: named beside the chart, not drawn on its edge.
    assert "Outside the chart (no events then): #3 start" in html


def test_markdown_lists_every_failure_with_its_name_and_percentages(
    campaign: Campaign, report: ReportPaths
) -> None:
    markdown = report.report_md.read_text(encoding="utf-8")
    for n in campaign.failed:
        if n != 3:
            assert f"| {server_id(n)} | {name_of(n)} |" in markdown
    n_failed = len(campaign.failed)
    assert f"| failed | {n_failed} | {100 * n_failed / COUNT:.1f} % |" in markdown
    assert "## Failures by project" in markdown
    # States no target is in are not listed.
    for state in ("pending", "submitting", "submitted", "running", "in_doubt"):
        assert f"| {state} |" not in markdown


def test_group_by_counts_each_owner(campaign: Campaign, report: ReportPaths) -> None:
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    assert summary["group_by"] == "owner"
    groups = summary["groups"]
    for index, owner in enumerate(OWNERS):
        members = [n for n in range(1, COUNT + 1) if n % len(OWNERS) == index]
        failed = sum(1 for n in members if n in campaign.failed)
        expected = {"succeeded": len(members) - failed, "failed": failed}
        assert groups[owner] == {k: v for k, v in expected.items() if v}
    markdown = report.report_md.read_text(encoding="utf-8")
    assert "## By owner" in markdown


def test_failures_by_project_add_up(campaign: Campaign, report: ReportPaths) -> None:
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    by_project = summary["failures_by_project"]
    assert sum(by_project.values()) == len(campaign.failed)
    assert list(by_project.values()) == sorted(by_project.values(), reverse=True)


def test_timeline_marks_every_throttled_answer_from_the_samples(report: ReportPaths) -> None:
    # The state file keeps each throttled answer with its time (3 in the fixture): those,
    # not the events that happen to mention throttling, are drawn.
    html = report.report_html.read_text(encoding="utf-8")
    marks = re.findall(r"<title>[^<]*: (\d+) throttled</title>", html)
    assert sum(int(m) for m in marks) == 3
    submitted = re.findall(r"<title>[^<]*: (\d+) submitted</title>", html)
    assert sum(int(m) for m in submitted) == COUNT


def test_unknown_group_by_column_is_a_usage_error(campaign: Campaign, tmp_path: Path) -> None:
    with (
        StateStore.open(campaign.path, readonly=True) as store,
        pytest.raises(UsageError, match=r"'colour'.*owner"),
    ):
        write_campaign_report(tmp_path, store, group_by="colour")
    assert list(tmp_path.iterdir()) == []
