"""Property tests of the inventory reader: any input ends in targets or InventoryError,
and valid rows survive the trip through CSV and JSON unchanged."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InventoryError
from orchestrator.inventory import InventoryDefaults, read_inventory
from orchestrator.model import TargetSpec
from orchestrator.spreadsheet import neutralise

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = ("inv.csv", "inv.json", "inventory")
DEFAULTS = InventoryDefaults(keyname="kp", userid="u")

VALID_CSV = (
    b"project_id,server_id,region,keyname,userid,mode,byol,owner\r\n"
    b"0123456789abcdef0123456789abcdef,11111111-2222-4333-8444-555555555555,"
    b'eu-de,k,u,withStopServer,true,"a, b"\r\n'
    b'\r\nfedcba9876543210fedcba9876543210,aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee,,,,,,"x\r\ny"\r\n'
)
VALID_JSON = json.dumps(
    {
        "defaults": {"keyname": "k", "userid": "u", "byol": False},
        "servers": [
            {
                "project_id": "0123456789abcdef0123456789abcdef",
                "server_id": "11111111-2222-4333-8444-555555555555",
                "region": "eu-nl",
                "tags": {"a": [1, None]},
            }
        ],
    },
    indent=1,
).encode()


# The same rows as an Excel "Unicode text" export would hold them, but with semicolons.
VALID_SEMICOLON_UTF16 = VALID_CSV.decode().replace(",", ";").encode("utf-16")


def test_the_documents_to_mutate_are_valid(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("base")
    (folder / "inv.csv").write_bytes(VALID_CSV)
    (folder / "inv.json").write_bytes(VALID_JSON)
    (folder / "utf16.csv").write_bytes(VALID_SEMICOLON_UTF16)
    assert len(read_inventory(folder / "inv.csv", DEFAULTS)) == 2
    assert len(read_inventory(folder / "utf16.csv", DEFAULTS)) == 2
    assert len(read_inventory(folder / "inv.json", DEFAULTS)) == 1


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """A valid document with a few bytes overwritten, inserted or cut off."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.binary(min_size=0, max_size=4))
        if draw(st.booleans()):
            data[at : at + len(piece)] = piece
        else:
            data[at:at] = piece
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


# (how the file is written, --encoding): UTF-8 with or without a BOM and UTF-16
# with one are recognised; cp1252 needs the flag.
ENCODINGS = [
    ("utf-8", None),
    ("utf-8-sig", None),
    ("utf-16", None),
    ("utf-32", None),
    ("cp1252", "cp1252"),
]

ANY_BYTES = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=',"\r\n {}[]:-0123456789abcdef\ufeff', max_size=200).map(str.encode),
    mutated(VALID_CSV),
    mutated(VALID_JSON),
    mutated(VALID_SEMICOLON_UTF16),
)


@FUZZ
@given(
    data=ANY_BYTES,
    name=st.sampled_from(NAMES),
    encoding=st.sampled_from([None, None, "cp1252", "utf-16", "utf-16-be", "latin-1"]),
)
def test_any_bytes_give_targets_or_an_inventory_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str, encoding: str | None
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    try:
        targets = read_inventory(path, dataclasses.replace(DEFAULTS, encoding=encoding))
    except InventoryError as err:
        assert err.problems, "an InventoryError must say what is wrong"
        assert all(p.file == str(path) for p in err.problems)
        str(err).encode("utf-8")  # printable: no lone surrogates reach the terminal
    else:
        assert targets and all(isinstance(t, TargetSpec) for t in targets)


HEX = "0123456789abcdef"
EXTRA_COLUMNS = ("owner", "note")
# Cell text as it survives trimming: no surrounding whitespace, no surrogates.
CELL_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(str.strip)
NAME_TEXT = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def targets(draw: st.DrawFn) -> list[TargetSpec]:
    server_ids = draw(st.lists(st.uuids(), min_size=1, max_size=8, unique=True))
    projects = draw(st.lists(st.text(HEX, min_size=32, max_size=32), min_size=1, max_size=3))
    rows = []
    for number, server in enumerate(server_ids, 1):
        rows.append(
            TargetSpec(
                project_id=draw(st.sampled_from(projects)),
                server_id=str(server),
                keyname=draw(NAME_TEXT),
                userid=draw(NAME_TEXT),
                line=number,
                region=draw(
                    st.none() | st.from_regex(r"[a-z0-9]{1,5}(-[a-z0-9]{1,5}){0,3}", fullmatch=True)
                ),
                mode=draw(st.sampled_from([None, "withStopServer"])),
                byol=draw(st.sampled_from([None, True, False])),
                extra={column: draw(CELL_TEXT) for column in EXTRA_COLUMNS},
            )
        )
    return rows


