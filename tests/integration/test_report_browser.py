"""report.html in headless Chromium: loads without script errors, shows the right counts,
filters by state, search and sort from the URL fragment, and never runs hostile text."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser import chromium_or_skip, dump_dom
from report_helpers import HOSTILE_NAME, HOSTILE_REASON, Campaign, make_campaign, server_id

from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import ReportPaths, write_campaign_report, write_report
from orchestrator.store.sqlite import StateStore

COUNT = 300
PAGE = 100  # rows per page in the report's script

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return make_campaign(tmp_path_factory.mktemp("campaign") / "fleet.state.sqlite", COUNT)


@pytest.fixture(scope="module")
def report(campaign: Campaign, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    with StateStore.open(campaign.path, readonly=True) as store:
        return write_campaign_report(tmp_path_factory.mktemp("reports"), store)


def rows(dom: str) -> list[str]:
    body = re.search(r'<tbody id="targets-body">(.*?)</tbody>', dom, re.S)
    assert body is not None, "the table body is missing"
    return re.findall(r"<tr [^>]*>(.*?)</tr>", body.group(1), re.S)


def loaded(dom: str) -> None:
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None
    assert 'data-ready="1"' in html_tag.group(0), "the page's script did not finish"
    assert "data-error" not in html_tag.group(0), html_tag.group(0)
    assert "data-pwned" not in html_tag.group(0), "hostile text ran as markup"


def shown(dom: str) -> int:
    match = re.search(r'id="shown-count">(\d+)<', dom)
    assert match is not None
    return int(match.group(1))


def test_page_loads_and_shows_every_target(browser: str, report: ReportPaths) -> None:
    dom = dump_dom(browser, report.report_html)
    loaded(dom)
    assert shown(dom) == COUNT
    assert re.search(r'id="total-count">300<', dom)
    assert len(rows(dom)) == PAGE
    assert "page 1 of 3" in dom


def test_filter_by_state_from_the_fragment_shows_only_failed_rows(
    browser: str, campaign: Campaign, report: ReportPaths
) -> None:
    dom = dump_dom(browser, report.report_html, "state=failed")
    loaded(dom)
    found = rows(dom)
    assert shown(dom) == len(campaign.failed) == len(found)
    assert all('class="st st-failed">failed<' in row for row in found)
    listed = set(re.findall(r"00000000-0000-4000-8000-[0-9a-f]{12}", "".join(found)))
    assert listed == {server_id(n) for n in campaign.failed}
    # The hostile reason of target 7 is shown as text, escaped by the DOM.
    assert "&lt;/script&gt;&lt;img src=x onerror=" in dom
    assert HOSTILE_REASON not in dom


def test_search_finds_a_hostile_name_as_text(browser: str, report: ReportPaths) -> None:
    dom = dump_dom(browser, report.report_html, "q=alert")
    loaded(dom)
    found = rows(dom)
    assert len(found) == shown(dom) == 1
    assert server_id(3) in found[0]
    assert '&lt;script&gt;alert("name")&lt;/script&gt;&amp;amp;' in found[0]
    assert HOSTILE_NAME not in dom


def test_sort_and_page_from_the_fragment(browser: str, report: ReportPaths) -> None:
    dom = dump_dom(browser, report.report_html, "sort=server_id&dir=desc&page=3")
    loaded(dom)
    found = rows(dom)
    assert "page 3 of 3" in dom and len(found) == PAGE
    ids = [re.search(r"00000000-0000-4000-8000-[0-9a-f]{12}", row).group(0) for row in found]  # type: ignore[union-attr]
    assert ids == [server_id(n) for n in range(PAGE, 0, -1)]


# Inventory columns named like what every JavaScript object has; error codes too.
PROTO_COLUMNS = ("hasOwnProperty", "__proto__", "constructor", "toString")
PROTO_COUNT = 7


@pytest.fixture(scope="module")
def proto_report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    run = RunInfo(
        run_id="run-proto",
        state_path="/x/state.sqlite",
        inventory_path="/x/fleet.csv",
        inventory_sha256="ab" * 32,
        created_at="2026-11-26T19:00:00Z",
        started_at=None,
        ended_at=None,
        invocations=1,
        options={},
        requests={},
        throttled=0,
        extra_columns=PROTO_COLUMNS,
    )

    def targets() -> Iterator[Target]:
        for n in range(1, PROTO_COUNT + 1):
            rank = (n * 3) % PROTO_COUNT  # a sort order unlike the inventory's
            spec = TargetSpec(
                "0123456789abcdef0123456789abcdef",
                server_id(n),
                "kp",
                "u1",
                n + 1,
                extra={key: f"{key}-{rank}" for key in PROTO_COLUMNS},
            )
            code = PROTO_COLUMNS[n % 3 + 1]  # "__proto__", "constructor", "toString"
            yield Target(id=n, spec=spec, state=TargetState.FAILED, error_code=code)

    return write_report(tmp_path_factory.mktemp("proto"), run, targets)


def column_values(dom: str, label: str) -> list[str]:
    head = re.search(r'<tr id="targets-head">(.*?)</tr>', dom, re.S)
    assert head is not None
    labels = [re.sub(r" [▲▼]$", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", head.group(1))]
    index = labels.index(label)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row)[index] for row in rows(dom)]


@pytest.mark.parametrize("column", PROTO_COLUMNS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_columns_named_like_object_properties_draw_and_sort(
    browser: str, proto_report: ReportPaths, column: str, direction: str
) -> None:
    dom = dump_dom(browser, proto_report.report_html, f"sort={column}&dir={direction}")
    loaded(dom)
    assert shown(dom) == PROTO_COUNT and len(rows(dom)) == PROTO_COUNT
    values = column_values(dom, column)
    expected = sorted(f"{column}-{(n * 3) % PROTO_COUNT}" for n in range(1, PROTO_COUNT + 1))
    assert values == (expected if direction == "asc" else expected[::-1])


def test_error_codes_named_like_object_properties_are_listed_and_filtered(
    browser: str, proto_report: ReportPaths
) -> None:
    dom = dump_dom(browser, proto_report.report_html, "code=__proto__")
    loaded(dom)
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', dom)
    assert ("__proto__", "__proto__ (2)") in options
    assert ("constructor", "constructor (3)") in options
    assert ("toString", "toString (2)") in options
    assert shown(dom) == 2
    assert set(column_values(dom, "error code")) == {"__proto__"}
