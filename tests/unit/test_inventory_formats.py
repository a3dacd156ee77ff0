"""Inventories as operators export them: separators, encodings, near-miss column names."""

from __future__ import annotations

import codecs
import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.inventory import InventoryDefaults, InventoryReader, read_inventory
from orchestrator.model import TargetSpec

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
S1 = "11111111-2222-4333-8444-555555555555"
S2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
KEYS = InventoryDefaults(keyname="kp", userid="user-1")
CP1252 = InventoryDefaults(keyname="kp", userid="user-1", encoding="cp1252")

# What a German Excel writes for "CSV (Trennzeichen-getrennt)": semicolons,
# Windows-1252, CRLF; a cell with the separator in it is quoted.
GERMAN_ROWS = (
    "project_id;server_id;keyname;Besitzer;Notiz\r\n"
    f'{P1};{S1};key-ä;Jürgen Müller;"Größe: 3; Maß: ½"\r\n'
    f'{P2};{S2};kp;"Weiß, Anna";"sagt ""hallo"""\r\n'
)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def problems_of(path: Path, defaults: InventoryDefaults = KEYS) -> list[InputProblem]:
    """Every problem of the file, whether the read stops early (header) or not."""
    reader = InventoryReader(path, defaults)
    try:
        list(reader)
        reader.raise_if_problems()
    except InventoryError as err:
        assert err.problems
        return err.problems
    raise AssertionError("the inventory was accepted")


def check_german(targets: list[TargetSpec]) -> None:
    first, second = targets
    assert (first.project_id, first.server_id, first.keyname) == (P1, S1, "key-ä")
    assert first.extra == {"Besitzer": "Jürgen Müller", "Notiz": "Größe: 3; Maß: ½"}
    assert second.extra == {"Besitzer": "Weiß, Anna", "Notiz": 'sagt "hallo"'}
    assert [t.line for t in targets] == [2, 3]


# --- separators -------------------------------------------------------------------