def as_csv(rows: list[TargetSpec], newline: str, delimiter: str = ",") -> str:
    out = io.StringIO()
    # The writer quotes a cell with a lone CR only when CR is in its line
    # terminator; unquoted, a CR ends a record (RFC 4180), so LF files quote all.
    quoting = csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL
    writer = csv.writer(out, lineterminator=newline, quoting=quoting, delimiter=delimiter)
    writer.writerow(
        ["project_id", "server_id", "region", "keyname", "userid", "mode", "byol", *EXTRA_COLUMNS]
    )
    for t in rows:
        byol = "" if t.byol is None else str(t.byol).lower()
        # Text cells as the product writes them (retry.csv): a leading formula
        # character or quote gets one more quote, which the reader takes away again.
        keyname, userid = neutralise(t.keyname), neutralise(t.userid)
        extras = [neutralise(t.extra[c]) for c in EXTRA_COLUMNS]
        writer.writerow(
            [
                t.project_id,
                t.server_id,
                t.region or "",
                keyname,
                userid,
                t.mode or "",
                byol,
                *extras,
            ]
        )
    return out.getvalue()


def as_json(rows: list[TargetSpec]) -> str:
    servers = []
    for t in rows:
        entry = {
            "project_id": t.project_id,
            "server_id": t.server_id,
            "keyname": t.keyname,
            "userid": t.userid,
            "region": t.region,
            "mode": t.mode,
            "byol": t.byol,
        }
        servers.append(entry | t.extra)
    return json.dumps({"servers": servers}, indent=2, ensure_ascii=False)


def without_lines(rows: list[TargetSpec]) -> list[TargetSpec]:
    return [dataclasses.replace(t, line=0) for t in rows]


@FUZZ
@given(rows=targets(), newline=st.sampled_from(["\n", "\r\n"]))
def test_valid_rows_round_trip_through_csv_and_json(
    tmp_path_factory: pytest.TempPathFactory, rows: list[TargetSpec], newline: str
) -> None:
    folder = tmp_path_factory.mktemp("trip")
    csv_path, json_path = folder / "inv.csv", folder / "inv.json"
    csv_path.write_text(as_csv(rows, newline), encoding="utf-8", newline="")
    json_path.write_text(as_json(rows), encoding="utf-8")

    from_csv = read_inventory(csv_path)
    from_json = read_inventory(json_path)

    assert without_lines(from_csv) == without_lines(from_json) == without_lines(rows)
    assert [t.line for t in from_json] == [t.line for t in rows]  # entry numbers
    assert [t.line for t in from_csv] == sorted({t.line for t in from_csv})


def representable(rows: list[TargetSpec], codec: str) -> list[TargetSpec]:
    """The rows as they survive a trip through `codec` ('?' for what it cannot hold)."""

    def fit(text: str) -> str:
        return text.encode(codec, "replace").decode(codec)

    return [
        dataclasses.replace(
            t,
            keyname=fit(t.keyname),
            userid=fit(t.userid),
            extra={k: fit(v) for k, v in t.extra.items()},
        )
        for t in rows
    ]


@FUZZ
@given(
    rows=targets(),
    newline=st.sampled_from(["\n", "\r\n"]),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(ENCODINGS),
)
def test_valid_rows_round_trip_in_every_dialect_and_encoding(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[TargetSpec],
    newline: str,
    delimiter: str,
    encoding: tuple[str, str | None],
) -> None:
    codec, flag = encoding
    rows = representable(rows, codec)
    folder = tmp_path_factory.mktemp("dialects")
    csv_path, json_path = folder / "inv.csv", folder / "inv.json"
    csv_path.write_bytes(as_csv(rows, newline, delimiter).encode(codec))
    json_path.write_bytes(as_json(rows).encode(codec))
    defaults = InventoryDefaults(encoding=flag)

    from_csv = read_inventory(csv_path, defaults)
    from_json = read_inventory(json_path, defaults)

    assert without_lines(from_csv) == without_lines(from_json) == without_lines(rows)
