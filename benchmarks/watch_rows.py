"""What a run's list reads hold in memory: one row per server of every project read by pages.

    .venv/bin/python benchmarks/watch_rows.py [--servers 1000000] [--in-memory]

A run that reads a project by pages (`engine/watch.py`) keeps a `Row` for every server
of the project, in the inventory or not, for the whole run: in memory up to the run's
budget (`rows.SPILL_AT` over all projects), then in a scratch file (`engine/rows.py`).
This measures that memory through the product's own path, without a fleet run: one
real page of 1,000 servers is read from the simulator (`simulate`, as its own
process), then parsed `--servers / 1000` times with `json.loads` and
`answers.server_page_outcome` (the client's parse), each copy with fresh server ids,
and every server put as a `Row` into 20 projects' `Rows` of one `RowMemory`, as
`ProjectWatch._keep` does. `--in-memory`: a budget no fleet reaches (what each row
costs in memory). Prints the process's RSS before and after, and per row.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from make_inventory import write_csv  # noqa: E402

from orchestrator.cloud import answers  # noqa: E402
from orchestrator.engine.rows import SPILL_AT, Row, RowMemory  # noqa: E402
from orchestrator.engine.watch import PAGE  # noqa: E402
from orchestrator.simulator.process import SimulatorProcess  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_page() -> bytes:
    """The body of a real v1 list page of 1,000 servers, as the simulator serves it."""
    with tempfile.TemporaryDirectory(prefix="watch-rows-") as tmp:
        inventory = Path(tmp) / "fleet.csv"
        write_csv(inventory, PAGE, 1, 1)
        project = inventory.read_text().splitlines()[1].split(",")[0]
        with SimulatorProcess("--fleet", inventory) as sim:  # no credentials: auth off
            url = f"{sim.url}/v1/{project}/cloudservers/detail?offset=1&limit={PAGE}"
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=30) as answer:
                body: bytes = answer.read()
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1_000_000)
    parser.add_argument("--in-memory", action="store_true", help="no budget: every row in memory")
    args = parser.parse_args()
    body = one_page()
    before = rss_mb()
    memory = RowMemory(2**62 if args.in_memory else SPILL_AT)
    projects = [memory.rows() for _ in range(20)]
    kept = 0
    started = time.process_time()
    for _ in range(max(1, args.servers // PAGE)):
        payload = json.loads(body)  # fresh strings for every page, as read off the wire
        for entry in payload["servers"]:
            entry["id"] = str(uuid.uuid4())
        page = answers.server_page_outcome(
            answers.Answer(200, {}, payload), 1, PAGE, "http://127.0.0.1"
        )
        read_at, sent = datetime.now(UTC), time.monotonic()  # one per page, as `_page`
        rows = projects[kept // PAGE % len(projects)]
        for server in page.servers:
            rows.put(Row(server, read_at, sent))
        kept += len(page.servers)
    cpu = time.process_time() - started
    after = rss_mb()
    grown = after - before
    print(f"page body          {len(body):,} bytes for {PAGE} servers")
    where = f"{memory.held:,} in memory, {memory.spilled} project(s) on disk"
    print(f"rows kept          {kept:,} ({where})")
    print(f"RSS before / after {before:.1f} / {after:.1f} MB")
    print(f"grown              {grown:.1f} MB, {1024 * 1024 * grown / kept:.0f} bytes a row")
    print(f"CPU to parse, keep {cpu:.1f} s, {1e6 * cpu / kept:.1f} us a row")
    print(
        json.dumps(
            {
                "target": "watch_rows",
                "rows": kept,
                "in_memory": memory.held,
                "projects_on_disk": memory.spilled,
                "rss_before_mb": round(before, 1),
                "rss_after_mb": round(after, 1),
                "bytes_per_row": round(1024 * 1024 * grown / kept),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