def test_semicolon_csv_with_quoted_separators(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", GERMAN_ROWS.encode("utf-8"))
    reader = InventoryReader(path, KEYS)
    targets = list(reader)
    reader.raise_if_problems()
    check_german(targets)
    assert reader.dialect is not None and reader.dialect.name == "semicolon"


def test_tab_csv(tmp_path: Path) -> None:
    content = f'project_id\tserver_id\towner\n{P1}\t{S1}\t"a\tb; c, d"\n{P2}\t{S2}\tx\n'
    reader = InventoryReader(write(tmp_path, "inv.tsv", content.encode()), KEYS)
    first, second = list(reader)
    reader.raise_if_problems()
    assert first.extra == {"owner": "a\tb; c, d"} and second.server_id == S2
    assert reader.dialect is not None and reader.dialect.name == "tab"


def test_comma_csv_with_semicolons_in_cells_stays_comma(tmp_path: Path) -> None:
    content = f'project_id,server_id,note\n{P1},{S1},"a;b;c;d"\n{P2},{S2},x;y\n'
    first, second = read_inventory(write(tmp_path, "inv.csv", content.encode()), KEYS)
    assert (first.extra, second.extra) == ({"note": "a;b;c;d"}, {"note": "x;y"})


def test_excel_sep_line_names_the_separator_and_is_skipped(tmp_path: Path) -> None:
    content = f"sep=;\r\nproject_id;server_id\r\n{P1};{S1}\r\n"
    [target] = read_inventory(write(tmp_path, "inv.csv", content.encode()), KEYS)
    assert (target.server_id, target.line) == (S1, 3)


def test_a_semicolon_file_with_a_bad_row_names_the_line_and_field(tmp_path: Path) -> None:
    content = f"project_id;server_id\n{P1};{S1}\n{P1};not-a-uuid\n"
    [problem] = problems_of(write(tmp_path, "inv.csv", content.encode()))
    assert (problem.line, problem.field) == (3, "server_id")


# --- encodings --------------------------------------------------------------------


def test_german_excel_export_in_cp1252_with_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", GERMAN_ROWS.encode("cp1252"))
    reader = InventoryReader(path, CP1252)
    targets = list(reader)
    reader.raise_if_problems()
    check_german(targets)
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cp1252_without_encoding_names_line_byte_and_flag(tmp_path: Path) -> None:
    data = GERMAN_ROWS.encode("cp1252")
    path = write(tmp_path, "inv.csv", data)
    problems = problems_of(path)
    assert [(p.line, p.field) for p in problems] == [(2, None), (3, None)]
    line_2 = data.index(b"\r\n") + 2
    bad = data.index("ä".encode("cp1252"))
    assert problems[0].message == (
        f"is not valid UTF-8: byte 0xe4 at byte {bad - line_2 + 1} of the line "
        f"(offset {bad} of the file); a file saved by Excel or another Windows program "
        "is often cp1252: try --encoding cp1252"
    )


def test_one_stray_byte_in_an_unused_column(tmp_path: Path) -> None:
    """The issue's case: a single cp1252 byte in a column nobody reads."""
    data = f"project_id,server_id,comment\n{P1},{S1},ok\n{P2},{S2},caf".encode() + b"\xe9\n"
    path = write(tmp_path, "inv.csv", data)
    [problem] = problems_of(path)
    assert problem.line == 3 and f"(offset {len(data) - 2} of the file)" in problem.message
    assert "try --encoding cp1252" in problem.message
    second = read_inventory(path, CP1252)[1]
    assert second.extra == {"comment": "café"}


def test_a_byte_not_valid_in_the_given_encoding(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252.
    data = f"project_id,server_id,note\n{P1},{S1},".encode() + b"x\x81\n"
    [problem] = problems_of(write(tmp_path, "inv.csv", data), CP1252)
    assert problem.line == 2
    assert problem.message.startswith("is not valid cp1252 (--encoding cp1252): byte 0x81")
    assert "try --encoding" not in problem.message


def test_utf8_bom_semicolons_crlf_as_excel_csv_utf8_writes_them(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", codecs.BOM_UTF8 + GERMAN_ROWS.encode("utf-8"))
    reader = InventoryReader(path, KEYS)
    check_german(list(reader))
    reader.raise_if_problems()
    assert reader.encoding.label == "UTF-8"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom_are_detected(tmp_path: Path, codec: str) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(codec, b"")
    data = bom + GERMAN_ROWS.encode(codec)
    path = write(tmp_path, "inv.csv", data)
    reader = InventoryReader(path, KEYS)
    check_german(list(reader))
    reader.raise_if_problems()
    assert reader.sha256 == hashlib.sha256(data).hexdigest()


def test_utf16_newline_bytes_inside_a_character_do_not_split_the_line(tmp_path: Path) -> None:
    # U+0A0A is b"\n\n" in UTF-16-LE, and "\u0a00" + "\n" holds b"\n\x00" off the unit boundary.
    note = "\u0a0a\u000a\u0a00"
    content = f'project_id,server_id,note\n{P1},{S1},"{note}"\n{P2},{S2},x\n'
    path = write(tmp_path, "inv.csv", content.encode("utf-16"))
    first, second = read_inventory(path, KEYS)
    assert first.extra == {"note": note} and (second.line, second.server_id) == (4, S2)


def test_utf16_problems_name_lines_and_limits_count_file_bytes(tmp_path: Path) -> None:
    long_note = "x" * 600
    content = f"project_id,server_id,note\n{P1},{S1},{long_note}\n{P1},bad,x\n{P2},{S2},x\n"
    data = codecs.BOM_UTF16_LE + content.encode("utf-16-le")
    reader = InventoryReader(write(tmp_path, "inv.csv", data), KEYS, max_line_bytes=1000)
    assert [t.line for t in reader] == [4]
    row_bytes = len(f"{P1},{S1},{long_note}") * 2
    assert [(p.line, p.field) for p in reader.problems] == [(2, None), (3, "server_id")]
    assert reader.problems[0].message == f"line is {row_bytes} bytes; the limit is 1000"


def test_invalid_utf16_is_refused_with_its_position(tmp_path: Path) -> None:
    header = "project_id,server_id\n".encode("utf-16-le")
    lone_surrogate = b"\x00\xd8"
    data = codecs.BOM_UTF16_LE + header + f"{P1},".encode("utf-16-le") + lone_surrogate + b"\n\x00"
    [problem] = problems_of(write(tmp_path, "inv.csv", data))
    offset = 2 + len(header) + 66
    assert problem.line == 2
    assert f"is not valid UTF-16-LE: byte 0x00 at byte 67 of the line (offset {offset}" in (
        problem.message
    )


def test_utf16_without_bom_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"project_id,server_id\n{P1},{S1}\n".encode("utf-16-le"))
    with pytest.raises(InventoryError) as info:
        InventoryReader(path)
    assert "--encoding utf-16-le" in str(info.value)
    assert len(read_inventory(path, InventoryDefaults("k", "u", encoding="utf-16-le"))) == 1


def test_a_bom_that_contradicts_encoding_is_refused(tmp_path: Path) -> None:
    content = codecs.BOM_UTF8 + f"project_id,server_id\n{P1},{S1}\n".encode()
    path = write(tmp_path, "inv.csv", content)
    with pytest.raises(InventoryError) as info:
        InventoryReader(path, CP1252)
    [problem] = info.value.problems
    assert problem.field == "--encoding" and "UTF-8 byte order mark" in problem.message
    # A BOM that agrees with --encoding is simply skipped.
    utf8 = InventoryDefaults("k", "u", encoding="UTF8")
    assert read_inventory(path, utf8)[0].server_id == S1


def test_unknown_encoding_is_a_problem_of_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", f"project_id,server_id\n{P1},{S1}\n".encode())
    for name in ("no-such-codec", "base64"):
        with pytest.raises(InventoryError) as info:
            InventoryReader(path, InventoryDefaults(encoding=name))
        assert info.value.problems[0].field == "--encoding"


def test_json_in_utf16_and_cp1252(tmp_path: Path) -> None:
    doc = json.dumps([{"project_id": P1, "server_id": S1, "owner": "Jürgen"}], ensure_ascii=False)
    [target] = read_inventory(write(tmp_path, "a.json", doc.encode("utf-16")), KEYS)
    assert target.extra == {"owner": "Jürgen"}
    latin = write(tmp_path, "b.json", ("[\n" + doc[1:]).encode("cp1252"))
    assert read_inventory(latin, CP1252)[0].extra == {"owner": "Jürgen"}
    [problem] = problems_of(latin)
    at = ("[\n" + doc[1:]).encode("cp1252").index(b"\xfc")
    assert problem.line == 2
    assert f"byte 0xfc at byte {at - 1} of the line (offset {at} of the file)" in problem.message
    assert "try --encoding cp1252" in problem.message


def test_large_cp1252_csv_streams(tmp_path: Path) -> None:
    rows = 100_000
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        out.write("project_id;server_id;owner\r\n".encode("cp1252"))
        for n in range(rows):
            out.write(f"{P1};{n:08x}-0000-4000-8000-000000000000;Müller\r\n".encode("cp1252"))
    reader = InventoryReader(path, CP1252)
    tracemalloc.start()
    try:
        iterator = iter(reader)
        for _ in range(5_000):
            next(iterator)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(1 for _ in iterator) == rows - 5_000
    reader.raise_if_problems()
    # The file is about 6.5 MB: reading it whole would show here.
    assert peak < 5_000 * 200 + 2**20, peak


# --- near-miss column names -------------------------------------------------------

NEAR_MISSES = [
    ("key_name", "keyname"),
    ("Key Name", "keyname"),
    ("server-id", "server_id"),
    ("ServerID", "server_id"),
    ("Project ID", "project_id"),
    ("project-id", "project_id"),
    ("user_id", "userid"),
    ("stop_mode", "mode"),
    ("key_pair", "keyname"),
    ("instance_id", "server_id"),
    ("region_name", "region"),
    ("projet_id", "project_id"),
    ("keynmae", "keyname"),
    ("regoin", "region"),
]


def csv_with(column: str, value: str = "v") -> bytes:
    return f"project_id,server_id,{column}\n{P1},{S1},{value}\n".encode()


@pytest.mark.parametrize(("column", "field"), NEAR_MISSES)
def test_near_miss_column_is_an_error_naming_the_field(
    tmp_path: Path, column: str, field: str
) -> None:
    if field in ("project_id", "server_id"):
        content = f"{column},{'server_id' if field == 'project_id' else 'project_id'}\nx,y\n"
        path = write(tmp_path, "inv.csv", content.encode())
    else:
        path = write(tmp_path, "inv.csv", csv_with(column))
    problems = problems_of(path)
    [problem] = [p for p in problems if p.field == column.strip()]
    assert problem.line == 1
    assert f"'{field}'" in problem.message and "rename it" in problem.message


@pytest.mark.parametrize(("key", "field"), NEAR_MISSES)
def test_near_miss_json_key_is_an_error_naming_the_field(
    tmp_path: Path, key: str, field: str
) -> None:
    entry = {"project_id": P1, "server_id": S1} | {key: "v"}
    entry.pop(field, None)
    servers = [entry, dict(entry, server_id=S2)]
    path = write(tmp_path, "inv.json", json.dumps({"servers": servers}, indent=1).encode())
    problems = problems_of(path)
    near = [p for p in problems if p.field == key.strip()]
    assert len(near) == 1, problems  # once, at its first entry, not once per entry
    assert near[0].line == 3 and near[0].message.startswith("entry 1: ")
    assert f"'{field}'" in near[0].message


@pytest.mark.parametrize(
    ("key", "field"), [(k, f) for k, f in NEAR_MISSES if f not in ("project_id", "server_id")]
)
def test_near_miss_json_default_names_the_field(tmp_path: Path, key: str, field: str) -> None:
    doc = {"defaults": {key: "v"}, "servers": [{"project_id": P1, "server_id": S1}]}
    [problem] = problems_of(write(tmp_path, "inv.json", json.dumps(doc).encode()))
    assert problem.field == f"defaults.{key}" and f"'{field}'" in problem.message


def test_near_miss_beside_the_field_itself(tmp_path: Path) -> None:
    # Written differently: two columns for one field, always an error.
    content = f"project_id,server_id,keyname,Key-Name\n{P1},{S1},a,b\n".encode()
    [problem] = problems_of(write(tmp_path, "inv.csv", content))
    assert problem.field == "Key-Name" and "which is given too" in problem.message
    # A typo-like name beside the real field is someone's own column.
    content = f"project_id,server_id,server,project\n{P1},{S1},web-1,Shop\n".encode()
    reader = InventoryReader(write(tmp_path, "ok.csv", content), KEYS)
    [target] = list(reader)
    reader.raise_if_problems()
    assert target.extra == {"server": "web-1", "project": "Shop"}


@pytest.mark.parametrize(
    "column",
    ["name", "owner", "team", "server_name", "project_name", "username", "node", "hostname"],
)
def test_other_extra_columns_are_kept(tmp_path: Path, column: str) -> None:
    reader = InventoryReader(write(tmp_path, "inv.csv", csv_with(column, "x")), KEYS)
    [target] = list(reader)
    reader.raise_if_problems()
    assert target.extra == {column: "x"} and reader.columns == (column,)
    entry = {"project_id": P1, "server_id": S1, column: "x"}
    [from_json] = read_inventory(write(tmp_path, "inv.json", json.dumps([entry]).encode()), KEYS)
    assert from_json.extra == {column: "x"}


def test_the_issue_typo_no_longer_gives_every_server_the_default_key(tmp_path: Path) -> None:
    content = f"project_id,server_id,key_name\n{P1},{S1},own-key\n".encode()
    with pytest.raises(InventoryError, match="'keyname'"):
        read_inventory(write(tmp_path, "inv.csv", content), InventoryDefaults("default-key", "u"))


def test_the_german_excel_sample_loads_with_encoding() -> None:
    path = Path(__file__).resolve().parents[2] / "inventories" / "excel-de.csv"
    assert b"\r\n" in path.read_bytes() and b";" in path.read_bytes()
    reader = InventoryReader(path, CP1252)
    targets = list(reader)
    reader.raise_if_problems()
    assert [t.extra["Besitzer"] for t in targets] == ["Müller; Jürgen", "Weiß", "Ärger GmbH"]
    assert (targets[2].keyname, targets[2].extra["Notiz"]) == ("kp", 'sagt "hallo"')
    assert len(problems_of(path)) == 3  # without --encoding: one per line with an umlaut
