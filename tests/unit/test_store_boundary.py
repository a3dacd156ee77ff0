"""The store owns every query: no module outside `orchestrator/store/` reaches a
database driver or issues SQL (the report, `status` and the engine ask the store)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import orchestrator
from orchestrator.store.scratch import ScratchSort

PACKAGE = Path(orchestrator.__file__).parent
DRIVERS = {"sqlite3", "sqlite_utils", "psycopg"}
SQL_CALLS = {"execute", "executemany", "executescript"}


def _outside_the_store() -> list[Path]:
    store = PACKAGE / "store"
    return sorted(p for p in PACKAGE.rglob("*.py") if store not in p.parents)


def _drivers_and_sql(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SQL_CALLS:
                found.append(f"line {node.lineno}: .{node.func.attr}(...)")
            continue
        else:
            continue
        found += [
            f"line {node.lineno}: import {name}"
            for name in names
            if name.partition(".")[0] in DRIVERS
        ]
    return found


def test_no_module_outside_the_store_imports_a_driver_or_issues_sql() -> None:
    modules = _outside_the_store()
    assert len(modules) > 50  # the walk found the package
    problems = [
        f"{path.relative_to(PACKAGE.parent)} {what}"
        for path in modules
        for what in _drivers_and_sql(path)
    ]
    assert not problems, "\n".join(problems)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False)))
def test_the_scratch_sort_gives_back_every_value_unchanged_in_order(values: list[float]) -> None:
    with ScratchSort() as scratch:
        scratch.add(values[: len(values) // 2])
        scratch.add(values[len(values) // 2 :])
        back = list(scratch.ascending())
    assert back == sorted(values)
    assert all(type(v) is float for v in back)  # no affinity turned one into an int


def test_a_closed_scratch_sort_cannot_be_read() -> None:
    scratch = ScratchSort()
    scratch.add([2.0, 1.0])
    scratch.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        list(scratch.ascending())
