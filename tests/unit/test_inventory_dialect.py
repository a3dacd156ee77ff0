"""The CSV separator, from the header first: a table."""

from __future__ import annotations

import pytest

from orchestrator.inventory.dialect import Dialect, DialectProblem, detect_dialect

P1 = "0123456789abcdef0123456789abcdef"
S1 = "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (f"project_id,server_id\n{P1},{S1}\n", Dialect(",")),
        (f"project_id;server_id\r\n{P1};{S1}\r\n", Dialect(";")),
        (f"project_id\tserver_id\n{P1}\t{S1}\n", Dialect("\t")),
        # the header decides, whatever the data rows hold
        ('project_id,server_id,note\nx,y,"a;b;c;d;e;f"\n', Dialect(",")),
        ('project_id;server_id;note\nx;y;"a,b,c,d,e,f"\n', Dialect(";")),
        # quoted names with other separators inside
        ('"project_id";"server_id";"a, b"\n', Dialect(";")),
        # near misses count after known names: the header is still recognised
        ("Project ID;Server ID;Key Name\n", Dialect(";")),
        ("\n\nproject_id;server_id\n", Dialect(";")),
        # Excel's separator line
        ("sep=;\nproject_id;server_id\n", Dialect(";", sep_line=True)),
        ("sep=\t\r\nproject_id\tserver_id\n", Dialect("\t", sep_line=True)),
        # a tie (one column): Sniffer looks at the rows, else comma
        ("project_id\n" + f"{P1};x\n" * 5, Dialect(";")),
        ("project_id\nabc\n", Dialect(",")),
        ("", Dialect(",")),
    ],
)
def test_detect_dialect(sample: str, expected: Dialect) -> None:
    assert detect_dialect(sample) == expected


def test_an_unusable_sep_line_is_refused() -> None:
    with pytest.raises(DialectProblem, match="'\\|'"):
        detect_dialect("sep=|\nproject_id|server_id\n")
