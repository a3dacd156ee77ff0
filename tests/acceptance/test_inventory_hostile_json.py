"""Hostile JSON inventories: a clear problem naming the file, line and entry; flat memory.

JSON inventories are read as a stream, one entry at a time (json_stream). An entry
nested past the recursion limit, a single string of megabytes or millions of tiny
entries end in an InventoryError, never a RecursionError or MemoryError, and the
memory a read takes does not grow with the number of entries. (The figures for
large files are benchmarks/json_inventory_memory.py's.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.errors import InventoryError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.inventory.json_stream import MAX_DEPTH, MAX_VALUE_CHARS

P1 = "0123456789abcdef0123456789abcdef"
KEYS = InventoryDefaults(keyname="k", userid="u")


def entry(n: int, **extra: object) -> str:
    return json.dumps({"project_id": P1, "server_id": f"00000000-0000-4000-8000-{n:012x}", **extra})


def write(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "fleet.json"
    path.write_text("[\n" + ",\n".join(entries) + "\n]\n", encoding="utf-8")
    return path


def read(path: Path, **limits: int) -> tuple[InventoryReader, InventoryError]:
    reader = InventoryReader(path, KEYS, **limits)
    with pytest.raises(InventoryError) as caught:
        list(reader)
        reader.raise_if_problems()
    return reader, caught.value


def test_an_entry_nested_past_the_recursion_limit_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, entry(1), entry(2), "[" * 200_000 + "]" * 200_000, entry(4))
    _, error = read(path)
    [problem] = error.problems
    assert (problem.file, problem.line) == (str(path), 4)
    assert problem.message == "invalid JSON: entry 3 is nested too deeply"


def test_an_entry_nested_deeper_than_the_limit_is_named(tmp_path: Path) -> None:
    deep = "[" * (MAX_DEPTH + 5) + "1" + "]" * (MAX_DEPTH + 5)
    path = write(tmp_path, entry(1), entry(2, note=json.loads(deep)))
    _, error = read(path)
    [problem] = error.problems
    assert (problem.file, problem.line) == (str(path), 3)
    assert problem.message == (f"entry 2 nests lists and objects deeper than {MAX_DEPTH} levels")


def test_a_huge_single_string_is_refused_without_holding_it(tmp_path: Path) -> None:
    path = write(tmp_path, entry(1), entry(2, note="x" * (8 * MAX_VALUE_CHARS)))
    tracemalloc.start()
    try:
        _, error = read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [problem] = error.problems
    assert (problem.file, problem.line) == (str(path), 3)
    assert problem.message.startswith(f"entry 2 is longer than {MAX_VALUE_CHARS} characters")
    # The window reaches about twice the limit before giving up, never the whole string.
    assert peak < 6 * MAX_VALUE_CHARS, peak


def test_too_many_entries_stop_at_the_limit_with_the_entrys_line(tmp_path: Path) -> None:
    path = write(tmp_path, *(entry(n) for n in range(1, 31)))
    reader, error = read(path, max_rows=20)
    assert reader.rows == 21
    assert [(p.line, p.message) for p in error.problems] == [
        (22, "more than 20 servers; the limit is 20")
    ]


PEAK_RSS = """
import sys
from pathlib import Path
from orchestrator.inventory import InventoryDefaults, InventoryReader

reader = InventoryReader(Path(sys.argv[1]), InventoryDefaults(keyname="k", userid="u"))
for _ in reader:
    pass
peak = next(s for s in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in s)
print(reader.problem_count, peak.split()[1])
"""


def peak_rss_kib(path: Path) -> tuple[int, int]:
    """Problems counted and peak resident memory (KiB) of reading `path` in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    problems, peak = done.stdout.split()
    return int(problems), int(peak)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_memory_does_not_grow_with_the_number_of_entries(tmp_path: Path) -> None:
    """Two million bytes of `{}` entries: 666,667 Python dicts when parsed whole (over
    100 MB more than a one-entry file); one at a time now."""
    small = tmp_path / "one.json"
    small.write_text("[{}]", encoding="ascii")
    large = tmp_path / "many.json"
    large.write_text("[" + "{}," * 666_666 + "{}]", encoding="ascii")
    _, baseline = peak_rss_kib(small)
    problems, peak = peak_rss_kib(large)
    assert problems == 2 * 666_667  # project_id and server_id missing, in every entry
    assert peak - baseline < 16 * 1024, (baseline, peak)
