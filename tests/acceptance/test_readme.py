"""The README: its quickstart is the two documented commands, its exit codes are the
command line's, its links lead somewhere, and CI builds the documentation site.

The site under docs/ is checked by `mkdocs build --strict` in .ci/run (broken links,
missing anchors, reference tables out of step with the code); the README is outside
the site, so its links are checked here.
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

# The two commands a new user copies: the first installs and runs the main job on the
# simulator, the second installs the test tools and runs the whole suite.
QUICKSTART = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
    ".venv/bin/orchestrator run inventories/sample.csv --simulate",
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest -q",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def exit_codes_text() -> str:
    """EXIT_CODES of the module the `orchestrator` console script runs, wherever it is."""
    (script,) = metadata.entry_points(group="console_scripts", name="orchestrator")
    text = importlib.import_module(script.module).EXIT_CODES
    assert isinstance(text, str)
    return text


def section(text: str, heading: str) -> str:
    """The text under `## heading`, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"README has no section '## {heading}'"
    return match.group(1)


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```$", text, re.M | re.S)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def test_quickstart_is_the_two_documented_commands() -> None:
    blocks = code_blocks(section(README.read_text(encoding="utf-8"), "Quickstart"))
    assert len(blocks) == 1
    assert tuple(commands(blocks[0])) == QUICKSTART


def test_ci_runs_the_readme_test_command_and_builds_the_site_strictly() -> None:
    script = CI.read_text(encoding="utf-8").splitlines()
    test_command = QUICKSTART[1].rsplit(" && ", 1)[1]
    assert test_command in script
    assert any(
        re.fullmatch(r"\.venv/bin/pip install -q -e '\.\[[a-z,]*\bdocs\b[a-z,]*\]'", line)
        for line in script
    ), "CI must install the docs extra"
    builds = [i for i, line in enumerate(script) if line.startswith(".venv/bin/mkdocs build")]
    assert len(builds) == 1 and "--strict" in script[builds[0]].split()
    assert builds[0] < script.index(test_command)


def test_exit_codes_are_the_command_lines() -> None:
    table = section(README.read_text(encoding="utf-8"), "Exit codes")
    in_readme = re.findall(r"^\| (\d) \|", table, re.M)
    in_cli = re.findall(r"^\s+(\d)\s{2}", exit_codes_text(), re.M)
    assert in_readme == in_cli == ["0", "1", "2", "3"]


def test_every_relative_link_in_the_readme_leads_to_a_file_and_heading() -> None:
    text = README.read_text(encoding="utf-8")
    links = [link for link in LINK.findall(text) if "://" not in link]
    assert links
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (ROOT / path).resolve() if path else README
        if not target.is_relative_to(ROOT) or not (target.is_file() or target.is_dir()):
            broken.append(link)
            continue
        if anchor and target.is_file():
            headings = re.findall(r"^#+ (.+?)(?: \{#[\w-]+\})?$", target.read_text("utf-8"), re.M)
            if anchor not in {slug(h) for h in headings}:
                broken.append(link)
    assert broken == []


def test_the_readme_starts_with_the_quickstart() -> None:
    headings = re.findall(r"^## (.+)$", README.read_text(encoding="utf-8"), re.M)
    assert headings[0] == "Quickstart"
