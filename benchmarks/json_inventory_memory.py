"""Peak memory (and time) of reading a large JSON inventory, in a fresh process each.

    .venv/bin/python benchmarks/json_inventory_memory.py                 # the default set
    .venv/bin/python benchmarks/json_inventory_memory.py --empty-mb 15 --fleet 100000
    .venv/bin/python benchmarks/json_inventory_memory.py --code /path/to/other/checkout

Two files: one of `{}` entries (the hostile case: the smallest entries, the most
Python objects per byte of file) and a real fleet from make_inventory.py. Each
is read by `InventoryReader` to the end in a child process, which reports its
peak resident set (VmHWM) and the time taken. `--code` puts another checkout
first on the child's path, to compare before and after a change.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_inventory import write_json  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
from orchestrator.inventory import InventoryReader, InventoryDefaults

started = time.perf_counter()
reader = InventoryReader(Path(sys.argv[1]), InventoryDefaults(keyname="k", userid="u"))
targets = sum(1 for _ in reader)
elapsed = time.perf_counter() - started
peak_kib = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
)
print(json.dumps({
    "targets": targets, "rows": reader.rows, "problems": reader.problem_count,
    "first_problem": str(reader.problems[0]) if reader.problems else None,
    "seconds": round(elapsed, 2), "peak_mib": round(peak_kib / 1024, 1),
}))
"""


def write_empty_entries(path: Path, megabytes: float) -> int:
    """`[{},{},...]` of about `megabytes` MB: three bytes per entry."""
    count = int(megabytes * 1_000_000 / 3)
    with path.open("w", encoding="ascii") as out:
        out.write("[")
        block = "{}," * 10_000
        for _ in range(count // 10_000):
            out.write(block)
        out.write("{}," * (count % 10_000) + "{}]")
    return count + 1


def measure(path: Path, code: Path | None) -> dict[str, object]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--empty-mb", type=float, default=15.0, help="size of the {} file")
    parser.add_argument("--fleet", type=int, default=100_000, help="servers in the real one")
    parser.add_argument("--code", type=Path, help="a checkout to measure instead of this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty-entries.json"
        entries = write_empty_entries(empty, args.empty_mb)
        fleet = Path(tmp) / "fleet.json"
        write_json(fleet, args.fleet, 20, 1)
        for label, path, count in (
            (f"{{}} entries, {args.empty_mb:g} MB", empty, entries),
            (f"fleet of {args.fleet}", fleet, args.fleet),
        ):
            size = path.stat().st_size / 1_000_000
            started = time.perf_counter()
            result = measure(path, args.code)
            wall = time.perf_counter() - started
            print(
                f"{label:<26} {count:>9} entries, {size:6.1f} MB file: "
                f"peak RSS {result['peak_mib']:>7} MiB, read {result['seconds']:>6} s "
                f"(process {wall:.1f} s); {result['targets']} targets, "
                f"{result['problems']} problem(s)"
                + (f": {str(result['first_problem'])[-80:]}" if result["first_problem"] else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
