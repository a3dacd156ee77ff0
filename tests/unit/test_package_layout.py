"""The package stays readable: no module over 600 lines, the run loop's under 400, and
no comment in the product that exists for an issue number or a benchmark figure."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}


def test_the_run_loop_reads_in_one_sitting() -> None:
    runner = PACKAGE / "engine" / "runner.py"
    assert len(runner.read_text(encoding="utf-8").splitlines()) < 400


def test_no_comment_speaks_of_an_issue_number() -> None:
    pattern = re.compile(r"\bissue[ -]?#?\d+", re.IGNORECASE)
    found = [
        f"{p.relative_to(PACKAGE)}:{number}"
        for p in modules()
        for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert found == []
