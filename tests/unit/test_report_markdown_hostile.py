"""report.md with hostile inventory column names and service text: everything shows as
text where the report is pasted (a renderer that allows HTML included); no image is
fetched, no link is made, no HTML runs, the tables keep their shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from markdown_it import MarkdownIt

from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import write_report

PROJECT = "0123456789abcdef0123456789abcdef"
COLUMN = '<img src=x onerror="alert(1)">|![c](https://evil.example/c.png)'
CODE = "[Ecs.0605](https://evil.example/login)"
REASON = (
    "![pixel](https://evil.example/p.png?who=ops) [unlock here](https://evil.example) "
    "<img src=x onerror=alert(2)> <script>alert(3)</script> `code | pipe` \\| &lt;b&gt;"
    " <https://evil.example/auto> \x1b]0;title\x07"
)
STATE_PATH = "/srv/state `x` [y](z) <img src=q>.sqlite"


def run_info() -> RunInfo:
    return RunInfo(
        run_id="run-<b>1<b>",
        state_path=STATE_PATH,
        inventory_path="/srv/![i](https://evil.example/i.png).csv",
        inventory_sha256="ab" * 32,
        created_at="2026-11-26T19:00:00Z",
        started_at=None,
        ended_at=None,
        invocations=1,
        options={},
        requests={"reinstall": 2},
        throttled=0,
        extra_columns=(COLUMN,),
    )


def targets() -> Iterator[Target]:
    for n, state in ((1, TargetState.FAILED), (2, TargetState.PENDING)):
        spec = TargetSpec(
            PROJECT,
            f"00000000-0000-4000-8000-{n:012x}",
            "kp",
            "u1",
            n + 1,
            extra={COLUMN: REASON},
        )
        yield Target(id=n, spec=spec, state=state, error_code=CODE, fail_reason=REASON)


def rendered(tmp_path: Path) -> tuple[str, str]:
    paths = write_report(tmp_path, run_info(), targets, group_by=COLUMN)
    markdown = paths.report_md.read_text(encoding="utf-8")
    # GitHub-like: tables, and raw HTML passed through where the source has it.
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return markdown, html


def test_no_html_image_or_link_comes_from_the_inventory_or_the_service(tmp_path: Path) -> None:
    markdown, html = rendered(tmp_path)
    assert "<img" not in html and "<script" not in html
    assert "<a " not in html  # no link of any kind: inline, reference or autolink
    # Live syntax in the Markdown itself, outside code spans: only escaped forms are left.
    text = re.sub(r"(`+).*?\1", "", markdown)
    assert not re.search(r"(?<!\\)<(img|script|https)", text)
    assert not re.search(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(", text)
    assert "\x1b" not in markdown and "\x07" not in markdown
    # What was there is shown as text.
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "![pixel](https://evil.example/p.png?who=ops)" in html
    assert "[Ecs.0605](https://evil.example/login)" in html
    assert "\\x1b]0;title\\x07" in html


def test_tables_keep_their_columns_whatever_the_cells_hold(tmp_path: Path) -> None:
    markdown, html = rendered(tmp_path)
    # The failed-targets table: project, server, the hostile column, code, reason.
    head = next(
        line for line in markdown.splitlines() if line.startswith("| project_id | server_id |")
    )
    assert head.count(" | ") == 4
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    failed = next(t for t in tables if "<th>project_id</th>" in t and "fail_reason" in t)
    header_cells = re.findall(r"<th>(.*?)</th>", failed)
    assert header_cells[2] == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;|![c](https://evil.example/c.png)"
    )
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", failed, re.S)
    assert row is not None and len(re.findall(r"<td>", row.group(1))) == 5


def test_paths_and_ids_are_code_or_text_never_markup(tmp_path: Path) -> None:
    _, html = rendered(tmp_path)
    assert "<code>/srv/state `x` [y](z) &lt;img src=q&gt;.sqlite</code>" in html
    assert "<code>/srv/![i](https://evil.example/i.png).csv</code>" in html
    assert "Reinstall report: run-&lt;b&gt;1&lt;b&gt;" in html
    assert "<code>orchestrator resume --state '/srv/state `x` [y](z) &lt;img" in html
