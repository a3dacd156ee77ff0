"""The import of an inventory into a new state file, as the store does it and with
sqlite-utils' `insert_all` in its place.

    .venv/bin/python benchmarks/store_import.py --count 100000 --rounds 5

One CSV inventory (`make_inventory.py`) is imported `--rounds` times each way,
alternated, into a new state file in a temporary directory: read, checked and
written in one transaction (`StateStore.create`, as `run` does: the inventory's
hash, the schema under a temporary name, the rows, the meta rows, the journal's
`open` mark). The `insert_all` variant differs only in how the rows are written:
`Table.insert_all` (multi-row INSERTs of at most 999 values each, inside the same
transaction through SAVEPOINTs) instead of `executemany` of one prepared INSERT in
batches of 5,000. Both files are checked to hold the same targets. Prints the
median and every round of the wall time, and the median CPU time of the process,
in seconds (the CPU time is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlite_utils
from make_inventory import write_csv

from orchestrator.inventory.reader import InventoryReader
from orchestrator.model import TargetSpec, TargetState
from orchestrator.store.base import translated
from orchestrator.store.files import file_sha256
from orchestrator.store.records import utc_now
from orchestrator.store.sqlite import StateStore

COLUMNS = [
    "project_id", "server_id", "region", "keyname", "userid", "mode", "byol", "extra",
    "line", "state", "updated_at", "cloud_init",
]  # fmt: skip


class InsertAllStore(StateStore):
    """The store with its import written by sqlite-utils' `insert_all`."""

    def _import(
        self,
        targets: Iterable[TargetSpec],
        inventory_path: str,
        inventory_sha256: str,
        extra_columns: Callable[[], Sequence[str]],
        validate: Callable[[], None] | None,
        extra_meta: Mapping[str, str],
    ) -> None:
        now = utc_now()

        def rows() -> Iterable[Sequence[object]]:
            yield COLUMNS  # list mode: the column names first, then the rows
            for spec in targets:
                yield (
                    spec.project_id,
                    spec.server_id,
                    spec.region,
                    spec.keyname,
                    spec.userid,
                    spec.mode,
                    None if spec.byol is None else int(spec.byol),
                    json.dumps(spec.extra) if spec.extra else None,
                    spec.line,
                    TargetState.PENDING.value,
                    now,
                    int(spec.cloud_init),
                )

        with translated("import the inventory"), self._transaction():
            db = sqlite_utils.Database(self._conn, recursive_triggers=False, execute_plugins=False)
            db.table("targets").insert_all(rows())
            if validate is not None:
                validate()
            self._set_meta_values(
                {
                    **extra_meta,
                    "inventory_path": inventory_path,
                    "inventory_sha256": inventory_sha256,
                    "extra_columns": json.dumps(list(extra_columns())),
                    "import_complete": "1",
                }
            )


def import_once(kind: type[StateStore], inventory: Path, out: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds to create the state file `out` from `inventory`, and a
    digest of its targets."""
    began, cpu = time.perf_counter(), time.process_time()
    reader = InventoryReader(inventory)
    store = kind.create(
        out,
        iter(reader),
        inventory_path=str(inventory),
        inventory_sha256=file_sha256(inventory),
        extra_columns=lambda: reader.columns,
        validate=reader.raise_if_problems,
    )
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    with store:
        digest = hashlib.sha256()
        for target in store.iter_targets():
            digest.update(repr((target.spec, target.state)).encode())
    return took, cpu, digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="store-import-"))
    try:
        inventory = work / "fleet.csv"
        write_csv(inventory, args.count, args.projects, args.seed)
        kinds = {"executemany (the store)": StateStore, "insert_all": InsertAllStore}
        times: dict[str, list[float]] = {name: [] for name in kinds}
        cpus: dict[str, list[float]] = {name: [] for name in kinds}
        digests = set()
        for round_ in range(args.rounds):
            for name, kind in kinds.items():
                out = work / f"{round_}-{kind.__name__}.sqlite"
                took, cpu, digest = import_once(kind, inventory, out)
                times[name].append(took)
                cpus[name].append(cpu)
                digests.add(digest)
        assert len(digests) == 1, "the two imports hold different targets"
        print(f"{args.count:,} targets, {args.rounds} rounds each, alternated")
        for name in kinds:
            print(
                f"  {name:<24} wall median {statistics.median(times[name]):.2f} s"
                f" ({', '.join(f'{v:.2f}' for v in times[name])}),"
                f" CPU median {statistics.median(cpus[name]):.2f} s"
            )
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
