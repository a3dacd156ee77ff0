"""report.html as it goes into a change ticket, in headless Chromium 1,280 pixels wide:
the rollout and what is left are on the page, every column of the targets fits the
window, and the timeline's labels never sit on each other."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from browser import chromium_or_skip, measure
from report_helpers import FAIL_EVERY, iso, make_campaign

from orchestrator.model import TargetState as S
from orchestrator.report import ReportPaths, write_campaign_report
from orchestrator.rollout.options import PLAN_META_KEY
from orchestrator.rollout.report import rollout_summary
from orchestrator.store.sqlite import Change, RolloutRecord, StateStore

pytestmark = pytest.mark.timeout(120)

DECISIONS = [
    RolloutRecord("wave_started", "wave 1 started (2 targets)", wave=1),
    RolloutRecord("hold:canary_failed", "the canary failed: nothing more is sent", wave=1),
    RolloutRecord("trip:run_budget", "--max-failures 5 tripped: 6 failed"),
    RolloutRecord("hold:window_closed", "the window 02:00-05:00 Europe/Berlin closed"),
    RolloutRecord("left_pending", "60 target(s) left pending: the window closed"),
]


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    campaign = make_campaign(tmp_path_factory.mktemp("campaign") / "fleet.state.sqlite", 300)
    with StateStore.open(campaign.path) as store:
        store.set_meta(PLAN_META_KEY, json.dumps({"waves": "2,25%", "canary": 2, "sizes": [2, 74]}))
        store.add_rollout(DECISIONS)
        # A retry two seconds after #2 ended, that sends one target for six seconds:
        # its start and end crowd #2's end on the timeline.
        store.begin_invocation({"rate": 8.0}, None)
        store.reopen([FAIL_EVERY * 2], "a retry")
        at = [iso(campaign.end + timedelta(seconds=s)) for s in (3, 4, 7)]
        n = FAIL_EVERY * 2
        store.apply(
            [
                Change(n, S.PENDING, S.SUBMITTING, "sending", {"attempts": 2}, at[0]),
                Change(n, S.SUBMITTING, S.SUBMITTED, "accepted", {"job_id": "j-r"}, at[1]),
                Change(n, S.SUBMITTED, S.SUCCEEDED, "job SUCCESS", {"finished_at": at[2]}, at[2]),
            ]
        )
        store.end_invocation("complete")
    with sqlite3.connect(campaign.path) as conn:  # pinned to the campaign's clock
        conn.execute(
            "UPDATE runs SET started_at = ?, ended_at = ? WHERE id = 4",
            (iso(campaign.end + timedelta(seconds=2)), iso(campaign.end + timedelta(seconds=8))),
        )
        conn.execute(
            "UPDATE events SET at = ? WHERE target_id = ? AND from_state = 'failed'",
            (iso(campaign.end + timedelta(seconds=2.5)), FAIL_EVERY * 2),
        )
    with StateStore.open(campaign.path, readonly=True) as store:
        return write_campaign_report(
            tmp_path_factory.mktemp("reports"), store, rollout=rollout_summary(store)
        )


def test_the_rollout_and_what_is_left_are_on_the_page(browser: str, report: ReportPaths) -> None:
    found: Any = measure(
        browser,
        report.report_html,
        """
        var text = function (id) {
          var e = document.getElementById(id); return e ? e.textContent : null; };
        return {rollout: text("rollout"), left: text("left")};
        """,
    )
    rollout, left = found["rollout"], found["left"]
    assert rollout is not None and left is not None, found
    assert "waves 2,25%, canary 2 (sizes 2, 74)" in rollout
    for record in DECISIONS:
        assert record.detail in rollout
    assert "Held" in rollout and "60 target(s) left pending" in rollout
    # What to do next fits why the run stopped: the budget tripped.
    assert "orchestrator retry --state" in left
    assert "--ack-failures" in left or "Every target is final" in left


def test_every_column_of_the_targets_fits_a_1280_pixel_window(
    browser: str, report: ReportPaths
) -> None:
    found: Any = measure(
        browser,
        report.report_html,
        """
        var w = document.documentElement.clientWidth;
        var heads = document.querySelectorAll("#targets-table thead th");
        var cut = [];
        heads.forEach(function (th) {
          if (th.getBoundingClientRect().right > w + 0.5) { cut.push(th.textContent); }
        });
        return {width: w, columns: heads.length, cut: cut,
                scrolls: document.documentElement.scrollWidth > w + 1};
        """,
    )
    assert found["columns"] >= 10, found
    assert found["cut"] == [], found
    assert not found["scrolls"], found


def test_the_timelines_labels_never_overlap(browser: str, report: ReportPaths) -> None:
    found: Any = measure(
        browser,
        report.report_html,
        """
        var labels = Array.prototype.slice.call(
          document.querySelectorAll("#timeline svg text.tick"))
          .filter(function (t) { return /^#\\d+ /.test(t.textContent); })
          .map(function (t) { var r = t.getBoundingClientRect();
            return {text: t.textContent, left: r.left, right: r.right, top: r.top,
                    bottom: r.bottom}; });
        var overlaps = [];
        for (var i = 0; i < labels.length; i++) {
          for (var j = i + 1; j < labels.length; j++) {
            var a = labels[i], b = labels[j];
            // Rows of labels touch (a text's box is taller than its letters): only
            // boxes that share more than a quarter of their height are on each other.
            var shared = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
            if (a.left < b.right && b.left < a.right && shared > (a.bottom - a.top) / 4) {
              overlaps.push([a.text, b.text]);
            }
          }
        }
        return {labels: labels.map(function (l) { return l.text; }), overlaps: overlaps,
                section: document.getElementById("timeline").textContent};
        """,
    )
    assert found["overlaps"] == [], found
    # Every invocation's start and end is named: on the chart, or in the line below it.
    for name in ("#1 start", "#2 start", "#3 start", "#4 start", "#4 complete"):
        assert name in found["section"], found


def test_the_options_are_a_table_not_one_block(browser: str, report: ReportPaths) -> None:
    found: Any = measure(
        browser,
        report.report_html,
        """
        return Array.prototype.map.call(document.querySelectorAll("table.options"),
          function (t) { return t.querySelectorAll("tr").length; });
        """,
    )
    # One row per option, in the glance (the latest invocation) and per invocation.
    assert isinstance(found, list) and len(found) >= 5 and max(found) >= 2, found
