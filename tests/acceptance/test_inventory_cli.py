"""`orchestrator plan` and `run` with inventories as spreadsheets export them:
the messages an operator sees, and exit code 2 for what they must fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli.main import cli
from orchestrator.store.sqlite import StateStore

P1 = "0123456789abcdef0123456789abcdef"
S1 = "11111111-2222-4333-8444-555555555555"
S2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
REPO = Path(__file__).resolve().parents[2]
# A German Excel export: semicolons, cp1252, CRLF, the separator inside a quoted cell.
GERMAN = (
    "project_id;server_id;keyname;userid;Besitzer\r\n"
    f'{P1};{S1};kp;u;"Müller; Jürgen"\r\n'
    f"{P1};{S2};kp;u;Weiß\r\n"
).encode("cp1252")


def plan(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["plan", *map(str, args)])


@pytest.fixture
def german(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(GERMAN)
    return path


def test_plan_reads_a_german_excel_export_with_encoding(german: Path) -> None:
    result = plan(german, "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert f"inventory {german} (csv, semicolon-separated, cp1252): 2 rows, 2 valid targets" in (
        result.stdout
    )
    assert "extra columns kept for the report: Besitzer" in result.stdout


def test_plan_without_encoding_says_where_and_which_flag(german: Path) -> None:
    result = plan(german)
    assert result.exit_code == 2
    offset = GERMAN.index("ü".encode("cp1252"))
    line_start = GERMAN.index(b"\r\n") + 2
    assert result.stderr.splitlines()[:2] == [
        "error: inventory has 2 problem(s):",
        f"  {german}:2: is not valid UTF-8: byte 0xfc at byte {offset - line_start + 1} of the "
        f"line (offset {offset} of the file); a file saved by Excel or another Windows program "
        "is often cp1252: try --encoding cp1252",
    ]


@pytest.mark.parametrize("name", ["no-such-encoding", "base64"])
def test_plan_refuses_an_unknown_encoding_as_a_usage_error(german: Path, name: str) -> None:
    result = plan(german, "--encoding", name)
    assert result.exit_code == 2
    assert "Invalid value for '--encoding'" in result.stderr and repr(name) in result.stderr


def test_plan_names_the_column_a_near_miss_means(tmp_path: Path) -> None:
    path = tmp_path / "inv.csv"
    path.write_text(f"project_id,server_id,key_name,Stop-Mode\n{P1},{S1},own,withStopServer\n")
    result = plan(path, "--keyname", "default", "--userid", "u")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: inventory has 2 problem(s):",
        f"  {path}:1: field 'key_name': is column 'keyname' written differently (case, '-', "
        "'_' and spaces do not count); rename it to 'keyname', or its values would be ignored",
        f"  {path}:1: field 'Stop-Mode': probably means column 'mode'; rename it to 'mode', "
        "or its values would be ignored",
    ]


def test_plan_names_a_near_miss_key_in_json(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    path.write_text(
        '{"defaults": {"key-name": "k"},\n'
        f' "servers": [{{"project_id": "{P1}", "server_id": "{S1}", "ServerID": "x"}}]}}\n'
    )
    result = plan(path, "--userid", "u")
    assert result.exit_code == 2
    assert f"{path}:1: field 'defaults.key-name': unknown; " in result.stderr
    assert "is key 'keyname' written differently" in result.stderr
    assert f"{path}:2: field 'ServerID': entry 1: is key 'server_id' written" in result.stderr


def test_run_takes_encoding_and_records_it(german: Path, tmp_path: Path) -> None:
    """The whole way: a cp1252 semicolon export, run against the built-in simulator."""
    state = tmp_path / "export.state.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HUAWEICLOUD_"))}
    args = ["run", str(german), "--encoding", "cp1252", "--simulate", "--state", str(state)]
    args += ["--report-dir", str(tmp_path / "reports"), "--no-live", "--sim-job-seconds", "0"]
    args += ["--first-poll", "0.1", "--poll-cap", "0.2"]
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "finished: 2 succeeded" in done.stdout
    with StateStore.open(state, readonly=True) as store:
        assert store.run_info().options["encoding"] == "cp1252"
        assert [t.spec.extra for t in store.iter_targets()] == [
            {"Besitzer": "Müller; Jürgen"},
            {"Besitzer": "Weiß"},
        ]
