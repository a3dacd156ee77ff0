"""The inventory reader: formats, field rules, duplicates, defaults, limits, streaming."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.inventory import (
    MAX_STORED_PROBLEMS,
    STOP_SERVER,
    InventoryDefaults,
    InventoryReader,
    read_inventory,
)
from orchestrator.model import TargetSpec

ROOT = Path(__file__).resolve().parents[2]
P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
S1 = "11111111-2222-4333-8444-555555555555"
S2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
S3 = "01234567-89ab-4def-8123-456789abcdef"
KEYS = InventoryDefaults(keyname="kp", userid="user-1")
HEADER = "project_id,server_id,keyname,userid"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def problems_of(
    path: Path, defaults: InventoryDefaults = KEYS, **limits: int
) -> list[InputProblem]:
    """Read the whole file; return its problems (asserting they are raised too)."""
    reader = InventoryReader(path, defaults, **limits)
    list(reader)
    with pytest.raises(InventoryError) as info:
        reader.raise_if_problems()
    assert info.value.problems == reader.problems
    return reader.problems


def error_of(path: Path, defaults: InventoryDefaults = KEYS) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        read_inventory(path, defaults)
    return info.value


def one_problem(path: Path, defaults: InventoryDefaults = KEYS) -> InputProblem:
    problems = problems_of(path, defaults)
    assert len(problems) == 1, problems
    assert problems[0].file == str(path)
    return problems[0]


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_inventory() -> ModuleType:
    return load_script("make_inventory")


# --- CSV basics -------------------------------------------------------------------


def test_csv_row_becomes_target_with_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"project_id,server_id\n{P1},{S1}\n{P2},{S2}\n")
    reader = InventoryReader(path, KEYS)
    targets = list(reader)
    reader.raise_if_problems()
    assert targets == [
        TargetSpec(project_id=P1, server_id=S1, keyname="kp", userid="user-1", line=2),
        TargetSpec(project_id=P2, server_id=S2, keyname="kp", userid="user-1", line=3),
    ]
    assert (reader.format, reader.rows, reader.columns) == ("csv", 2, ())


def test_csv_all_known_columns_are_interpreted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.csv",
        "project_id,server_id,region,keyname,userid,mode,byol\n"
        f"{P1},{S1},eu-nl,key-a,user-a,withStopServer,yes\n"
        f"{P1},{S2},,key-b,user-b,,\n",
    )
    first, second = read_inventory(path)
    assert (first.region, first.keyname, first.userid, first.mode, first.byol) == (
        "eu-nl",
        "key-a",
        "user-a",
        "withStopServer",
        True,
    )
    assert (second.region, second.mode, second.byol, second.extra) == (None, None, None, {})


def test_header_names_match_case_insensitively_after_trimming(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f" Project_ID ,SERVER_ID,KeyName , UserID\n{P1},{S1},k,u\n")
    [target] = read_inventory(path)
    assert (target.project_id, target.server_id, target.keyname, target.userid) == (
        P1,
        S1,
        "k",
        "u",
    )


def test_extra_columns_are_kept_in_file_order_as_trimmed_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.csv",
        f"zeta,project_id,Owner,server_id,alpha\n one ,{P1}, Team A ,{S1},\n",
    )
    reader = InventoryReader(path, KEYS)
    [target] = list(reader)
    reader.raise_if_problems()
    assert reader.columns == ("zeta", "Owner", "alpha")
    assert list(target.extra.items()) == [("zeta", "one"), ("Owner", "Team A"), ("alpha", "")]


def test_cells_are_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER},region\n  {P1} ,\t{S1}\t, k , u , eu-de \n")
    [target] = read_inventory(path, InventoryDefaults())
    assert (target.project_id, target.server_id, target.keyname, target.region) == (
        P1,
        S1,
        "k",
        "eu-de",
    )


def test_bom_crlf_blank_lines_and_multiline_cell_keep_physical_line_numbers(
    tmp_path: Path,
) -> None:
    content = (
        "\ufeffproject_id,server_id,note\r\n"  # line 1
        "\r\n"  # 2: blank
        f"{P1},{S1},plain\r\n"  # 3
        f'{P1},{S2},"first\r\n'  # 4: a quoted cell over three lines
        "\r\n"  # 5: blank, but inside the cell
        'third"\r\n'  # 6
        "\n"  # 7: blank
        ",,\n"  # 8: only empty cells
        f"{P2},{S3},last"  # 9: no final newline
    )
    path = write(tmp_path, "inv.csv", content)
    targets = read_inventory(path, KEYS)
    assert [t.line for t in targets] == [3, 4, 9]
    assert targets[1].extra["note"] == "first\r\n\r\nthird"

    bad = write(tmp_path, "bad.csv", content.replace(f"{P2},{S3}", f"{P2},nope"))
    assert one_problem(bad).line == 9


def test_short_row_means_missing_fields_and_long_row_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.csv",
        f"{HEADER},owner\n{P1},{S1}\n{P1},{S2},k,u,me,surplus\n{P2},{S3},k\n",
    )
    problems = problems_of(path, InventoryDefaults())
    assert [(p.line, p.field) for p in problems] == [
        (2, "keyname"),
        (2, "userid"),
        (3, None),
        (4, "userid"),
    ]
    assert problems[2].message == "the row has 6 cells; the header has 5"
    assert "give it in the inventory or with --keyname" in problems[0].message


def test_short_row_is_fine_when_defaults_fill_it(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER},owner\n{P1},{S1}\n")
    [target] = read_inventory(path, KEYS)
    assert (target.keyname, target.extra) == ("kp", {"owner": ""})


def test_invalid_utf8_is_a_problem_naming_the_line(tmp_path: Path) -> None:
    latin1 = f"{HEADER},owner\n{P1},{S1},k,u,ok\n{P1},{S2},k,u,café\n".encode("latin-1")
    path = write(tmp_path, "inv.csv", latin1)
    reader = InventoryReader(path)
    assert [t.server_id for t in reader] == [S1]
    [problem] = reader.problems
    assert (problem.line, problem.field) == (3, None)
    assert "not valid UTF-8" in problem.message and "0xe9" in problem.message


def test_strict_quoting_errors_are_problems_and_reading_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f'{HEADER}\n"{P1}"x,{S1},k,u\n{P1},{S2},k,u\n')
    reader = InventoryReader(path)
    assert [t.line for t in reader] == [3]
    [problem] = reader.problems
    assert problem.line == 2 and problem.message.startswith("malformed CSV")


def test_unclosed_quote_at_end_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f'{HEADER}\n{P1},{S1},k,u\n{P1},{S2},"k,u\n')
    problem = one_problem(path)
    assert problem.line == 3 and "never closed" in problem.message


# --- the header -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "field", "words"),
    [
        (f"server_id\n{S1}\n", 1, None, "missing: project_id"),
        (f"project_id;owner\n{P1};x\n", 1, None, "server_id (read as semicolon-separated)"),
        (f"project_id,server_id,Project_Id\n{P1},{S1},x\n", 1, "Project_Id", "columns 1 and 3"),
        (f"project_id,,server_id\n{P1},,{S1}\n", 1, None, "column 2 of the header has no name"),
        (f"\n\nowner\n{P1}\n", 3, None, "missing: project_id, server_id"),
    ],
)
def test_header_problems_stop_the_read(
    tmp_path: Path, content: str, line: int, field: str | None, words: str
) -> None:
    path = write(tmp_path, "inv.csv", content)
    reader = InventoryReader(path, KEYS)
    with pytest.raises(InventoryError) as info:
        list(reader)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert words in problem.message


def test_odd_column_names_are_shown_printably_in_problems(tmp_path: Path) -> None:
    name = "own\ter" + "x" * 100
    path = write(tmp_path, "inv.csv", f'project_id,server_id,"{name}","{name}"\n')
    with pytest.raises(InventoryError) as info:
        read_inventory(path, KEYS)
    [problem] = info.value.problems
    assert problem.field == repr(name[:60]) + "..."


def test_only_ascii_case_is_folded_in_column_names(tmp_path: Path) -> None:
    kelvin = "\u212aeyname"  # KELVIN SIGN lowercases to an ASCII 'k'
    path = write(tmp_path, "inv.csv", f"project_id,server_id,{kelvin}\n{P1},{S1},x\n")
    # Not taken for keyname (that would need str.lower()), but not silently kept
    # as an extra column either: it looks like keyname, so it is an error.
    [problem] = error_of(path).problems
    assert (problem.line, problem.field) == (1, kelvin)
    assert "looks like a typo of column 'keyname'" in problem.message


def test_old_mac_line_endings_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER}\r{P1},{S1},k,u\r")
    with pytest.raises(InventoryError, match="carriage return"):
        read_inventory(path)


def test_blank_file_has_no_header(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", "\n" * 70_000)  # larger than what is sniffed
    with pytest.raises(InventoryError, match="no header row"):
        read_inventory(path)


def test_header_only_lists_no_servers(tmp_path: Path) -> None:
    problem = one_problem(write(tmp_path, "inv.csv", f"{HEADER}\n\n"))
    assert (problem.line, problem.message) == (None, "lists no servers")


# --- field rules ------------------------------------------------------------------


def check_field(tmp_path: Path, field: str, value: str) -> InputProblem | TargetSpec:
    """One row with `field` set to `value`: its target, or its single problem."""
    row = {"project_id": P1, "server_id": S1, "keyname": "k", "userid": "u", field: value}
    header = ",".join(row)
    cells = ",".join('"' + v.replace('"', '""') + '"' for v in row.values())
    path = write(tmp_path, "inv.csv", f"{header}\n{cells}\n")
    reader = InventoryReader(path)
    targets = list(reader)
    if not reader.problems:
        [target] = targets
        return target
    assert targets == []
    [problem] = reader.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 2, field)
    return problem


CYRILLIC_A = "\u0430"  # looks like 'a'
FULLWIDTH_1 = "\uff11"


@pytest.mark.parametrize(
    "value",
    [
        P1.upper(),
        P1[:-1],
        P1 + "0",
        "g" + P1[1:],
        CYRILLIC_A + P1[1:],
        FULLWIDTH_1 + P1[1:],
        "\u0661" + P1[1:],  # Arabic-Indic digit one
        "../" + P1[3:],
        "%2F" + P1[3:],
        P1[:16] + " " + P1[17:],
        P1[:16] + "\n" + P1[17:],
        S1,
    ],
)
def test_bad_project_ids_are_refused(tmp_path: Path, value: str) -> None:
    problem = check_field(tmp_path, "project_id", value)
    assert isinstance(problem, InputProblem)
    assert "32 lowercase hex" in problem.message
    assert repr(value[:60]) in problem.message


@pytest.mark.parametrize(
    "value",
    [
        S2.upper(),
        S1.replace("-", ""),
        "{" + S1 + "}",
        "urn:uuid:" + S1,
        "../x",
        "..%2F..%2Fservers",
        S1[:8] + "%2F" + S1[11:],
        "a?b",
        S1 + "#x",
        S1 + "?x=1",
        S1 + " x",
        S1[:-1] + CYRILLIC_A,
        FULLWIDTH_1 + S1[1:],
        S1[:8] + "_" + S1[9:],
        S1 + "0",
    ],
)
def test_bad_server_ids_are_refused(tmp_path: Path, value: str) -> None:
    problem = check_field(tmp_path, "server_id", value)
    assert isinstance(problem, InputProblem)
    assert "lowercase UUID" in problem.message


def test_uuid_with_surrounding_text_is_refused_but_surrounding_spaces_are_trimmed(
    tmp_path: Path,
) -> None:
    assert isinstance(check_field(tmp_path, "server_id", " " + S1 + " x"), InputProblem)
    target = check_field(tmp_path, "server_id", " " + S1 + " ")
    assert isinstance(target, TargetSpec) and target.server_id == S1


def test_look_alike_characters_are_named_in_the_message(tmp_path: Path) -> None:
    problem = check_field(tmp_path, "server_id", S1[:-1] + CYRILLIC_A)
    assert isinstance(problem, InputProblem)
    assert "U+0430 CYRILLIC SMALL LETTER A" in problem.message


def test_uppercase_id_gets_a_lowercase_hint(tmp_path: Path) -> None:
    problem = check_field(tmp_path, "project_id", P1.upper())
    assert isinstance(problem, InputProblem)
    assert "write it in lowercase" in problem.message


def test_long_values_are_shown_shortened(tmp_path: Path) -> None:
    problem = check_field(tmp_path, "project_id", "x" * 5000)
    assert isinstance(problem, InputProblem)
    assert "(5000 characters)" in problem.message
    assert len(problem.message) < 250


@pytest.mark.parametrize("field", ["keyname", "userid"])
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("kp-prod_01", True),
        ("schlüssel", True),
        ("x" * 255, True),
        ("x" * 256, False),
        ("a\x07b", False),
        ("a\x7fb", False),
        ("a\u200bb", False),  # zero-width space
        ("a\u202eb", False),  # right-to-left override
        ("a\x85b", False),  # NEL
    ],
)
def test_keyname_and_userid_rules(tmp_path: Path, field: str, value: str, ok: bool) -> None:
    result = check_field(tmp_path, field, value)
    if ok:
        assert isinstance(result, TargetSpec) and getattr(result, field) == value
    else:
        assert isinstance(result, InputProblem)


@pytest.mark.parametrize(("field", "flag"), [("keyname", "--keyname"), ("userid", "--userid")])
def test_keyname_and_userid_are_required(tmp_path: Path, field: str, flag: str) -> None:
    problem = check_field(tmp_path, field, "")
    assert isinstance(problem, InputProblem)
    assert problem.message == f"missing; give it in the inventory or with {flag}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("withStopServer", "withStopServer"), ("", None), ("withstopserver", False), ("x", False)],
)
def test_mode_rules(tmp_path: Path, value: str, expected: str | bool | None) -> None:
    result = check_field(tmp_path, "mode", value)
    if expected is False:
        assert isinstance(result, InputProblem) and "withStopServer" in result.message
    else:
        assert isinstance(result, TargetSpec) and result.mode == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("maybe", "bad"),
        ("2", "bad"),
        (FULLWIDTH_1, "bad"),
        ("t", "bad"),
    ],
)
def test_byol_rules(tmp_path: Path, value: str, expected: bool | str | None) -> None:
    result = check_field(tmp_path, "byol", value)
    if expected == "bad":
        assert isinstance(result, InputProblem) and "true/false" in result.message
    else:
        assert isinstance(result, TargetSpec) and result.byol is expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("eu-de", True),
        ("eu-ch2", True),
        ("", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("EU-DE", False),
        ("eu_de", False),
        ("eu-de.evil.example", False),
        ("eu-de/x", False),
        ("-eu", False),
        ("eu--de", False),
        ("eu-de-", False),
        ("eu-d\u0435", False),  # Cyrillic 'е'
    ],
)
def test_region_rules(tmp_path: Path, value: str, ok: bool) -> None:
    result = check_field(tmp_path, "region", value)
    if ok:
        assert isinstance(result, TargetSpec) and result.region == (value or None)
    else:
        assert isinstance(result, InputProblem) and "region name" in result.message


def test_every_bad_field_of_a_row_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER},region,byol\nXX,{S2.upper()},,u,EU,perhaps\n")
    problems = problems_of(path, InventoryDefaults())
    assert [(p.line, p.field) for p in problems] == [
        (2, "project_id"),
        (2, "server_id"),
        (2, "region"),
        (2, "byol"),
        (2, "keyname"),
    ]


def test_all_bad_rows_are_reported_and_good_ones_still_stream(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.csv",
        f"{HEADER}\n{P1},{S1},k,u\n{P1},bad-1,k,u\n{P1},{S2},k,u\nbad-2,{S3},k,u\n{P2},../x,k,u\n",
    )
    reader = InventoryReader(path)
    assert [t.line for t in reader] == [2, 4]
    assert [(p.line, p.field) for p in reader.problems] == [
        (3, "server_id"),
        (5, "project_id"),
        (6, "server_id"),
    ]
    with pytest.raises(InventoryError) as info:
        reader.raise_if_problems()
    assert info.value.total == 3
    assert "inventory has 3 problem(s)" in str(info.value)


# --- duplicates -------------------------------------------------------------------


def test_repeated_target_is_a_problem_naming_the_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER}\n{P1},{S1},k,u\n{P1},{S2},k,u\n{P1},{S1},k2,u\n")
    reader = InventoryReader(path)
    assert [t.line for t in reader] == [2, 3]
    [problem] = reader.problems
    assert (problem.line, problem.field) == (4, "server_id")
    assert "line 2" in problem.message and "same project_id and server_id" in problem.message


def test_same_server_under_another_project_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER}\n{P1},{S1},k,u\n{P2},{S1},k,u\n")
    reader = InventoryReader(path)
    assert [t.line for t in reader] == [2]
    [problem] = reader.problems
    assert (problem.line, problem.field) == (3, "server_id")
    assert "line 2" in problem.message and P1 in problem.message


def test_duplicate_of_an_invalid_row_is_still_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER}\n{P1},{S1},k\x01,u\n{P1},{S1},k,u\n")
    problems = problems_of(path)
    assert [(p.line, p.field) for p in problems] == [(2, "keyname"), (3, "server_id")]


# --- defaults ---------------------------------------------------------------------


def test_cli_defaults_fill_empty_cells_and_rows_win(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.csv",
        f"{HEADER},mode,byol\n{P1},{S1},,,,\n{P1},{S2},own-key,own-user,withStopServer,false\n",
    )
    defaults = InventoryDefaults(keyname="cli-key", userid="cli-user", mode=None, byol=True)
    first, second = read_inventory(path, defaults)
    assert (first.keyname, first.userid, first.byol, first.mode) == (
        "cli-key",
        "cli-user",
        True,
        None,
    )
    assert (second.keyname, second.userid, second.byol, second.mode) == (
        "own-key",
        "own-user",
        False,
        "withStopServer",
    )


def test_cli_stop_server_default(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"project_id,server_id\n{P1},{S1}\n")
    [target] = read_inventory(path, dataclasses.replace(KEYS, mode="withStopServer"))
    assert target.mode == "withStopServer"


def test_invalid_cli_default_is_one_problem_not_one_per_row(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"project_id,server_id\n{P1},{S1}\n{P1},{S2}\n")
    problem = one_problem(path, InventoryDefaults(keyname="bad\nkey", userid="u"))
    assert (problem.line, problem.field) == (None, "--keyname")
    assert "control character" in problem.message


def test_json_defaults_sit_between_cli_and_rows(tmp_path: Path) -> None:
    doc = {
        "defaults": {"keyname": "file-key", "byol": False, "region": "eu-nl"},
        "servers": [
            {"project_id": P1, "server_id": S1},
            {"project_id": P1, "server_id": S2, "keyname": "row-key", "byol": True},
            {"project_id": P1, "server_id": S3, "region": "eu-de"},
        ],
    }
    path = write(tmp_path, "inv.json", json.dumps(doc))
    cli = InventoryDefaults(keyname="cli-key", userid="cli-user", byol=True)
    targets = read_inventory(path, cli)
    assert [(t.keyname, t.userid, t.byol, t.region) for t in targets] == [
        ("file-key", "cli-user", False, "eu-nl"),
        ("row-key", "cli-user", True, "eu-nl"),
        ("file-key", "cli-user", False, "eu-de"),
    ]


def test_invalid_json_default_is_reported_once(tmp_path: Path) -> None:
    text = (
        '{"servers": [\n'
        f'  {{"project_id": "{P1}", "server_id": "{S1}"}},\n'
        f'  {{"project_id": "{P1}", "server_id": "{S2}", "keyname": "own"}}\n'
        "],\n"
        '"defaults": {"keyname": "bad key\\u0000", "color": "red"}}\n'
    )
    path = write(tmp_path, "inv.json", text)
    reader = InventoryReader(path, KEYS)
    assert [t.server_id for t in reader] == [S2]
    assert [(p.line, p.field) for p in reader.problems] == [
        (5, "defaults.keyname"),
        (5, "defaults.color"),
    ]


# --- JSON -------------------------------------------------------------------------


def test_json_list_form(tmp_path: Path) -> None:
    entries = [
        {"project_id": P1, "server_id": S1, "keyname": "k", "userid": "u", "owner": "me"},
        {"project_id": P2, "server_id": S2, "keyname": "k", "userid": "u", "mode": STOP_SERVER},
    ]
    path = write(tmp_path, "inv.json", json.dumps(entries, indent=2))
    reader = InventoryReader(path)
    targets = list(reader)
    reader.raise_if_problems()
    assert [(t.server_id, t.line, t.extra, t.mode) for t in targets] == [
        (S1, 1, {"owner": "me"}, None),
        (S2, 2, {}, STOP_SERVER),
    ]
    assert (reader.format, reader.rows, reader.columns) == ("json", 2, ("owner",))


def test_json_problems_name_the_entry_and_its_real_line(tmp_path: Path) -> None:
    text = (
        "[\n"
        f'  {{"project_id": "{P1}", "server_id": "{S1}"}},\n'
        "  {\n"
        f'    "project_id": "{P1}",\n'
        '    "server_id": "../etc"\n'
        "  },\n"
        f'  {{"project_id": 12, "server_id": "{S3}"}}\n'
        "]\n"
    )
    path = write(tmp_path, "inv.json", text)
    problems = problems_of(path)
    assert [(p.line, p.field) for p in problems] == [(3, "server_id"), (7, "project_id")]
    assert problems[0].message.startswith("entry 2: ")
    assert problems[1].message == "entry 3: must be a string, got a number: 12"


def test_json_duplicates_name_the_earlier_entry(tmp_path: Path) -> None:
    entries = [{"project_id": P1, "server_id": S1}, {"project_id": P2, "server_id": S1}]
    path = write(tmp_path, "inv.json", json.dumps(entries))
    problem = one_problem(path)
    assert (problem.line, problem.field) == (1, "server_id")  # one line: minified
    assert problem.message.startswith("entry 2: ") and "entry 1" in problem.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("no", False), (None, None), (2, "bad")],
)
def test_json_byol_accepts_booleans_and_0_1(
    tmp_path: Path, value: object, expected: bool | str | None
) -> None:
    path = write(
        tmp_path, "inv.json", json.dumps([{"project_id": P1, "server_id": S1, "byol": value}])
    )
    if expected == "bad":
        problem = one_problem(path)
        assert (problem.field, problem.message) == ("byol", "entry 1: must be true or false, got 2")
    else:
        [target] = read_inventory(path, KEYS)
        assert target.byol is expected


@pytest.mark.parametrize("field", ["project_id", "server_id", "keyname", "userid", "region"])
@pytest.mark.parametrize("value", [123, True, ["x"], {"a": "b"}])
def test_json_non_string_fields_are_refused(tmp_path: Path, field: str, value: object) -> None:
    entry = {"project_id": P1, "server_id": S1, field: value}
    problem = one_problem(write(tmp_path, "inv.json", json.dumps([entry])))
    assert problem.field == field and "must be a string" in problem.message


def test_json_extra_values_are_kept_as_text(tmp_path: Path) -> None:
    entry = {
        "project_id": P1,
        "server_id": S1,
        "tags": {"a": [1, 2]},
        "cores": 4,
        "managed": True,
        "note": None,
        "name": " web ",
    }
    [target] = read_inventory(write(tmp_path, "inv.json", json.dumps([entry])), KEYS)
    assert target.extra == {
        "tags": '{"a":[1,2]}',
        "cores": "4",
        "managed": "true",
        "note": "",
        "name": "web",
    }


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('[\n  {"project_id": "x"},\n  {"server_id" "y"}\n]', 3, None, "invalid JSON"),
        ('[\n  {"a": 1}\n  {"a": 2}\n]', 3, None, "invalid JSON"),
        ("[1, 2", 1, None, "invalid JSON"),
        ('{"servers": []}\n{}', 2, None, "Extra data"),
        ('"just a string"', 1, None, "must be a list of servers"),
        ('{"servers": {"a": 1}}', 1, "servers", "must be a list"),
        ('{"defaults": {}}', 1, "servers", "missing"),
        ('{"servers": [], "server": []}', 1, "server", "unknown top-level key"),
        ('{"servers": [], "servers": []}', 1, "servers", "twice"),
        ('{"servers": [], "defaults": [1]}', 1, "defaults", "must be an object"),
        ('[\n  "' + P1 + '"\n]', 2, None, "entry 1: must be an object, got a string"),
        ('[{"project_id": "a", "project_id": "b"}]', 1, "project_id", "given twice"),
        ('[{"project_id": "a", "Project_ID": "b"}]', 1, "Project_ID", "given twice"),
        ('[{"project_id": "a", "": "b"}]', 1, None, "a key is empty"),
        ('[{"owner": "a", "Owner": "b"}]', 1, "Owner", "given twice"),
        (
            '{"servers": [], "defaults": {"keyname": "a", "keyname": "b"}}',
            1,
            "defaults.keyname",
            "twice",
        ),
        (
            '{"servers": [], "defaults": {"project_id": "' + P1 + '"}}',
            1,
            "defaults.project_id",
            "unknown",
        ),
        ('[{"note": "\\ud800"}]', 1, "note", "surrogate"),
        # Read as a stream, entry by entry: the problem has the entry's line too.
        ("[" * 100_000, 1, None, "invalid JSON: entry 1 is nested too deeply"),
        ("[" + "9" * 5000 + "]", 1, None, "invalid JSON: entry 1: Exceeds the limit"),
    ],
)
def test_json_structure_problems(
    tmp_path: Path, text: str, line: int | None, field: str | None, words: str
) -> None:
    path = write(tmp_path, "inv.json", text)
    reader = InventoryReader(path, KEYS)
    assert list(reader) == []
    problem = reader.problems[0]
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert words in problem.message
    with pytest.raises(InventoryError):
        reader.raise_if_problems()


def test_json_syntax_error_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.json", '{\n  "servers": [\n    {"project_id": }\n  ]\n}\n')
    problem = one_problem(path)
    assert problem.line == 3 and problem.message.startswith("invalid JSON: Expecting value")


def test_json_with_bom_and_invalid_utf8(tmp_path: Path) -> None:
    doc = json.dumps([{"project_id": P1, "server_id": S1}]).encode()
    [target] = read_inventory(write(tmp_path, "a.json", b"\xef\xbb\xbf" + doc), KEYS)
    assert target.server_id == S1
    problem = one_problem(write(tmp_path, "b.json", b'[\n{"x": "\xff"}]'))
    assert problem.line == 2 and "not valid UTF-8" in problem.message


def test_json_too_big_is_refused_with_a_hint_to_use_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.json", json.dumps([{"project_id": P1, "server_id": S1}] * 10))
    with pytest.raises(InventoryError) as info:
        InventoryReader(path, max_json_bytes=100)
    [problem] = info.value.problems
    assert problem.file == str(path) and "use CSV" in problem.message


# --- format detection and file-level failures --------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("inv", f"{HEADER}\n{P1},{S1},k,u\n", "csv"),
        ("inv.txt", f' \n\t[{{"project_id": "{P1}", "server_id": "{S1}"}}]', "json"),
        ("inv", f'\ufeff{{"servers": [{{"project_id": "{P1}", "server_id": "{S1}"}}]}}', "json"),
        ("INV.CSV", f"{HEADER}\n{P1},{S1},k,u\n", "csv"),
    ],
)
def test_format_by_extension_or_first_byte(
    tmp_path: Path, name: str, content: str, fmt: str
) -> None:
    path = write(tmp_path, name, content)
    reader = InventoryReader(path, KEYS)
    assert reader.format == fmt
    assert [t.server_id for t in reader] == [S1]


def test_extension_wins_over_content(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f'[{{"project_id": "{P1}"}}]')
    assert InventoryReader(path).format == "csv"


def file_error(path: Path) -> InputProblem:
    with pytest.raises(InventoryError) as info:
        read_inventory(path, KEYS)
    [problem] = info.value.problems
    assert problem.file == str(path) and problem.line is None
    return problem


def test_missing_file(tmp_path: Path) -> None:
    assert file_error(tmp_path / "nope.csv").message == "file not found"


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in file_error(tmp_path).message


def test_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "inv.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in file_error(fifo).message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"{HEADER}\n")
    path.chmod(0)
    assert "permission denied" in file_error(path).message


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("inv.csv", b"", "file is empty"),
        ("inv.json", b" \n\t\n", "only whitespace"),
        ("inv", b"\xef\xbb\xbf\n", "only whitespace"),
        ("inv.xlsx", b"PK\x03\x04rest", "export the sheet as CSV"),
        ("inv.csv", b"PK\x03\x04rest", "ZIP archive"),
        ("inv.csv", b"\x1f\x8b\x08\x00", "gzip"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, content: bytes, words: str) -> None:
    assert words in file_error(write(tmp_path, name, content)).message


# --- limits -----------------------------------------------------------------------


def test_overlong_line_is_refused_without_losing_line_numbers(tmp_path: Path) -> None:
    long_row = f"{P1},{S1},k,u," + "x" * 200_000
    path = write(
        tmp_path,
        "inv.csv",
        f"{HEADER},note\n{long_row}\r\n{P1},{S2},k,u,ok\n{P1},bad,k,u,ok\n",
    )
    reader = InventoryReader(path, max_line_bytes=1000)
    assert [t.line for t in reader] == [3]
    assert [(p.line, p.message) for p in reader.problems] == [
        (2, f"line is {len(long_row)} bytes; the limit is 1000"),
        (4, reader.problems[1].message),
    ]
    assert reader.problems[1].field == "server_id"
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_line_exactly_at_the_limit_is_fine(tmp_path: Path) -> None:
    row = f"{P1},{S1},k,u"
    path = write(tmp_path, "inv.csv", f"{HEADER}\r\n{row}\r\n")
    assert len(read_inventory(path, KEYS)) == 1
    reader = InventoryReader(path, max_line_bytes=len(row))
    assert len(list(reader)) == 1 and reader.problems == []
    reader = InventoryReader(path, max_line_bytes=len(row) - 1)
    list(reader)
    assert [p.line for p in reader.problems] == [2]


def test_unclosed_quote_cannot_swallow_the_file(tmp_path: Path) -> None:
    rows = "".join(f"{P1},{S1},k,u,line {n}\n" for n in range(200))
    path = write(tmp_path, "inv.csv", f'{HEADER},note\n{P1},{S2},k,u,"oops\n{rows}')
    reader = InventoryReader(path, max_line_bytes=2000)
    list(reader)
    first = reader.problems[0]
    assert first.line == 2 and "is a quote not closed?" in first.message


def test_max_rows_stops_with_a_problem(tmp_path: Path, make_inventory: ModuleType) -> None:
    path = tmp_path / "inv.csv"
    make_inventory.write_csv(path, 10, 2, 7)
    reader = InventoryReader(path, max_rows=4)
    assert len(list(reader)) == 4
    [problem] = reader.problems
    assert (problem.line, problem.message) == (6, "more than 4 servers; the limit is 4")
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    json_path = tmp_path / "inv.json"
    make_inventory.write_json(json_path, 10, 2, 7)
    reader = InventoryReader(json_path, max_rows=4)
    assert len(list(reader)) == 4
    assert [p.message for p in reader.problems] == ["more than 4 servers; the limit is 4"]


def test_problem_storage_is_capped_but_all_are_counted(tmp_path: Path) -> None:
    bad = MAX_STORED_PROBLEMS + 500
    path = write(tmp_path, "inv.csv", "project_id,server_id\n" + f"x,{S1}\n" * bad)
    error = error_of(path)
    assert error.total == bad
    assert len(error.problems) == MAX_STORED_PROBLEMS
    assert error.problems[-1].line == MAX_STORED_PROBLEMS + 1
    assert f"and {bad - 50} more" in str(error)


# --- reader contract --------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample.csv", "sample.json"])
def test_sha256_is_of_the_raw_bytes(name: str) -> None:
    path = ROOT / "inventories" / name
    reader = InventoryReader(path)
    with pytest.raises(RuntimeError):
        _ = reader.sha256  # not known before the read is complete
    list(reader)
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_reader_is_single_pass(tmp_path: Path) -> None:
    reader = InventoryReader(write(tmp_path, "inv.csv", f"{HEADER}\n{P1},{S1},k,u\n"))
    assert len(list(reader)) == 1
    with pytest.raises(RuntimeError, match="once"):
        iter(reader)


def test_partial_read_never_passes_as_valid(tmp_path: Path) -> None:
    reader = InventoryReader(
        write(tmp_path, "inv.csv", f"{HEADER}\n{P1},{S1},k,u\n{P1},{S2},k,u\n")
    )
    iterator = iter(reader)
    next(iterator)
    with pytest.raises(RuntimeError, match="whole inventory"):
        reader.raise_if_problems()


def test_large_csv_streams_in_modest_memory(tmp_path: Path, make_inventory: ModuleType) -> None:
    path = tmp_path / "big.csv"
    make_inventory.write_csv(path, 100_000, 20, 3)
    traced_rows = 20_000
    reader = InventoryReader(path)
    # tracemalloc makes each allocation several times dearer, so it watches the
    # first fifth only: enough to see both ways of not streaming. Reading the
    # file before the first target would allocate its whole size (about 14 MB)
    # up front; keeping what was yielded would add about 1 KB a row. Only the
    # duplicate set may grow with the rows, by about 130 bytes each.
    tracemalloc.start()
    try:
        iterator = iter(reader)
        first = next(iterator)
        assert reader.rows == 1 and first.line == 2
        for _ in range(traced_rows - 1):
            next(iterator)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rest = sum(1 for _ in iterator)
    reader.raise_if_problems()
    assert traced_rows + rest == reader.rows == 100_000
    assert peak < traced_rows * 200 + 2**20, peak


# --- samples and the generator ----------------------------------------------------


def test_samples_load_cleanly_and_describe_the_same_fleet() -> None:
    csv_reader = InventoryReader(ROOT / "inventories" / "sample.csv")
    from_csv = list(csv_reader)
    csv_reader.raise_if_problems()
    from_json = read_inventory(ROOT / "inventories" / "sample.json")
    assert len(from_csv) == len(from_json) == 300
    assert len({t.project_id for t in from_csv}) == 4
    assert {t.region for t in from_csv} <= {"eu-de", "eu-nl"}
    assert csv_reader.columns == ("name", "owner")
    assert [dataclasses.replace(t, line=0) for t in from_csv] == [
        dataclasses.replace(t, line=0) for t in from_json
    ]
    keynames = Counter(t.keyname for t in from_json)
    assert keynames["fleet-key"] > 250 and len(keynames) > 1  # a few rows override


def test_samples_are_what_the_generator_makes(tmp_path: Path, make_inventory: ModuleType) -> None:
    for name in ("sample.csv", "sample.json"):
        out = tmp_path / name
        assert (
            make_inventory.main(["--count", "300", "--projects", "4", "--seed", "1", str(out)]) == 0
        )
        assert out.read_bytes() == (ROOT / "inventories" / name).read_bytes()


def test_generator_is_deterministic_and_valid(tmp_path: Path, make_inventory: ModuleType) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    make_inventory.main(["--count", "50", "--projects", "3", "--seed", "5", str(a)])
    make_inventory.main(["--count", "50", "--projects", "3", "--seed", "5", str(b)])
    make_inventory.main(["--count", "50", "--projects", "3", "--seed", "6", str(c)])
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert a.read_text().splitlines()[0] == "project_id,server_id,region,keyname,userid,name,owner"
    targets = read_inventory(a)
    assert len(targets) == 50 and len({t.project_id for t in targets}) <= 3
